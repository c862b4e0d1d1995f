"""Ablation of reason tokens: drop, zero, swap or mask token k (or a set), re-embed, and measure the damage.

    drop  the token is removed from the input (the sequence is one shorter; positions shift)
    zero  its input embedding is zeroed (the position stays; only biases flow from it)
    swap  its residual stream, at the input and after every layer, is replaced by the same token's
          stream from another query (activation patching; default donor: the next example)
    mask  `[EMBED]` may not attend to it at any layer (`LameModel.hiding`); the sequence and its
          positions stay, so against drop it separates what `[EMBED]` reads from the tokens from
          the shift of `[EMBED]`'s position that dropping them causes

Reported per condition and query: the cosine between the ablated and the original embedding, and
the rank of the correct target among the example's candidates before and after.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lame_tools.constants import SEQUENTIAL_MODE, reason_token
from lame_tools.data.shapes import TARGET_INSTRUCTION, Example
from lame_tools.errors import InputError
from lame_tools.model import LameModel
from lame_tools.probe.hooks import HookContext, num_layers, prepare_batch, run_prepared, run_with_cache, run_with_hooks
from lame_tools.probe.results import FrameMixin
from lame_tools.ranking import positive_rank

ABLATIONS = ("drop", "zero", "swap", "mask")


@dataclass
class AblationResult(FrameMixin):
    """Shapes: C conditions, N queries.

    Attributes:
        conditions: names such as "drop [REASON_3]" or "zero [REASON_0,REASON_1]".
        how: "drop", "zero", "swap" or "mask".
        token_sets: the reason token indices ablated in each condition.
        cosine: [C, N] cosine between ablated and original embeddings (1 = unchanged).
        rank_before: [N] 1-based rank of the correct target among the candidates, unablated.
        rank_after: [C, N] the same after ablation.
        n_candidates: [N] candidates per query.
    """

    conditions: list[str]
    how: str
    token_sets: list[list[int]]
    cosine: np.ndarray
    rank_before: np.ndarray
    rank_after: np.ndarray
    n_candidates: np.ndarray

    def summary(self) -> list[dict[str, float | str]]:
        """One row per condition: mean cosine, mean rank change, Hit@1 before and after."""
        rows = []
        for c, name in enumerate(self.conditions):
            rows.append(
                {
                    "condition": name,
                    "mean_cosine": float(self.cosine[c].mean()),
                    "mean_rank_change": float((self.rank_after[c] - self.rank_before).mean()),
                    "hit1_before": float((self.rank_before == 1).mean()),
                    "hit1_after": float((self.rank_after[c] == 1).mean()),
                }
            )
        return rows

    def rows(self) -> list[dict[str, object]]:
        """Long format: one row per (condition, query)."""
        return [{"condition": name, "query": q, "cosine": float(self.cosine[c, q]),
                 "rank_before": int(self.rank_before[q]), "rank_after": int(self.rank_after[c, q]),
                 "n_candidates": int(self.n_candidates[q])}
                for c, name in enumerate(self.conditions) for q in range(self.cosine.shape[1])]

    def plot(self, title: str = ""):
        """Per condition: 1 - mean cosine to the original embedding, and the mean rank change."""
        from lame_tools import viz

        rows = self.summary()
        return viz.ablation_bars([r["condition"] for r in rows], [r["mean_cosine"] for r in rows],
                                 [r["mean_rank_change"] for r in rows], title=title or f"{self.how} ablation")

    def to_csv(self) -> str:
        """Long format: condition, query, cosine, rank_before, rank_after, n_candidates."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["condition", "query", "cosine", "rank_before", "rank_after", "n_candidates"])
        for c, name in enumerate(self.conditions):
            for q in range(self.cosine.shape[1]):
                writer.writerow(
                    [
                        name,
                        q,
                        f"{self.cosine[c, q]:.6f}",
                        self.rank_before[q],
                        self.rank_after[c, q],
                        self.n_candidates[q],
                    ]
                )
        return out.getvalue()


def _token_sets(tokens: str | Sequence[int] | Sequence[Sequence[int]], k: int) -> list[list[int]]:
    if tokens == "each":
        return [[i] for i in range(k)]
    if tokens == "all":
        return [list(range(k))]
    sets = [[int(t)] if isinstance(t, (int, np.integer)) else [int(x) for x in t] for t in tokens]  # type: ignore[union-attr]
    for s in sets:
        if not s or any(not 0 <= i < k for i in s):
            raise InputError(f"Reason token indices must be non-empty and in 0..{k - 1}, got {s}.")
    return sets


def _ranks(embeddings: np.ndarray, candidate_embeddings: list[np.ndarray]) -> np.ndarray:
    """1-based rank of candidate 0 (the positive) for each query, ties ranked as evaluation ranks them
    (pessimistically: a collapsed model ranks its positive last)."""
    return np.array([positive_rank(cands @ emb) for emb, cands in zip(embeddings, candidate_embeddings)])


def ablate(
    model: LameModel,
    examples: Sequence[Example],
    tokens: str | Sequence[int] | Sequence[Sequence[int]] = "each",
    how: str = "zero",
    donors: Sequence[Example] | None = None,
    batch_size: int = 16,
) -> AblationResult:
    """Ablate reason tokens of Shapes queries and measure cosine and target-rank changes.

    Args:
        examples: Shapes examples with text candidates (image-target examples are skipped).
        tokens: "each" (one condition per reason token), "all", a list of indices (one condition
            each) or a list of index lists (one condition per set).
        how: "drop", "zero", "swap" or "mask". A sequential-latent model (default mode "sequential")
            runs its own K steps, and only "mask" (its `[EMBED]` step does not read the chosen steps)
            applies to it.
        donors: swap only: the queries whose token states are patched in (default: each example's
            next one, so a different scene).
        batch_size: queries per pass.
    """
    if how not in ABLATIONS:
        raise InputError(f"how must be one of {ABLATIONS}, got {how!r}.")
    k = model.num_reason_tokens
    if k == 0:
        raise InputError("This model has no reason tokens to ablate (K = 0).")
    sequential = model.config.default_mode == SEQUENTIAL_MODE
    if sequential and how != "mask":
        raise InputError(f"A sequential-latent model's steps can be masked (how='mask'), not {how!r}: zero, swap "
                         "and drop act on the parallel reason tokens of one pass.")
    usable = [e for e in examples if e.candidates and not e.target_has_image]
    if not usable:
        raise InputError("Ablation needs examples with text candidates (not text-to-image retrieval).")
    sets = _token_sets(tokens, k)
    if how == "swap":
        donors = list(donors) if donors is not None else [usable[(i + 1) % len(usable)] for i in range(len(usable))]
        if len(donors) != len(usable):
            raise InputError(f"Got {len(donors)} donors for {len(usable)} usable examples.")
    candidate_texts = sorted({c for e in usable for c in e.candidates})
    candidate_matrix = model.encode(texts=candidate_texts, instruction=TARGET_INSTRUCTION, batch_size=64)
    index = {t: i for i, t in enumerate(candidate_texts)}
    candidate_embeddings = [candidate_matrix[[index[c] for c in e.candidates]] for e in usable]

    original, ablated = [], [[] for _ in sets]
    for start in range(0, len(usable), batch_size):
        chunk = usable[start : start + batch_size]
        items = [e.query_item() for e in chunk]
        if sequential:
            with torch.no_grad():
                original.append(model.forward_sequential(items).embeddings.cpu().numpy())
                for c, token_set in enumerate(sets):
                    with model.hiding(token_set):
                        ablated[c].append(model.forward_sequential(items).embeddings.cpu().numpy())
            continue
        base = prepare_batch(model, items, "latent")
        original.append(run_prepared(model, base).embeddings.cpu().numpy())
        donor_cache = None
        if how == "swap":
            donor_items = [e.query_item() for e in donors[start : start + batch_size]]  # type: ignore[index]
            names = ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(num_layers(model))]
            _, donor_cache = run_with_cache(model, donor_items, names, mode="latent")
        for c, token_set in enumerate(sets):
            if how == "drop":
                kept = [i for i in range(k) if i not in token_set]
                out = run_prepared(model, prepare_batch(model, items, "latent", reason_indices=kept))
            elif how == "mask":
                with model.hiding(token_set):
                    out = run_prepared(model, base)
            else:
                out = run_with_hooks(model, base, _patch_hooks(model, token_set, how, donor_cache))
            ablated[c].append(out.embeddings.cpu().numpy())
    original_embeddings = np.concatenate(original)
    ablated_embeddings = [np.concatenate(a) for a in ablated]
    names = [f"{how} [" + ",".join(reason_token(i).strip("[]") for i in s) + "]" for s in sets]
    return AblationResult(
        conditions=names,
        how=how,
        token_sets=sets,
        cosine=np.stack([(a * original_embeddings).sum(1) for a in ablated_embeddings]),
        rank_before=_ranks(original_embeddings, candidate_embeddings),
        rank_after=np.stack([_ranks(a, candidate_embeddings) for a in ablated_embeddings]),
        n_candidates=np.array([len(e.candidates) for e in usable]),
    )


def _patch_hooks(model: LameModel, token_set: list[int], how: str, donor_cache) -> list:
    """Hooks that zero (input only) or swap (input and every layer) the rows of the chosen tokens.

    Suffix row j of the probed positions is [REASON_j] (j < K), the last one [EMBED].
    """

    def make(name: str):
        def hook(value: torch.Tensor, ctx: HookContext) -> torch.Tensor:
            rows = ctx.positions[token_set]
            value = value.clone()
            if how == "zero":
                value[:, rows] = 0
            else:
                value[:, rows] = donor_cache[name][:, token_set].to(value.dtype).to(value.device)
            return value

        return hook

    names = ["hook_embed"]
    if how == "swap":
        names += [f"blocks.{i}.hook_resid_post" for i in range(num_layers(model))]
    return [(n, make(n)) for n in names]
