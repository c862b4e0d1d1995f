"""The FAISS index: exact search equals the numpy `EmbeddingIndex` (ids and scores, ties included);
approximate kinds report recall; save / load without pickle, tampered files refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex

faiss = pytest.importorskip("faiss")

from lame_tools.faiss_index import FaissIndex  # noqa: E402


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _both(vectors: np.ndarray, ids: np.ndarray | None = None) -> tuple[EmbeddingIndex, FaissIndex]:
    numpy_index, faiss_index = EmbeddingIndex(dim=vectors.shape[1]), FaissIndex(vectors.shape[1])
    numpy_index.add(vectors, ids=ids)
    faiss_index.add(vectors, ids=ids)
    return numpy_index, faiss_index


def _assert_same(numpy_index: EmbeddingIndex, faiss_index: FaissIndex, queries: np.ndarray, k: int) -> None:
    want_scores, want_ids = numpy_index.search(queries, k)
    got_scores, got_ids = faiss_index.search(queries, k)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)


def test_exact_search_equals_numpy_on_random_data():
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 500, 32)
    ids = rng.permutation(10_000)[:500]
    numpy_index, faiss_index = _both(vectors, ids)
    for k in (1, 10, 500, 600):
        _assert_same(numpy_index, faiss_index, _unit(rng, 40, 32), k)


def test_exact_search_equals_numpy_on_tie_heavy_data():
    rng = np.random.default_rng(1)
    distinct = _unit(rng, 4, 16)
    vectors = distinct[rng.integers(0, 4, size=300)]  # 300 rows, 4 distinct: ties everywhere
    ids = rng.permutation(300)  # tie order by id, not by insertion position
    numpy_index, faiss_index = _both(vectors, ids)
    for k in (1, 5, 50, 120):
        _assert_same(numpy_index, faiss_index, np.vstack([distinct, _unit(rng, 3, 16)]), k)
    # one-hot rows and a query equally close to two of them
    eye = np.eye(8, dtype=np.float32)
    numpy_index, faiss_index = _both(np.vstack([eye, eye[::-1]]), np.arange(16)[::-1].copy())
    query = (eye[2] + eye[5]) / np.sqrt(2)
    _assert_same(numpy_index, faiss_index, query, 3)
    assert set(faiss_index.search(query, 4)[1][0]) == {2, 5, 10, 13}


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_search_and_report_recall(kind):
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 2000, 16)
    index = FaissIndex(16, kind=kind)
    index.add(vectors)
    recall = index.recall_at_10(sample=100)
    assert 0.5 < recall <= 1.0
    scores, ids = index.search(vectors[:5], 10)
    assert ids.shape == (5, 10) and (ids[:, 0] == np.arange(5)).all()
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_save_load_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 100, 8)
    index = FaissIndex(8)
    index.add(vectors, ids=np.arange(100, 200))
    index.save(tmp_path / "ix", extra={"recall_at_10": 1.0})
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["count"] == 100 and set(manifest["sha256"]) == {"index.faiss", "ids.npy"}
    loaded = FaissIndex.load(tmp_path / "ix")
    queries = _unit(rng, 7, 8)
    for got, want in zip(loaded.search(queries, 5), index.search(queries, 5)):
        np.testing.assert_array_equal(got, want)


def test_tampered_files_are_refused_with_one_sentence(tmp_path):
    index = FaissIndex(8)
    index.add(_unit(np.random.default_rng(4), 20, 8))
    index.save(tmp_path / "ix")
    data = bytearray((tmp_path / "ix" / "index.faiss").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "ix" / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(InputError, match="changed after it was saved") as info:
        FaissIndex.load(tmp_path / "ix")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="no manifest.json"):
        FaissIndex.load(tmp_path / "missing")


def test_bad_input_is_refused():
    index = FaissIndex(4)
    with pytest.raises(InputError, match="kind"):
        FaissIndex(4, kind="annoy")
    with pytest.raises(InputError, match="unit-norm"):
        index.add(np.ones((2, 4), np.float32))
    index.add(np.eye(4, dtype=np.float32))
    with pytest.raises(InputError, match="distinct"):
        index.add(np.eye(4, dtype=np.float32)[:1], ids=[0])
