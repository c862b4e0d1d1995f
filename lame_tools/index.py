"""An exact embedding index: unit-norm float32 vectors, cosine (inner product) top-k search.

The app searches a gallery of about a thousand images per text query, the evaluation harness ranks
whole corpora: both want exact answers and no extra dependency, so search is one matrix product
plus a partial sort (`lame_tools.ranking.top_k_rows`). Equal scores are ordered by the lower id,
so a search always returns the same list whatever the insertion order. Save / load write two
`.npy` files atomically and read them without pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lame_tools.atomic import atomic_save_npy
from lame_tools.errors import InputError
from lame_tools.ranking import top_k_rows

NORM_TOLERANCE = 1e-3


def as_embedding_matrix(array: object, dim: int | None = None, name: str = "embeddings") -> np.ndarray:
    """A C-contiguous float32 [n, dim] copy of `array` (a [dim] vector is one row).

    Raises:
        InputError: not 1-D or 2-D, not `dim` wide (when given), or holding NaN / infinite values.
    """
    matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2:
        raise InputError(f"The {name} must be a [n, dim] array, not one of shape {matrix.shape}.")
    if dim is not None and matrix.shape[1] != dim:
        raise InputError(f"The {name} have dimension {matrix.shape[1]} but dimension {dim} is expected.")
    if not np.isfinite(matrix).all():
        raise InputError(f"The {name} contain NaN or infinite values.")
    return np.ascontiguousarray(matrix)


def unit_rows(matrix: np.ndarray, normalize: bool) -> np.ndarray:
    """`matrix` with L2-normalised rows (`normalize`), else `matrix` after checking its rows are unit-norm.

    Raises:
        InputError: an all-zero row to normalise, or rows that are not unit-norm.
    """
    norms = np.linalg.norm(matrix, axis=1)
    if normalize:
        if (norms == 0).any():
            raise InputError("Cannot normalise an all-zero embedding row.")
        return np.ascontiguousarray(matrix / norms[:, None])
    if matrix.shape[0] and np.abs(norms - 1.0).max() > NORM_TOLERANCE:
        raise InputError("The embeddings are not unit-norm; pass normalize=True to normalise them.")
    return matrix


def new_index_ids(ids: object | None, n: int, existing: np.ndarray) -> np.ndarray:
    """The int64 ids of `n` new rows: `ids` checked, or (None) the next n integers after the largest held.

    Raises:
        InputError: not one integer per row, negative, repeated or already in `existing`.
    """
    if ids is None:
        start = int(existing.max()) + 1 if existing.size else 0
        return np.arange(start, start + n, dtype=np.int64)
    new_ids = np.asarray(ids)
    if new_ids.shape != (n,) or not np.issubdtype(new_ids.dtype, np.integer):
        raise InputError(f"Give one integer id per embedding ({n}), not an array of shape {new_ids.shape}.")
    new_ids = new_ids.astype(np.int64)
    if (new_ids < 0).any():
        raise InputError("Index ids must be non-negative integers.")
    if np.unique(new_ids).size != n or np.isin(new_ids, existing).any():
        raise InputError("Index ids must be distinct and not already in the index.")
    return new_ids


class EmbeddingIndex:
    """Exact top-k inner-product search over unit-norm float32 embeddings.

    Example:
        >>> index = EmbeddingIndex(dim=128)
        >>> index.add(model.encode(images=paths))            # ids 0..n-1
        >>> scores, ids = index.search(model.encode(texts=["a red circle"]), k=5)
    """

    def __init__(self, dim: int | None = None) -> None:
        self._dim = dim
        self._embeddings = np.zeros((0, dim or 0), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def ids(self) -> np.ndarray:
        """[N] int64 ids, in insertion order (read-only view)."""
        view = self._ids.view()
        view.flags.writeable = False
        return view

    @property
    def embeddings(self) -> np.ndarray:
        """[N, dim] float32 embeddings, in insertion order (read-only view)."""
        view = self._embeddings.view()
        view.flags.writeable = False
        return view

    def add(self, embeddings: object, ids: object | None = None, normalize: bool = False) -> np.ndarray:
        """Append embeddings; returns their ids.

        Args:
            embeddings: [n, dim] float array, rows of unit norm (as `LameModel.encode` returns).
            ids: n distinct non-negative integers not yet in the index; default: the next n integers
                after the largest id held.
            normalize: L2-normalise the rows instead of refusing rows that are not unit-norm.

        Raises:
            InputError: wrong shape or dimension, non-finite values, rows that are not unit-norm
                (unless `normalize`), or ids that are negative, repeated or already present.
        """
        matrix = unit_rows(as_embedding_matrix(embeddings, self._dim, "embeddings"), normalize)
        new_ids = new_index_ids(ids, matrix.shape[0], self._ids)
        self._dim = matrix.shape[1]
        self._embeddings = np.concatenate([self._embeddings.reshape(-1, self._dim), matrix])
        self._ids = np.concatenate([self._ids, new_ids])
        return new_ids

    def scores(self, queries: object) -> np.ndarray:
        """[n, N] inner products of `queries` with every indexed embedding (insertion order), float32.

        Accumulated in float64, then rounded: a float32 matrix product may round identical rows
        differently (BLAS kernels treat a block's remainder rows their own way), and equal embeddings
        must get equal scores for the tie rule to hold."""
        matrix = as_embedding_matrix(queries, self._dim, "queries")
        table = self._embeddings.reshape(-1, matrix.shape[1])
        return (matrix.astype(np.float64) @ table.astype(np.float64).T).astype(np.float32)

    def search(self, queries: object, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best ids per query, best first; equal scores are ordered by the lower id.

        Args:
            queries: [n, dim] (or [dim]) float array.
            k: how many results per query; more than the index holds returns all of them.

        Returns:
            (scores [n, k'] float32, ids [n, k'] int64), k' = min(k, len(index)).
        """
        if k < 1:
            raise InputError("k must be at least 1.")
        all_scores = self.scores(queries)  # [n, N]
        top = top_k_rows(all_scores, k, ties=self._ids)
        return np.take_along_axis(all_scores, top, axis=1), self._ids[top]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `embeddings.npy` and `ids.npy` into `folder` (each atomically)."""
        folder = Path(folder)
        atomic_save_npy(folder / "embeddings.npy", self._embeddings.reshape(len(self), -1))
        atomic_save_npy(folder / "ids.npy", self._ids)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> EmbeddingIndex:
        """Read an index written by `save` (no pickle).

        Raises:
            InputError: a file is missing, unreadable, or the two files disagree.
        """
        folder = Path(folder)
        arrays = {}
        for name in ("embeddings", "ids"):
            path = folder / f"{name}.npy"
            try:
                arrays[name] = np.load(path, allow_pickle=False)
            except FileNotFoundError:
                raise InputError(f"The index folder {str(folder)!r} has no {path.name}.") from None
            except (ValueError, OSError) as exc:
                raise InputError(f"The index file {str(path)!r} is not a readable .npy array ({exc}).") from None
        embeddings, ids = arrays["embeddings"], arrays["ids"]
        if embeddings.ndim != 2 or ids.shape != (embeddings.shape[0],) or not np.issubdtype(ids.dtype, np.integer):
            raise InputError(
                f"The index files in {str(folder)!r} disagree: {embeddings.shape} embeddings, {ids.shape} ids."
            )
        index = cls(dim=int(embeddings.shape[1]))
        if len(ids):
            index.add(embeddings, ids=ids, normalize=False)
        return index
