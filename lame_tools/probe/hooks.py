"""Named hook points on the native Qwen2-VL layers of a LameModel, and `run_with_cache`.

The backbone is transformers' own `Qwen2VLForConditionalGeneration`; nothing is forked. Hooks are
plain PyTorch forward (pre-)hooks on its modules, named in the TransformerLens way:

    hook_embed                       input embeddings of the language model (image features merged)
    blocks.{i}.hook_resid_pre        input of decoder layer i            [batch, seq, hidden]
    blocks.{i}.attn.hook_pattern     softmax(QK^T) rows of the query positions, recomputed from the
                                     layer's own q/k projections with the rotary embedding applied
                                                                         [batch, head, query, key]
    blocks.{i}.hook_attn_out         output of the attention block       [batch, seq, hidden]
    blocks.{i}.hook_mlp_out          output of the MLP                   [batch, seq, hidden]
    blocks.{i}.hook_resid_post       output of decoder layer i           [batch, seq, hidden]
    ln_final.hook_normalized         final norm output (= the states LaME pools)  [batch, seq, hidden]

Why the pattern is recomputed: the timed path runs sdpa, which returns no weights; switching to
eager attention is slower and may change results. The pre-hook on `self_attn` receives the normed
hidden states and the rotary cos/sin, so the few query rows we want cost one small matmul a layer.

Hooks live only inside `hooks(...)`, a context manager that removes every handle it added even
when the forward pass raises.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.models.qwen2_vl.modeling_qwen2_vl import apply_rotary_pos_emb, repeat_kv

from lame_tools.constants import EMBED_TOKEN, MODES, reason_token
from lame_tools.errors import InputError
from lame_tools.inputs import Item
from lame_tools.model import EmbedOutput, LameModel


@dataclass
class HookContext:
    """What a hook function may want to know about the pass it runs in.

    Attributes:
        name: the hook point's name.
        layer: decoder layer index, or None for hook_embed / ln_final.
        attention_mask: [batch, seq] 1 for real tokens, 0 for left padding.
        positions: [query] sequence indices whose rows are kept (and whose attention is recomputed).
    """

    name: str
    layer: int | None
    attention_mask: torch.Tensor
    positions: torch.Tensor


HookFn = Callable[[torch.Tensor, HookContext], torch.Tensor | None]


def language_model(model: LameModel) -> nn.Module:
    return model.backbone.model.language_model


def num_layers(model: LameModel) -> int:
    return len(language_model(model).layers)


def hook_point_names(model: LameModel) -> list[str]:
    """Every hook point name of this model, in forward order."""
    names = ["hook_embed"]
    for i in range(num_layers(model)):
        names += [
            f"blocks.{i}.{p}"
            for p in ("hook_resid_pre", "attn.hook_pattern", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
        ]
    return names + ["ln_final.hook_normalized"]


def _select_names(model: LameModel, names: str | Sequence[str] | Callable[[str], bool] | None) -> list[str]:
    """Resolve a names filter: None (all), a glob or list of globs ("blocks.*.hook_resid_post"), or a predicate."""
    every = hook_point_names(model)
    if names is None:
        return every
    if callable(names):
        return [n for n in every if names(n)]
    patterns = [names] if isinstance(names, str) else list(names)
    chosen = [n for n in every if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in every)]
    if unmatched:
        raise InputError(f"No hook point matches {unmatched[0]!r}; see lame_tools.probe.hook_point_names(model).")
    return chosen


def recompute_attention_rows(
    attn: nn.Module,
    hidden_states: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) of the query rows `positions`, exactly as Qwen2-VL's attention.

    Args:
        attn: a `Qwen2VLAttention` module (its q/k projections are reused, nothing is copied).
        hidden_states: [batch, seq, hidden], the normed input the module receives.
        position_embeddings: (cos, sin), each [batch, seq, head_dim], mrope already laid out.
        attention_mask: [batch, seq] 1 for real tokens (left padding is 0), or [batch, seq, seq] bool,
            the keys each query may read (a model that `restricts_attention`).
        positions: [query] sequence indices of the rows to compute.

    Returns:
        [batch, head, query, seq] float32 attention weights (rows sum to 1 over real, causal keys).
    """
    batch, seq, _ = hidden_states.shape
    head_dim = attn.head_dim
    cos, sin = position_embeddings
    query = attn.q_proj(hidden_states[:, positions]).view(batch, len(positions), -1, head_dim).transpose(1, 2)
    key = attn.k_proj(hidden_states).view(batch, seq, -1, head_dim).transpose(1, 2)
    # rotary: queries take the cos/sin of their own positions, keys those of every position
    query, _ = apply_rotary_pos_emb(query, query, cos[:, positions], sin[:, positions])
    _, key = apply_rotary_pos_emb(key, key, cos, sin)
    key = repeat_kv(key, attn.num_key_value_groups)
    scores = torch.matmul(query.float(), key.float().transpose(2, 3)) * attn.scaling  # [batch, head, query, seq]
    key_index = torch.arange(seq, device=hidden_states.device)
    causal = (key_index[None, :] <= positions.to(key_index.device)[:, None])[None]
    if attention_mask.dim() == 3:
        allowed = causal & attention_mask.bool()[:, positions]
    else:
        allowed = causal & attention_mask.bool()[:, None, :]
    scores = scores.masked_fill(~allowed[:, None], torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1)


def _output_hook(ctx: HookContext, fn: HookFn):
    """A forward hook passing a module's output (or its first element) to `fn`; a returned tensor replaces it."""

    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        value = output[0] if isinstance(output, tuple) else output
        new = fn(value, ctx)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return hook


def _input_hook(ctx: HookContext, fn: HookFn, key: str):
    """A forward pre-hook passing a module's first input (positional or keyword `key`) to `fn`."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> Any:
        value = args[0] if args else kwargs[key]
        new = fn(value, ctx)
        if new is None:
            return None
        if args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, key: new}

    return hook


def _pattern_hook(ctx: HookContext, fn: HookFn, own_mask: bool = False):
    """A pre-hook on an attention module that recomputes the rows `ctx.positions` of its pattern for `fn`.
    `own_mask`: the model builds its own [batch, 1, seq, seq] mask (`LameModel.attention_mask`), which
    the module receives; the pattern then uses it instead of causal padding."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        keys = kwargs["attention_mask"][:, 0] == 0 if own_mask else ctx.attention_mask
        with torch.no_grad():
            pattern = recompute_attention_rows(module, hidden, kwargs["position_embeddings"], keys, ctx.positions)
        fn(pattern, ctx)

    return hook


def _attach(lm: nn.Module, name: str, fn: HookFn, mask: torch.Tensor, pos: torch.Tensor, own_mask: bool) -> Any:
    """Register `fn` at hook point `name` of the language model `lm`; returns the handle."""
    unknown = InputError(f"Unknown hook point {name!r}; see lame_tools.probe.hook_point_names(model).")
    if name == "hook_embed":
        return lm.register_forward_pre_hook(
            _input_hook(HookContext(name, None, mask, pos), fn, "inputs_embeds"), with_kwargs=True
        )
    if name == "ln_final.hook_normalized":
        return lm.norm.register_forward_hook(_output_hook(HookContext(name, None, mask, pos), fn))
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit() or int(parts[1]) >= len(lm.layers):
        raise unknown
    layer_index, point = int(parts[1]), ".".join(parts[2:])
    layer = lm.layers[layer_index]
    ctx = HookContext(name, layer_index, mask, pos)
    if point == "hook_resid_pre":
        return layer.register_forward_pre_hook(_input_hook(ctx, fn, "hidden_states"), with_kwargs=True)
    if point == "attn.hook_pattern":
        return layer.self_attn.register_forward_pre_hook(_pattern_hook(ctx, fn, own_mask), with_kwargs=True)
    modules = {"hook_resid_post": layer, "hook_attn_out": layer.self_attn, "hook_mlp_out": layer.mlp}
    if point not in modules:
        raise unknown
    return modules[point].register_forward_hook(_output_hook(ctx, fn))


@contextmanager
def hooks(
    model: LameModel,
    fwd_hooks: Iterable[tuple[str, HookFn]],
    attention_mask: torch.Tensor,
    positions: torch.Tensor,
) -> Iterator[None]:
    """Attach hook functions to named points for the duration of the block; always removes them.

    A hook function gets (value, context) and may return a tensor of the same shape to replace the
    value (not for `attn.hook_pattern`, which is read-only: it is recomputed beside the real attention).
    """
    lm = language_model(model)
    handles: list[torch.utils.hooks.RemovableHandle] = []
    mask = attention_mask.to(model.device)
    pos = positions.to(model.device)
    try:
        for name, fn in fwd_hooks:
            handles.append(_attach(lm, name, fn, mask, pos, model.restricts_attention))
        yield
    finally:
        for handle in handles:
            handle.remove()


# ---- batches ---------------------------------------------------------------------------------


@dataclass
class PreparedBatch:
    """A processed batch plus what probing needs to read it.

    Attributes:
        batch: the processed batch on the model's device (input_ids, attention_mask, ... [batch, seq]).
        num_reason: K reason tokens in the suffix (0 for discriminative and cot).
        num_query: rows probed per item: the suffix's reason tokens and [EMBED] (cot: [EMBED] only).
        query_tokens: their names, e.g. ["[REASON_0]", ..., "[EMBED]"].
        rationale_ids: per row, the generated rationale (cot only).
    """

    batch: dict[str, torch.Tensor]
    num_reason: int
    num_query: int
    query_tokens: list[str]
    rationale_ids: list[list[int]] | None = None

    @property
    def positions(self) -> torch.Tensor:
        """Sequence indices of the probed rows (the suffix is always at the end: left padding)."""
        seq = self.batch["input_ids"].shape[1]
        return torch.arange(seq - self.num_query, seq)


def prepare_batch(
    model: LameModel,
    items: list[Item],
    mode: str | None = None,
    reason_indices: Sequence[int] | None = None,
) -> PreparedBatch:
    """Build the batch a mode would run (`model.prepare`, on the model's device), with the probed rows named.

    Args:
        reason_indices: latent mode only: which reason tokens to keep in the suffix (default all K;
            ablation by dropping passes a subset).
    """
    mode = mode or model.config.default_mode
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, got {mode!r}.")
    if not items:
        raise InputError("Give at least one input to probe.")
    if mode == "latent":
        k = model.num_reason_tokens
        if reason_indices is None:
            kept, batch = list(range(k)), model.prepare(items, "latent")
        else:
            kept = list(reason_indices)
            if any(not 0 <= i < k for i in kept):
                raise InputError(f"Reason token indices must be in 0..{k - 1}, got {kept}.")
            ids = model.processor.reason_token_ids(k)
            suffix = [ids[i] for i in kept] + [model.processor.embed_token_id]
            batch = model.move_batch(model.processor(items, suffix))
        names = [reason_token(i) for i in kept] + [EMBED_TOKEN]
        return PreparedBatch(batch, len(kept), len(names), names)
    if mode == "discriminative":
        return PreparedBatch(model.prepare(items, "discriminative"), 0, 1, [EMBED_TOKEN])
    rationales = model.generate_rationales(items)
    return PreparedBatch(model.prepare(items, "cot", rationales), 0, 1, [EMBED_TOKEN], rationales)


def run_prepared(model: LameModel, prepared: PreparedBatch) -> EmbedOutput:
    """One pass over a prepared batch (no gradients); the same computation as `forward_items`."""
    with torch.no_grad():
        out = model.embed_pass(prepared.batch, prepared.num_reason)
    out.rationale_ids = prepared.rationale_ids
    return out


def run_with_hooks(
    model: LameModel,
    items: list[Item] | PreparedBatch,
    fwd_hooks: Iterable[tuple[str, HookFn]],
    mode: str | None = None,
) -> EmbedOutput:
    """Run one pass with hook functions attached (they may edit values), then detach them."""
    prepared = items if isinstance(items, PreparedBatch) else prepare_batch(model, items, mode)
    with hooks(model, fwd_hooks, prepared.batch["attention_mask"], prepared.positions):
        return run_prepared(model, prepared)


# ---- cache -----------------------------------------------------------------------------------


@dataclass
class ActivationCache:
    """Captured values by hook name, kept only for the requested rows, on the CPU as float32.

    Shapes: residual-type points [batch, query, hidden]; `attn.hook_pattern` [batch, head, query, seq]
    (all keys, only the query rows). `positions` are the kept sequence indices; with
    `positions="all"` every row is kept (and the pattern is the full [batch, head, seq, seq]).
    """

    values: dict[str, torch.Tensor] = field(default_factory=dict)
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    query_tokens: list[str] = field(default_factory=list)
    input_ids: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    attention_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    image_grid_thw: np.ndarray | None = None

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.values[name]

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def keys(self) -> list[str]:
        return list(self.values)

    def stack(self, point: str, layers: Sequence[int] | None = None) -> torch.Tensor:
        """Stack `blocks.{i}.{point}` over layers: [layer, ...]."""
        names = [n for n in self.values if n.startswith("blocks.") and n.split(".", 2)[2] == point]
        if layers is not None:
            names = [f"blocks.{i}.{point}" for i in layers]
        return torch.stack([self.values[n] for n in names])

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.values.values())


def run_with_cache(
    model: LameModel,
    items: list[Item] | PreparedBatch,
    names: str | Sequence[str] | Callable[[str], bool] | None = "blocks.*.hook_resid_post",
    mode: str | None = None,
    positions: str = "suffix",
) -> tuple[EmbedOutput, ActivationCache]:
    """Run one pass and keep the named values for the probed rows only.

    Args:
        items: inputs (`model.make_items(...)`), or a `PreparedBatch`.
        names: glob(s) over `hook_point_names(model)`, or a predicate; None = every point.
        mode: latent / discriminative / cot (default: the model's).
        positions: "suffix" keeps the reason tokens and [EMBED] (the last rows of every row of the
            left-padded batch); "all" keeps every row (large: only for small inputs).

    Returns:
        (the pass's EmbedOutput, the ActivationCache).
    """
    if positions not in ("suffix", "all"):
        raise InputError(f"positions must be 'suffix' or 'all', got {positions!r}.")
    prepared = items if isinstance(items, PreparedBatch) else prepare_batch(model, items, mode)
    selected = _select_names(model, names)
    seq = prepared.batch["input_ids"].shape[1]
    keep = prepared.positions if positions == "suffix" else torch.arange(seq)
    cache = ActivationCache(
        positions=keep.numpy(),
        query_tokens=list(prepared.query_tokens) if positions == "suffix" else [],
        input_ids=prepared.batch["input_ids"].cpu().numpy(),
        attention_mask=prepared.batch["attention_mask"].cpu().numpy(),
        image_grid_thw=prepared.batch["image_grid_thw"].cpu().numpy() if "image_grid_thw" in prepared.batch else None,
    )

    def store(value: torch.Tensor, ctx: HookContext) -> None:
        if ctx.name.endswith("hook_pattern"):
            cache.values[ctx.name] = value.detach().float().cpu()  # already only the kept rows
        else:
            cache.values[ctx.name] = value[:, ctx.positions].detach().float().cpu()

    with hooks(model, [(n, store) for n in selected], prepared.batch["attention_mask"], keep):
        out = run_prepared(model, prepared)
    return out, cache
