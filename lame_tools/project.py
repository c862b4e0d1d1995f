"""2-D maps of embedding space: UMAP fitted once per (model, corpus), new points placed by `transform`.

A fit is cached twice: in memory for the process, and on disk as a plain NPZ (the corpus
embeddings, their 2-D coordinates and the parameters; loaded with `allow_pickle=False`, so a cache
file can never run code). A UMAP reducer is rebuilt from a disk cache without re-optimising: its
neighbour graph is recomputed with the cached coordinates as the initial layout and zero epochs,
then the cached coordinates are put back, which makes `transform` give exactly what the original
fit gave. PCA (numpy SVD) is the fast fallback and needs no compilation.

UMAP's first fit in a process pays about 9 s of numba compilation; later fits and transforms of a
few hundred points take well under a second.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lame_tools.atomic import atomic_write
from lame_tools.errors import InputError
from lame_tools.fingerprint import array_key, model_fingerprint
from lame_tools.index import EmbeddingIndex, as_embedding_matrix

METHODS = ("umap", "pca")
CACHE_VERSION = 1
_MEMORY: dict[str, Projection] = {}


def default_cache_dir() -> Path:
    """`$LAME_CACHE_DIR/projections`, else `~/.cache/lame_tools/projections`."""
    root = os.environ.get("LAME_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "lame_tools") / "projections"


@dataclass
class Projection:
    """A fitted 2-D projection of a corpus of embeddings.

    Attributes:
        method: "umap" or "pca".
        coords: [N, 2] coordinates of the corpus points.
        corpus: [N, D] the corpus embeddings it was fitted on.
        key: the cache key: the method asked for + (model + corpus + parameters); a UMAP map of
            fewer than 4 points is fitted by PCA (`method` "pca") but keeps its "umap-" key.
        params: the fit's parameters (seed, n_neighbors, min_dist, metric).
        labels: optional per-point labels stored with the fit ({name: [N] array}).
        source: "fit", "memory" or "disk" (where this object came from).
    """

    method: str
    coords: np.ndarray
    corpus: np.ndarray
    key: str
    params: dict[str, Any]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "fit"
    _reducer: Any = field(default=None, repr=False)
    _pca: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    # shared by the copies handed out from the memory cache, so a lazily rebuilt reducer is built once
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def transform(self, embeddings: np.ndarray) -> np.ndarray:
        """Place new points [M, D] on the fitted map -> [M, 2] (deterministic for a fit).

        A map read from the disk cache rebuilds its UMAP reducer on the first call (the
        coordinates themselves need no reducer, so showing a cached map costs no compilation).
        """
        points = as_embedding_matrix(embeddings, self.corpus.shape[1])
        if self.method == "pca":
            mean, components = self._pca  # type: ignore[misc]
            return ((points - mean) @ components.T).astype(np.float32)
        reducer = self._reducer or self._shared.get("reducer")
        if reducer is None:
            reducer = self._shared["reducer"] = _rebuild_reducer(self.params, self.corpus, self.coords)
        self._reducer = reducer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(reducer.transform(points), dtype=np.float32)


    def neighbours(self, point: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest corpus points of corpus point `point` in the full embedding space (not the
        2-D map), itself left out: (ids [k], cosines [k]), best first (see `full_space_neighbours`)."""
        index = self._shared.get("index")
        if index is None:
            index = self._shared["index"] = corpus_index(self.corpus)
        return full_space_neighbours(index, point, k)


def corpus_index(corpus: np.ndarray) -> EmbeddingIndex:
    """An exact cosine index of a map's corpus (rows normalised), ids 0..N-1 in corpus order."""
    index = EmbeddingIndex()
    index.add(corpus, normalize=True)
    return index


def full_space_neighbours(index: EmbeddingIndex, point: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The index's own top-k for corpus point `point` (its row as the query), the point itself left
    out: (ids, cosines), best first, ties by the lower id (`EmbeddingIndex.search`)."""
    if not 0 <= int(point) < len(index):
        raise InputError(f"Point {point} is not on the map (it has {len(index)} points).")
    if k < 1:
        raise InputError("k must be at least 1.")
    scores, ids = index.search(index.embeddings[int(point)], k + 1)
    keep = ids[0] != int(point)
    return ids[0][keep][:k], scores[0][keep][:k]


def _fit_pca(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = points.mean(0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    components = vt[:2]
    if components.shape[0] < 2:  # a single point or one dimension: pad with zeros
        components = np.vstack([components, np.zeros((2 - components.shape[0], points.shape[1]), np.float32)])
    # a sign convention, so the same data always gives the same picture
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(1)])
    return mean.astype(np.float32), (components * np.where(signs == 0, 1, signs)[:, None]).astype(np.float32)


def _umap(params: dict[str, Any], n: int, init: np.ndarray | str = "spectral", n_epochs: int | None = None) -> Any:
    import umap  # lazy: importing umap costs seconds

    return umap.UMAP(
        n_components=2,
        n_neighbors=min(params["n_neighbors"], n - 1),
        min_dist=params["min_dist"],
        metric=params["metric"],
        random_state=params["seed"],
        init=init,
        n_epochs=n_epochs,
    )


def fit_projection(
    embeddings: np.ndarray,
    method: str = "umap",
    key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    labels: dict[str, np.ndarray] | None = None,
    use_cache: bool = True,
) -> Projection:
    """Fit (or fetch) a 2-D projection of a corpus of embeddings.

    Args:
        embeddings: [N, D] corpus embeddings.
        method: "umap" or "pca" (UMAP needs at least 4 points; fewer fall back to PCA).
        key: cache key; default: a hash of the embeddings and parameters. Pass
            `corpus_key(model, corpus_spec)` to find a fit without embedding the corpus again.
        cache_dir: folder of NPZ caches (default `default_cache_dir()`).
        seed, n_neighbors, min_dist, metric: UMAP parameters (fixed seed: repeatable).
        labels: per-point arrays stored with the fit (task, mode, attribute ...).
        use_cache: False always refits (and does not write).

    Returns:
        a `Projection`; `.source` says whether it was fitted, found in memory or read from disk.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, got {method!r}.")
    points = as_embedding_matrix(embeddings)
    params = {
        "seed": seed,
        "n_neighbors": n_neighbors,
        "min_dist": min_dist,
        "metric": metric,
        "version": CACHE_VERSION,
    }
    # The key names the method asked for, so a map of fewer than 4 points (fitted by PCA) is found
    # again under the key it is looked up by; `Projection.method` says which method fitted it.
    key = projection_key(method, key or array_key(points, params))
    if len(points) < 4:
        method = "pca"
    if use_cache:
        found = load_projection(key, cache_dir)
        if found is not None:
            return found
    path = _cache_path(key, cache_dir)
    labels = {name: np.asarray(v) for name, v in (labels or {}).items()}
    if method == "pca":
        pca = _fit_pca(points)
        coords = ((points - pca[0]) @ pca[1].T).astype(np.float32)
        projection = Projection(method, coords, points, key, params, labels, "fit", None, pca)
    else:
        reducer = _umap(params, len(points))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coords = np.asarray(reducer.fit_transform(points), dtype=np.float32)
        projection = Projection(method, coords, points, key, params, labels, "fit", reducer)
    if use_cache:
        _save(path, projection)
        _MEMORY[key] = projection
    return projection


def projection_key(method: str, key: str) -> str:
    """The full cache key of a map: the method asked for ("umap" / "pca"), then the corpus key."""
    return f"{method}-{key}"


def _cache_path(key: str, cache_dir: str | os.PathLike | None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"{key}.npz"


def load_projection(key: str, cache_dir: str | os.PathLike | None = None) -> Projection | None:
    """A fit by its full key ("umap-..." / "pca-..."): from memory, else from the disk cache, else None."""
    if key in _MEMORY:
        found = _MEMORY[key]
        return Projection(
            found.method,
            found.coords,
            found.corpus,
            key,
            found.params,
            found.labels,
            "memory",
            found._reducer,
            found._pca,
            found._shared,
        )
    path = _cache_path(key, cache_dir)
    if not path.is_file():
        return None
    projection = _load(path, key)
    if projection is not None:
        _MEMORY[key] = projection
    return projection


def _save(path: Path, projection: Projection) -> None:
    arrays = {
        "coords": projection.coords,
        "corpus": projection.corpus,
        "meta": np.array(json.dumps({"method": projection.method, "params": projection.params, "key": projection.key})),
    }
    for name, values in projection.labels.items():
        arrays[f"label__{name}"] = values
    if projection._pca is not None:
        arrays["pca_mean"], arrays["pca_components"] = projection._pca
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _load(path: Path, key: str) -> Projection | None:
    """Read a cache NPZ (never unpickles); None when it is unreadable or from another version."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            coords, corpus = data["coords"], data["corpus"]
            labels = {k[len("label__") :]: data[k] for k in data.files if k.startswith("label__")}
            pca = (data["pca_mean"], data["pca_components"]) if "pca_mean" in data.files else None
    except (OSError, ValueError, KeyError):
        return None
    params = meta["params"]
    if meta.get("key") != key or params.get("version") != CACHE_VERSION:
        return None
    if meta["method"] == "pca":
        return Projection("pca", coords, corpus, key, params, labels, "disk", None, pca)
    return Projection("umap", coords, corpus, key, params, labels, "disk")  # reducer rebuilt on first transform


def _rebuild_reducer(params: dict[str, Any], corpus: np.ndarray, coords: np.ndarray) -> Any:
    """A UMAP reducer equivalent to the cached fit: the corpus's neighbour graph, the cached layout
    as the start and zero epochs (nothing re-optimised), then the cached layout put back."""
    reducer = _umap(params, len(corpus), init=coords, n_epochs=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer.fit(corpus)
    reducer.embedding_ = coords.copy()
    reducer.n_epochs = None  # transform then optimises new points as the original fit would
    return reducer


def corpus_key(model: Any, corpus_spec: Any, mode: str | None = None) -> str:
    """Cache key of (model weights, corpus description, mode), e.g. corpus_spec = ("shapes", "test", 500)."""
    return array_key(model_fingerprint(model), corpus_spec, mode)


def clear_memory_cache() -> None:
    """Forget the in-process fits (disk caches stay)."""
    _MEMORY.clear()


# ---- the Shapes corpus -------------------------------------------------------------------------


def shapes_corpus(split: str = "test", n: int = 400, seed: int = 0) -> tuple[list[Any], dict[str, np.ndarray]]:
    """The first `n` examples of a Shapes split and per-example labels for colouring a map.

    Returns:
        (examples, labels) with labels task, subtask, n_objects, answer (the target text or "image").
    """
    from lame_tools.data.shapes import iter_split

    examples = list(iter_split(seed, split, n))
    labels = {
        "task": np.array([e.task for e in examples]),
        "subtask": np.array([e.subtask for e in examples]),
        "n_objects": np.array([len(e.scene.objects) for e in examples]),
        "answer": np.array([e.target_text or "image" for e in examples]),
    }
    return examples, labels


def embed_examples(model: Any, examples: list[Any], mode: str | None = None, batch_size: int = 32) -> np.ndarray:
    """Query-side embeddings of Shapes examples (image and/or text, with the task instruction)."""
    items = [e.query_item() for e in examples]
    return model.encode(
        images=[item.image for item in items],
        texts=[item.text for item in items],
        instruction=[item.instruction for item in items],
        mode=mode,
        batch_size=batch_size,
    )


def project_shapes(
    model: Any,
    split: str = "test",
    n: int = 400,
    mode: str | None = None,
    method: str = "umap",
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> Projection:
    """The map of a Shapes corpus for a model, fitted once: the key is (model weights, corpus, mode),
    so a cache hit skips both embedding the corpus and fitting."""
    mode = mode or model.config.default_mode
    key = corpus_key(model, ("shapes", split, n, seed), mode)
    found = load_projection(projection_key(method, key), cache_dir)
    if found is not None:
        return found
    examples, labels = shapes_corpus(split, n, seed)
    embeddings = embed_examples(model, examples, mode)
    return fit_projection(embeddings, method, key=key, cache_dir=cache_dir, seed=seed, labels=labels)
