"""A FAISS-backed embedding index for large corpora: exact inner product by default, HNSW or IVF
for approximate search, saved without pickle.

- "exact": `IndexFlatIP`. Results equal `EmbeddingIndex.search` (same ids, scores to float
  rounding): FAISS picks among equal scores in its own order, so each query asks FAISS for more
  than k results until the k-th score is no longer tied with the last one returned, then ranks
  those candidates with `lame_tools.ranking.top_k` by id, the `EmbeddingIndex` tie rule.
- "hnsw" (`IndexHNSWFlat`) and "ivf" (`IndexIVFFlat`, trained on the first vectors added):
  approximate; `recall_at_10()` measures them against exact search, and `build_faiss_index`
  reports it when the index is built.
- Persistence: `faiss.write_index` into `index.faiss`, the ids as `ids.npy`, and `manifest.json`
  with the sha256 of both; `load` refuses files whose hash differs (one sentence) and never unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from lame_tools.atomic import atomic_save_npy, atomic_write_json
from lame_tools.errors import InputError
from lame_tools.index import as_embedding_matrix, new_index_ids, unit_rows
from lame_tools.ranking import top_k

KINDS = ("exact", "hnsw", "ivf")
MANIFEST_FORMAT = "lame-faiss-index"
INDEX_FILE, IDS_FILE, MANIFEST_FILE = "index.faiss", "ids.npy", "manifest.json"


def _faiss():
    try:
        import faiss
    except ImportError:
        raise InputError("The FAISS index needs the faiss-cpu package (pip install faiss-cpu).") from None
    return faiss


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class FaissIndex:
    """Top-k inner-product search over unit-norm float32 embeddings with FAISS.

    Example:
        >>> index = FaissIndex(dim=128, kind="hnsw")
        >>> index.add(model.encode(images=paths))
        >>> scores, ids = index.search(model.encode(texts=["a red circle"]), k=10)
    """

    def __init__(
        self,
        dim: int,
        kind: str = "exact",
        hnsw_m: int = 32,
        ivf_lists: int | None = None,
        ef_search: int = 128,
        nprobe: int = 16,
    ) -> None:
        if kind not in KINDS:
            raise InputError(f"The index kind must be one of {', '.join(KINDS)}, not {kind!r}.")
        self.dim, self.kind = int(dim), kind
        self.hnsw_m, self.ivf_lists, self.ef_search, self.nprobe = hnsw_m, ivf_lists, ef_search, nprobe
        self._index = self._new_index() if kind != "ivf" else None
        self._ids = np.zeros(0, dtype=np.int64)

    def _new_index(self, train: np.ndarray | None = None):
        faiss = _faiss()
        if self.kind == "exact":
            return faiss.IndexFlatIP(self.dim)
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = self.ef_search
            return index
        # about sqrt(n) lists (at most 1024), trained for 10 rounds on at most 40 vectors per list
        lists = self.ivf_lists or min(1024, max(1, int(np.sqrt(train.shape[0]))))
        lists = max(1, min(lists, train.shape[0] // 8 or 1))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        sample = np.random.default_rng(0).permutation(train.shape[0])[: 40 * lists]
        index.train(np.ascontiguousarray(train[np.sort(sample)]))
        index.nprobe = min(self.nprobe, lists)
        return index

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    @property
    def ids(self) -> np.ndarray:
        view = self._ids.view()
        view.flags.writeable = False
        return view

    def add(self, embeddings: object, ids: object | None = None, normalize: bool = False) -> np.ndarray:
        """Append embeddings (the rules of `EmbeddingIndex.add`); returns their ids."""
        matrix = unit_rows(as_embedding_matrix(embeddings, self.dim, "embeddings"), normalize)
        new_ids = new_index_ids(ids, matrix.shape[0], self._ids)
        n = matrix.shape[0]
        if n == 0:
            return new_ids
        if self._index is None:
            self._index = self._new_index(train=matrix)
        self._index.add(matrix)
        self._ids = np.concatenate([self._ids, new_ids])
        return new_ids

    def search(self, queries: object, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best ids per query, best first; equal scores ordered by the lower id.

        Returns:
            (scores [n, k'] float32, ids [n, k'] int64), k' = min(k, len(index)).
        """
        if k < 1:
            raise InputError("k must be at least 1.")
        matrix = as_embedding_matrix(queries, self.dim, "queries")
        k = min(k, len(self))
        if k == 0 or matrix.shape[0] == 0:
            return np.zeros((matrix.shape[0], 0), np.float32), np.zeros((matrix.shape[0], 0), np.int64)
        depth = min(len(self), k + 8)
        while True:
            scores, positions = self._index.search(matrix, depth)
            if self.kind != "exact" or depth == len(self):
                break
            # a tie at the k-th place may continue past what FAISS returned: ask for more
            if not (scores[:, k - 1] <= scores[:, depth - 1]).any():
                break
            depth = min(len(self), depth * 2)
        out_scores = np.zeros((matrix.shape[0], k), np.float32)
        out_ids = np.zeros((matrix.shape[0], k), np.int64)
        for row in range(matrix.shape[0]):
            found = positions[row] >= 0
            ids, row_scores = self._ids[positions[row][found]], scores[row][found]
            top = top_k(row_scores, k, ties=ids)
            out_scores[row, : top.size], out_ids[row, : top.size] = row_scores[top], ids[top]
        return out_scores, out_ids

    def recall_at_10(self, queries: np.ndarray | None = None, sample: int = 200, seed: int = 0) -> float:
        """Mean overlap of this index's top 10 with exact search's, over `queries` (default: `sample`
        stored vectors picked at random)."""
        faiss = _faiss()
        if self.kind == "ivf":
            self._index.make_direct_map()
        stored = self._index.reconstruct_n(0, self._index.ntotal)
        if queries is None:
            rng = np.random.default_rng(seed)
            queries = stored[rng.choice(len(stored), size=min(sample, len(stored)), replace=False)]
        exact = faiss.IndexFlatIP(self.dim)
        exact.add(stored)
        k = min(10, len(self))
        _, truth = exact.search(np.ascontiguousarray(queries, np.float32), k)
        _, found = self._index.search(np.ascontiguousarray(queries, np.float32), k)
        return float(np.mean([len(set(t) & set(f)) / k for t, f in zip(truth, found)]))

    # ---- persistence (no pickle) ---------------------------------------------------------------

    def save(self, folder: str | os.PathLike, extra: dict | None = None) -> Path:
        """Write `index.faiss`, `ids.npy` and `manifest.json` (sha256 of both files) into `folder`."""
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (INDEX_FILE + ".tmp")
        faiss.write_index(self._index if self._index is not None else self._new_index(), str(tmp))
        os.replace(tmp, folder / INDEX_FILE)
        atomic_save_npy(folder / IDS_FILE, self._ids)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": 1,
            "kind": self.kind,
            "dim": self.dim,
            "count": len(self),
            "metric": "inner_product",
            "sha256": {name: _sha256(folder / name) for name in (INDEX_FILE, IDS_FILE)},
            **(extra or {}),
        }
        atomic_write_json(folder / MANIFEST_FILE, manifest)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> FaissIndex:
        """Read an index written by `save`, after checking each file's sha256 against the manifest.

        Raises:
            InputError: a file is missing, altered since it was saved, or unreadable.
        """
        faiss = _faiss()
        folder = Path(folder)
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text())
        except FileNotFoundError:
            raise InputError(f"The index folder {str(folder)!r} has no {MANIFEST_FILE}.") from None
        except (OSError, ValueError):
            raise InputError(f"The index manifest in {str(folder)!r} is not readable JSON.") from None
        if manifest.get("format") != MANIFEST_FORMAT or manifest.get("kind") not in KINDS:
            raise InputError(f"{str(folder)!r} does not hold a FAISS index written by this toolkit.")
        for name in (INDEX_FILE, IDS_FILE):
            path = folder / name
            if not path.is_file():
                raise InputError(f"The index folder {str(folder)!r} has no {name}.")
            if _sha256(path) != manifest.get("sha256", {}).get(name):
                raise InputError(f"The index file {str(path)!r} was changed after it was saved; refusing to load it.")
        ids = np.load(folder / IDS_FILE, allow_pickle=False)
        index = cls(int(manifest["dim"]), manifest["kind"])
        index._index = faiss.read_index(str(folder / INDEX_FILE))
        if index._index.ntotal != ids.shape[0]:
            raise InputError(
                f"The index files in {str(folder)!r} disagree: {index._index.ntotal} vectors, {ids.shape[0]} ids."
            )
        index._ids = ids.astype(np.int64)
        return index
