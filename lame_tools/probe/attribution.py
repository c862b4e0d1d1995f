"""Why is a query close to an item? Attribution of their cosine to image patches and text tokens.

Methods (both on the language model's input embeddings, where the vision tower's merged patch
features and the text token embeddings meet; reached through the `hook_embed` hook point):

    grad_x_input          d cos / d x  *  x, summed over the hidden size, per input position
    integrated_gradients  the same gradient averaged along the straight path from a baseline
                          (the inputs "deleted": an average token for text, a blank image's
                          patches for the image; see `baseline_inputs`) to x, times (x - baseline): the scores sum
                          to cos(x) - cos(baseline) (completeness), up to the path's discretisation

Only input positions (image patches, instruction and text tokens) are attributed; the mode's
suffix (reason tokens, [EMBED]) and the padding keep their embeddings, as learned parameters do.
The other side's embedding is held fixed, so the query and the item are attributed in turn.

Attention flow (`attention_flow`): attention rollout (heads averaged, half identity for the
residual stream, rows renormalised) from [EMBED] back to the inputs, split into the paths that
pass through a reason-token position at some layer and the paths that never do; their ratio is
the share of [EMBED]'s input flow carried through the reason tokens.

Faithfulness (`deletion_check`): the top-n attributed image patches set to the baseline (a blank
image's patches) lower the
cosine more than n random patches do, if the attribution means anything.

Written here rather than taken from captum: captum's LayerIntegratedGradients would need a
forward function per side and a patch of the backbone's embedding module, while one hook on
`hook_embed` (the probe's own hook point) gives every step of the path in one batched pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from lame_tools.errors import InputError
from lame_tools.inputs import Item
from lame_tools.model import LameModel
from lame_tools.probe.hooks import HookContext, PreparedBatch, hooks, num_layers, prepare_batch, run_with_cache
from lame_tools.probe.results import FrameMixin

METHODS = ("integrated_gradients", "grad_x_input")
MAX_STEPS = 256
# integrated gradients doubles its steps until a side's scores sum to the cosine's change within this
COMPLETENESS_TOLERANCE = 5e-3


def integrated_gradients(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, baseline: torch.Tensor | None = None, steps: int = 32
) -> torch.Tensor:
    """Integrated gradients of a scalar-per-row function: rows of `fn(points [steps, ...])` are
    independent. Returns attributions shaped like `x` (midpoint rule; sum -> fn(x) - fn(baseline))."""
    baseline = torch.zeros_like(x) if baseline is None else baseline
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    shape = (steps,) + (1,) * x.dim()
    points = (baseline + alphas.view(shape) * (x - baseline)).detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(points).sum(), points)
    return grad.mean(0) * (x - baseline)


def gradient_x_input(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d fn / d x * x for a scalar function of one point (`fn` takes a batch of one)."""
    point = x[None].detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(fn(point).sum(), point)
    return grad[0] * x


@dataclass
class SideAttribution(FrameMixin):
    """Attribution of the cosine to the inputs of one side (the query or the item).

    Attributes:
        text_tokens: the T non-image input tokens (instruction, text, vision markers), in order.
        text_scores: [T] their attribution (+ raises the cosine, - lowers it).
        image_scores: [grid_h, grid_w] attribution per merged image patch, or None (no image).
        image: the side's image (RGB uint8) or None.
        total: the sum of every input position's attribution.
        steps: the integration steps used (integrated gradients; 0 for grad x input).
    """

    text_tokens: list[str]
    text_scores: np.ndarray
    image_scores: np.ndarray | None
    image: np.ndarray | None
    total: float
    steps: int = 0

    def rows(self) -> list[dict[str, object]]:
        rows = [{"part": "text", "position": i, "token": t, "score": float(s)}
                for i, (t, s) in enumerate(zip(self.text_tokens, self.text_scores))]
        if self.image_scores is not None:
            h, w = self.image_scores.shape
            rows += [{"part": "image", "position": r * w + c, "token": f"patch ({r}, {c})",
                      "score": float(self.image_scores[r, c])} for r in range(h) for c in range(w)]
        return rows

    def plot(self, title: str = ""):
        """The image with its patch attribution laid over it (or the text strip without an image)."""
        from lame_tools import viz_probe as viz

        if self.image_scores is not None and self.image is not None:
            return viz.signed_overlay(self.image, self.image_scores, title=title)
        return viz.token_strip(self.text_tokens, self.text_scores, title=title, signed=True)


@dataclass
class Attribution(FrameMixin):
    """Attribution of cos(query, item) to both sides' inputs (see the module docstring).

    Attributes:
        method: "integrated_gradients" or "grad_x_input".
        score: cos(query, item).
        query, item: `SideAttribution` of each side (the other side held fixed).
        query_baseline_score, item_baseline_score: the cosine with that side's inputs at the
            baseline (integrated gradients: each side's total is close to score - baseline).
        flow: the query's attention flow into [EMBED] (None when it has no reason tokens).
    """

    method: str
    score: float
    query: SideAttribution
    item: SideAttribution
    query_baseline_score: float
    item_baseline_score: float
    flow: AttentionFlow | None = None

    def rows(self) -> list[dict[str, object]]:
        return [{"side": "query", **r} for r in self.query.rows()] + [{"side": "item", **r} for r in self.item.rows()]

    def plot(self, title: str = ""):
        """Both sides' overlays (or token strips) side by side, red raising and blue lowering the cosine."""
        from lame_tools import viz_probe as viz

        return viz.attribution_figure(self, title=title or f"cos = {self.score:.3f} ({self.method})")


@dataclass
class AttentionFlow(FrameMixin):
    """Attention rollout from [EMBED] to the query's input positions, split by path.

    Attributes:
        tokens: the input positions' token strings (image patches as "<patch r,c>").
        total: [P] rollout weight of each input position.
        through_reason: [P] the part of it on paths through at least one reason-token position.
        direct: [P] the part on paths that never visit a reason token.
        reason_share: through_reason.sum() / total.sum().
    """

    tokens: list[str]
    total: np.ndarray
    through_reason: np.ndarray
    direct: np.ndarray
    reason_share: float
    image_through: np.ndarray | None = field(default=None)

    def rows(self) -> list[dict[str, object]]:
        return [{"token": t, "total": float(a), "through_reason": float(b), "direct": float(c)}
                for t, a, b, c in zip(self.tokens, self.total, self.through_reason, self.direct)]

    def plot(self, title: str = ""):
        from lame_tools import viz_probe as viz

        return viz.flow_bars(self.tokens, self.through_reason, self.direct,
                             title=title or f"attention flow into [EMBED]: {self.reason_share:.0%} through reason tokens")


# ---- one side ----------------------------------------------------------------------------------


def input_positions(model: LameModel, prepared: PreparedBatch) -> tuple[np.ndarray, np.ndarray]:
    """(input positions, which of them are image tokens) of row 0: real tokens before the suffix."""
    mask = prepared.batch["attention_mask"][0].cpu().numpy().astype(bool)
    ids = prepared.batch["input_ids"][0].cpu().numpy()
    seq = len(ids)
    positions = np.flatnonzero(mask[: seq - prepared.num_query])
    return positions, ids[positions] == model.processor.image_token_id


def capture_inputs(model: LameModel, prepared: PreparedBatch, positions: np.ndarray) -> torch.Tensor:
    """Row 0's language-model input embeddings at `positions` [P, hidden] (one pass, no gradients)."""
    captured: dict[str, torch.Tensor] = {}

    def capture(value: torch.Tensor, ctx: HookContext) -> None:
        captured["x"] = value[0, positions].detach().clone()

    with torch.no_grad(), hooks(model, [("hook_embed", capture)], prepared.batch["attention_mask"], prepared.positions):
        model.hidden_states(prepared.batch)
    return captured["x"]


def baseline_inputs(model: LameModel, item: Item, mode: str, positions: np.ndarray, is_image: np.ndarray,
                    x: torch.Tensor) -> torch.Tensor:
    """The "deleted" input: text tokens -> an average token (the mean of the embedding table, scaled
    to the mean row norm); image patches -> the patches of a blank image of the same size in the
    image's background colour (its most common pixel).

    Not zeros (nor the pad token, whose embedding is zero): the layers' RMSNorm maps any non-zero
    scale of a token to nearly the same vector, so a zero baseline puts all of the path's change into
    a sliver next to zero that the integration misses.
    """
    baseline = x.clone()
    table = model.backbone.get_input_embeddings().weight.detach()
    mean = table.mean(0)
    average = mean * (table.norm(dim=1).mean() / mean.norm().clamp(min=1e-12))
    baseline[torch.as_tensor(~is_image)] = average.to(x.dtype)
    if item.image is not None and is_image.any():
        pixels = np.asarray(item.image.convert("RGB")).reshape(-1, 3)
        colours, counts = np.unique(pixels, axis=0, return_counts=True)
        blank = Image.new("RGB", item.image.size, tuple(int(c) for c in colours[counts.argmax()]))
        blank_batch = prepare_batch(model, [Item(blank, item.text, item.instruction)], mode)
        blank_x = capture_inputs(model, blank_batch, positions)
        baseline[torch.as_tensor(is_image)] = blank_x[torch.as_tensor(is_image)]
    return baseline


@dataclass
class ScoreFunction:
    """cos(side(x), other) as a function of the side's input embeddings x [n, P, hidden] -> [n].

    Attributes:
        x: [P, hidden] the side's input embeddings; baseline: the same, deleted (`baseline_inputs`).
        prepared: the side's batch of one; positions: its input positions; is_image: their image flags.
    """

    model: LameModel
    prepared: PreparedBatch
    other: torch.Tensor
    x: torch.Tensor
    baseline: torch.Tensor
    positions: np.ndarray
    is_image: np.ndarray

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        n = points.shape[0]
        batch = {k: torch.cat([v] * n) for k, v in self.prepared.batch.items()}  # one image per row: patches stack
        pos = torch.as_tensor(self.positions, device=points.device)

        def replace(value: torch.Tensor, ctx: HookContext) -> torch.Tensor:
            value = value.clone()
            value[:, pos] = points.to(value.dtype)
            return value

        with hooks(self.model, [("hook_embed", replace)], batch["attention_mask"], self.prepared.positions):
            embeddings = self.model.pool(self.model.hidden_states(batch), self.prepared.num_reason)[0]
        return embeddings @ self.other.to(embeddings.dtype)


def score_function(model: LameModel, item: Item, mode: str, other: torch.Tensor) -> ScoreFunction:
    """The `ScoreFunction` of one side against the other side's fixed embedding `other` [D]."""
    prepared = prepare_batch(model, [item], mode)
    positions, is_image = input_positions(model, prepared)
    x = capture_inputs(model, prepared, positions)
    baseline = baseline_inputs(model, item, mode, positions, is_image, x)
    return ScoreFunction(model, prepared, other, x, baseline, positions, is_image)


def side_tokens(model: LameModel, prepared: PreparedBatch, positions: np.ndarray, is_image: np.ndarray) -> list[str]:
    ids = prepared.batch["input_ids"][0].cpu().numpy()
    return model.processor.tokenizer.convert_ids_to_tokens([int(i) for i in ids[positions[~is_image]]])


def image_grid(model: LameModel, prepared: PreparedBatch, values: np.ndarray) -> np.ndarray:
    """Per-image-token values laid on the merged patch grid (row-major), frames summed."""
    t, h, w = (int(v) for v in prepared.batch["image_grid_thw"][0])
    merge = model.processor.merge_size
    return values.reshape(t, h // merge, w // merge).sum(0)


def attribute_side(model: LameModel, item: Item, other: torch.Tensor, mode: str, method: str, steps: int
                   ) -> tuple[SideAttribution, float]:
    """Attribution of cos(side, other) to one side's inputs, and the cosine at the baseline.
    Integrated gradients starts at `steps` and doubles them (up to `MAX_STEPS`) until the scores sum
    to cos(side) - cos(baseline) within `COMPLETENESS_TOLERANCE`: the scene-word models' path has
    sharp turns that 32 midpoints miss by up to 0.07."""
    fn = score_function(model, item, mode, other)
    prepared, positions, is_image = fn.prepared, fn.positions, fn.is_image
    with torch.no_grad():
        baseline_score, score = (float(v) for v in fn(torch.stack([fn.baseline, fn.x])))
    if method == "integrated_gradients":
        while True:
            scores = integrated_gradients(fn, fn.x, fn.baseline, steps=steps)
            if abs(float(scores.sum()) - (score - baseline_score)) <= COMPLETENESS_TOLERANCE or steps >= MAX_STEPS:
                break
            steps = min(2 * steps, MAX_STEPS)
    else:
        scores, steps = gradient_x_input(fn, fn.x), 0
    per_position = scores.sum(-1).float().cpu().numpy()
    image_scores = image_grid(model, prepared, per_position[is_image]) if is_image.any() else None
    image = np.asarray(item.image.convert("RGB")) if item.image is not None else None
    side = SideAttribution(side_tokens(model, prepared, positions, is_image), per_position[~is_image], image_scores,
                           image, float(per_position.sum()), steps)
    return side, baseline_score


def attribute(
    model: LameModel,
    query: Item,
    item: Item,
    method: str = "integrated_gradients",
    steps: int = 32,
    mode: str | None = None,
    flow: bool = True,
) -> Attribution:
    """Attribute cos(query, item) to the query's and the item's image patches and text tokens.

    Args:
        query, item: model inputs (`Example.query_item()`, `Example.target_item()`, or `Item(...)`).
        method: "integrated_gradients" (default) or "grad_x_input".
        steps: integrated gradients' first path steps (one batched pass of `steps` rows per side),
            doubled per side until the side is complete (`attribute_side`).
        mode: "latent" or "discriminative" (default: the model's).
        flow: also compute the query's attention flow into [EMBED] (latent mode, K > 0).
    """
    mode = mode or model.config.default_mode
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}.")
    if mode not in ("latent", "discriminative"):
        raise InputError("Attribution runs in latent or discriminative mode (CoT's rationale is generated, not an input).")
    if not 1 <= int(steps) <= MAX_STEPS:
        raise InputError(f"Use between 1 and {MAX_STEPS} integration steps.")
    with torch.no_grad():
        q_emb, t_emb = model.forward_items([query, item], mode).embeddings.float()
    query_side, query_base = attribute_side(model, query, t_emb, mode, method, int(steps))
    item_side, item_base = attribute_side(model, item, q_emb, mode, method, int(steps))
    flows = attention_flow(model, query, mode) if flow and mode == "latent" and model.num_reason_tokens else None
    return Attribution(method, float(q_emb @ t_emb), query_side, item_side, query_base, item_base, flows)


# ---- attention flow ----------------------------------------------------------------------------


def rollout_split(patterns: np.ndarray, reason: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Attention rollout of one row, split by path: (total [seq], direct [seq]).

    Args:
        patterns: [layer, head, seq, seq] full attention of one input.
        reason: [seq] True at reason-token positions (the intermediate nodes "through" refers to).
        target: the row rolled out (the [EMBED] position).
    """
    seq = patterns.shape[-1]
    keep = (~reason).astype(patterns.dtype)
    total = np.eye(seq, dtype=np.float64)[target]
    direct = total.copy()
    for layer in range(patterns.shape[0] - 1, -1, -1):
        a = 0.5 * patterns[layer].mean(0) + 0.5 * np.eye(seq)
        a = a / a.sum(-1, keepdims=True)
        total = total @ a
        direct = direct @ a
        if layer > 0:  # below the first layer the nodes are the inputs themselves
            direct = direct * keep
    return total, direct


def attention_flow(model: LameModel, item: Item, mode: str = "latent") -> AttentionFlow:
    """Attention flow from [EMBED] to one input's positions, through the reason tokens vs directly."""
    prepared = prepare_batch(model, [item], mode)
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(num_layers(model))]
    _, cache = run_with_cache(model, prepared, names, positions="all")
    patterns = cache.stack("attn.hook_pattern")[:, 0].numpy().astype(np.float64)  # [layer, head, seq, seq]
    seq = patterns.shape[-1]
    reason = np.zeros(seq, bool)
    reason[seq - prepared.num_query : seq - 1] = True
    total, direct = rollout_split(patterns, reason, seq - 1)
    positions, is_image = input_positions(model, prepared)
    through = total - direct
    tokens = side_tokens(model, prepared, positions, is_image)
    names_iter = iter(tokens)
    labels, patch = [], 0
    for flag in is_image:
        if flag:
            labels.append(f"<patch {patch}>")
            patch += 1
        else:
            labels.append(next(names_iter))
    share = float(through[positions].sum() / max(total[positions].sum(), 1e-12))
    image_through = image_grid(model, prepared, through[positions][is_image]) if is_image.any() else None
    return AttentionFlow(labels, total[positions], through[positions], direct[positions], share, image_through)


# ---- faithfulness --------------------------------------------------------------------------------


@dataclass
class DeletionCheck(FrameMixin):
    """Deleting the top-attributed patches vs random ones (their embeddings set to the baseline).

    Attributes:
        n_deleted: patches deleted per condition.
        score: the cosine before deletion.
        top_score: the cosine with the n top-attributed patches deleted.
        random_scores: [trials] the cosine with n random patches deleted.
    """

    n_deleted: int
    score: float
    top_score: float
    random_scores: np.ndarray

    @property
    def top_drop(self) -> float:
        return self.score - self.top_score

    @property
    def random_drop(self) -> float:
        return self.score - float(self.random_scores.mean())

    @property
    def faithful(self) -> bool:
        return self.top_drop > self.random_drop

    def rows(self) -> list[dict[str, object]]:
        return [{"condition": "top", "n_deleted": self.n_deleted, "score": self.top_score, "drop": self.top_drop}] + [
            {"condition": f"random {i}", "n_deleted": self.n_deleted, "score": float(s), "drop": self.score - float(s)}
            for i, s in enumerate(self.random_scores)
        ]

    def plot(self, title: str = ""):
        from lame_tools import viz_probe as viz

        return viz.deletion_bars(self.top_drop, self.score - self.random_scores,
                                 title=title or f"deleting {self.n_deleted} patches")


def deletion_check(
    model: LameModel,
    query: Item,
    item: Item,
    attribution: Attribution | None = None,
    fraction: float = 0.25,
    trials: int = 16,
    seed: int = 0,
    mode: str | None = None,
) -> DeletionCheck:
    """Delete the query's top-attributed image patches (the `fraction` with the highest scores) and
    as many random patches (`trials` draws, fixed seed); cosine before and after each."""
    mode = mode or model.config.default_mode
    if query.image is None:
        raise InputError("The deletion check needs a query with an image.")
    attribution = attribution or attribute(model, query, item, mode=mode, flow=False)
    with torch.no_grad():
        t_emb = model.forward_items([item], mode).embeddings.float()[0]
    fn = score_function(model, query, mode, t_emb)
    image_positions = np.flatnonzero(fn.is_image)
    scores = attribution.query.image_scores.reshape(-1)  # type: ignore[union-attr]
    n = max(1, int(round(fraction * len(image_positions))))
    rng = np.random.default_rng(seed)
    chosen = [np.argsort(-scores, kind="stable")[:n]] + [rng.choice(len(image_positions), n, replace=False)
                                                         for _ in range(trials)]
    points = fn.x[None].repeat(len(chosen) + 1, 1, 1)
    for row, patches in enumerate(chosen, start=1):
        points[row, image_positions[patches]] = fn.baseline[image_positions[patches]]
    with torch.no_grad():
        out = fn(points).float().cpu().numpy()
    return DeletionCheck(n, float(out[0]), float(out[1]), out[2:])
