"""K in the loop: one query's embedding, top result and decoder read-out as reason tokens are removed.

For k = K, K-1, ..., 0 the query is embedded with only its first k reason tokens (`how="drop"`: the
later ones removed from the suffix, as `ablate(how="drop")` does, so `[EMBED]` moves K - k positions
closer to the prompt; `how="mask"`: the later ones stay in place but `[EMBED]` may not attend to them,
as `ablate(how="mask")` does, so only what it reads from them is removed), then searched in a corpus
(an exact `EmbeddingIndex`), and its k reason states are read out by the latent decoder (the missing
ones zeroed, as `decode_reason_states(keep=...)` does). Causal attention means the first k reason
states are the same with or without the later tokens: only [EMBED], and so the embedding, changes.
Where the two differ, the difference is the position shift, not the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.inputs import Item
from lame_tools.model import LameModel
from lame_tools.probe.hooks import prepare_batch, run_prepared
from lame_tools.probe.readout import decode_reason_states
from lame_tools.probe.results import FrameMixin

SWEEP_REMOVALS = ("drop", "mask")


@dataclass
class KSweep(FrameMixin):
    """One row per k (K first).

    Attributes:
        ks: [K + 1] reason tokens kept, K..0.
        embeddings: [K + 1, D] the query's embedding with k reason tokens.
        cosine_to_full: [K + 1] cosine of each embedding to the K-token one.
        top_ids: [K + 1, top_k] corpus ids of the best results; top_scores: their cosines.
        top_labels: per k, the label of the best result.
        readouts: per k, the decoder's read-out of the k reason states ("" for k = 0 or no decoder).
        how: how the other tokens were removed, "drop" or "mask" (`SWEEP_REMOVALS`).
    """

    ks: list[int]
    embeddings: np.ndarray
    cosine_to_full: np.ndarray
    top_ids: np.ndarray
    top_scores: np.ndarray
    top_labels: list[str]
    readouts: list[str]
    how: str = "drop"

    def rows(self) -> list[dict[str, object]]:
        return [{"k": k, "cosine_to_full": float(c), "top_id": int(i[0]), "top_label": label,
                 "top_score": float(s[0]), "readout": r, "how": self.how}
                for k, c, i, s, label, r in zip(self.ks, self.cosine_to_full, self.top_ids, self.top_scores,
                                                self.top_labels, self.readouts)]

    def plot(self, title: str = ""):
        from lame_tools import viz_probe

        return viz_probe.k_sweep_figure(self.ks, self.cosine_to_full, self.top_scores[:, 0], self.top_labels,
                                        self.readouts, title=title or "K in the loop",
                                        kept_label="reason tokens kept (K)" if self.how == "drop"
                                        else "reason tokens [EMBED] reads (K; positions kept)")


def k_sweep(
    model: LameModel,
    query: Item,
    corpus: EmbeddingIndex | np.ndarray,
    labels: Sequence[str] | None = None,
    top_k: int = 5,
    max_new_tokens: int = 24,
    how: str = "drop",
) -> KSweep:
    """Embed `query` with K, K-1, ..., 0 reason tokens; search `corpus`; read each out.

    Args:
        query: one model input (`Example.query_item()` or `Item(...)`).
        corpus: an `EmbeddingIndex`, or [N, D] unit-norm embeddings (ids 0..N-1), of the same model
            and mode (latent).
        labels: a label per corpus id (default: the ids as text).
        how: "drop" (the later tokens leave the sequence) or "mask" (they stay, hidden from `[EMBED]`).
    """
    if how not in SWEEP_REMOVALS:
        raise InputError(f"how must be one of {SWEEP_REMOVALS}, got {how!r}.")
    k = model.num_reason_tokens
    if k == 0:
        raise InputError("K in the loop needs a latent-mode model with reason tokens (K > 0).")
    index = corpus if isinstance(corpus, EmbeddingIndex) else EmbeddingIndex()
    if not isinstance(corpus, EmbeddingIndex):
        index.add(corpus)
    if len(index) == 0:
        raise InputError("The corpus to search is empty.")
    names = {int(i): str(i) for i in index.ids} if labels is None else dict(zip(map(int, index.ids), labels))
    ks = list(range(k, -1, -1))
    embeddings, readouts, full_states = [], [], None
    full = prepare_batch(model, [query], "latent") if how == "mask" else None  # drop prepares each k
    for kept in ks:
        if how == "mask":
            with model.hiding(range(kept, k)):
                out = run_prepared(model, full)
        else:
            out = run_prepared(model, prepare_batch(model, [query], "latent", reason_indices=list(range(kept))))
        embeddings.append(out.embeddings[0].float().cpu().numpy())
        if kept == k:
            full_states = out.reason_states
        if model.decoder is None or kept == 0:
            readouts.append("")
        else:
            readouts.append(decode_reason_states(model, full_states, max_new_tokens, 1, list(range(kept))).texts[0])
    matrix = np.stack(embeddings)
    scores, ids = index.search(matrix, top_k)
    return KSweep(ks, matrix, matrix @ matrix[0], ids, scores, [names.get(int(i[0]), str(i[0])) for i in ids], readouts,
                  how)
