"""Ranking with one tie rule for the whole toolkit: among equal scores, a relevant item ranks last.

The rule is pessimistic on purpose: a model that gives every candidate the same score (a collapsed
model) ranks its positive last, not first, so it never scores Hit@1 by luck of the order. Among
equal scores and equal relevance, the lower position comes first, so rankings are deterministic.
"""

from __future__ import annotations

import numpy as np


def top_k_pessimistic(scores: np.ndarray, gains: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best scores, best first; ties: lower gain first, then lower position.

    Only the items scoring at least the k-th best score are sorted, so ranking a large corpus costs
    one partition and a small sort.
    """
    n = scores.shape[0]
    k = min(k, n)
    if k < n:
        threshold = np.partition(scores, n - k)[n - k]
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(n)
    order = np.lexsort((candidates, gains[candidates], -scores[candidates]))
    return candidates[order][:k]


def positive_rank(scores: np.ndarray, positive: int = 0) -> int:
    """1-based rank of candidate `positive` among `scores` under the pessimistic tie rule
    (every other candidate scoring at least as high ranks before it)."""
    others = np.delete(np.asarray(scores), positive)
    return 1 + int((others >= scores[positive]).sum())
