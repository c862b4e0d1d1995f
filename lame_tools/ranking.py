"""Top-k ranking with explicit, deterministic tie rules: the one implementation the toolkit uses.

Every ranking sorts by score, best first. Equal scores are ordered by a tie key, lower first, and
then by position, so a ranking never depends on what a partition happened to pick:

- `top_k_pessimistic` (the evaluation's rule): the tie key is the item's relevance gain, so among
  equal scores a relevant item ranks LAST. A model that gives every candidate the same score (a
  collapsed model) ranks its positive last, not first, and never scores Hit@1 by luck of the order.
- `EmbeddingIndex.search` (the app's gallery search): the tie key is the item's id, so equal scores
  come back in id order.

`top_k` ranks one row, `top_k_rows` a batch of rows with one tie key shared by every row.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, ties: np.ndarray | None = None) -> np.ndarray:
    """Positions of the k best of `scores` [N], best first; equal scores: lower `ties` first, then
    lower position (`ties` None: position only).

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
    keys = (candidates, -scores[candidates]) if ties is None else (candidates, ties[candidates], -scores[candidates])
    return candidates[np.lexsort(keys)][:k]


def top_k_rows(scores: np.ndarray, k: int, ties: np.ndarray | None = None) -> np.ndarray:
    """[n, k'] positions of the k best scores of each row of `scores` [n, N], best first, with the
    tie rule of `top_k`; k' = min(k, N).

    Rows with no tie at the k-th place take a vectorised path (one `argpartition`, one sort of k
    items); a row with such a tie is ranked exactly by `top_k`, so both paths give the same answer.
    """
    n, total = scores.shape
    k = min(k, total)
    if k == 0:
        return np.zeros((n, 0), np.int64)
    if k < total:
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # [n, k], unordered
    else:
        top = np.broadcast_to(np.arange(total), (n, total)).copy()
    top_scores = np.take_along_axis(scores, top, axis=1)
    keys = (top, -top_scores) if ties is None else (top, ties[top], -top_scores)
    top = np.take_along_axis(top, np.lexsort(keys, axis=1), axis=1)
    if k < total:
        # argpartition picks arbitrarily among scores tied with the k-th one: redo those rows exactly.
        kth = np.take_along_axis(scores, top[:, -1:], axis=1)
        for row in np.flatnonzero((scores >= kth).sum(axis=1) > k):
            top[row] = top_k(scores[row], k, ties)
    return top.astype(np.int64, copy=False)


def top_k_pessimistic(scores: np.ndarray, gains: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k best scores, best first; ties: lower gain first, then lower position."""
    return top_k(scores, k, ties=gains)


def positive_rank(scores: np.ndarray, positive: int = 0) -> int:
    """1-based rank of candidate `positive` among `scores` under the pessimistic tie rule
    (every other candidate scoring at least as high ranks before it)."""
    others = np.delete(np.asarray(scores), positive)
    return 1 + int((others >= scores[positive]).sum())
