"""EmbeddingIndex: exact top-k, tie order by lower id, validation, atomic save / pickle-free load."""

from __future__ import annotations

import numpy as np
import pytest

from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex, as_embedding_matrix


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_search_matches_brute_force_order():
    rng = np.random.default_rng(0)
    gallery, queries = _unit(rng.normal(size=(200, 16))), _unit(rng.normal(size=(7, 16)))
    index = EmbeddingIndex(dim=16)
    assert list(index.add(gallery)) == list(range(200))
    scores, ids = index.search(queries, k=10)
    full = queries @ gallery.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    assert scores.shape == ids.shape == (7, 10) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, axis=1), rtol=1e-6)


def test_ties_are_ordered_by_lower_id_even_across_the_partition_boundary():
    # Five identical vectors under scrambled ids, one better and one worse: the tie at rank 2..6
    # must come back in id order whatever argpartition picked.
    base = np.array([1.0, 0.0], np.float32)
    best = _unit(np.array([[1.0, 0.0]]))  # same as base
    vectors = np.stack([base] * 5 + [_unit(np.array([[0.0, 1.0]]))[0], _unit(np.array([[1.0, 1.0]]))[0]])
    index = EmbeddingIndex()
    index.add(vectors, ids=[40, 7, 93, 12, 55, 1, 3])
    scores, ids = index.search(best, k=3)
    assert ids.tolist() == [[7, 12, 40]]
    np.testing.assert_allclose(scores, [[1.0, 1.0, 1.0]])
    _, all_ids = index.search(best, k=100)  # k larger than the index: everything, ties by id
    assert all_ids.tolist() == [[7, 12, 40, 55, 93, 3, 1]]


def test_add_validates_inputs():
    index = EmbeddingIndex(dim=4)
    with pytest.raises(InputError, match="dimension 3"):
        index.add(np.ones((2, 3), np.float32))
    with pytest.raises(InputError, match="unit-norm"):
        index.add(np.ones((2, 4), np.float32))
    with pytest.raises(InputError, match="NaN"):
        index.add(np.full((1, 4), np.nan, np.float32))
    index.add(np.ones((2, 4)), normalize=True)
    with pytest.raises(InputError, match="distinct"):
        index.add(_unit(np.ones((1, 4))), ids=[1])
    assert index.add(_unit(np.ones((1, 4)))).tolist() == [2]
    with pytest.raises(InputError, match="at least 1"):
        index.search(_unit(np.ones((1, 4))), k=0)


def test_empty_index_returns_empty_results():
    scores, ids = EmbeddingIndex(dim=4).search(_unit(np.ones((2, 4))), k=5)
    assert scores.shape == ids.shape == (2, 0)


def test_save_load_roundtrip_without_pickle(tmp_path):
    rng = np.random.default_rng(1)
    index = EmbeddingIndex()
    index.add(_unit(rng.normal(size=(30, 8))), ids=np.arange(100, 130))
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert len(loaded) == 30 and loaded.dim == 8
    np.testing.assert_array_equal(loaded.ids, index.ids)
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    query = _unit(rng.normal(size=(3, 8)))
    for a, b in zip(index.search(query, 5), loaded.search(query, 5)):
        np.testing.assert_array_equal(a, b)
    # An object array (which would need pickle) is refused with one sentence.
    np.save(tmp_path / "idx" / "ids.npy", np.array([object()] * 30, dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="ids.npy"):
        EmbeddingIndex.load(tmp_path / "idx")
    with pytest.raises(InputError, match="no embeddings.npy"):
        EmbeddingIndex.load(tmp_path / "missing")


def test_many_ties_match_a_full_sort():
    # Few distinct directions, many copies, scrambled ids: every k must equal a full (score, id) sort.
    rng = np.random.default_rng(2)
    directions = _unit(rng.normal(size=(4, 6)))
    gallery = directions[rng.integers(0, 4, size=60)]
    ids = rng.permutation(1000)[:60]
    index = EmbeddingIndex()
    index.add(gallery, ids=ids)
    queries = directions[:3]
    full = queries @ gallery.T
    for k in (1, 5, 17, 60):
        _, got = index.search(queries, k)
        expected = [ids[np.lexsort((ids, -row))][:k].tolist() for row in full]
        assert got.tolist() == expected, k


def test_as_embedding_matrix_is_the_one_validation():
    vector = np.arange(4, dtype=np.float64)
    matrix = as_embedding_matrix(vector, dim=4)
    assert matrix.shape == (1, 4) and matrix.dtype == np.float32 and matrix.flags["C_CONTIGUOUS"]
    assert as_embedding_matrix(np.ones((6, 4)).T.T[::2]).flags["C_CONTIGUOUS"]
    with pytest.raises(InputError, match="queries have dimension 3"):
        as_embedding_matrix(np.ones((2, 3)), dim=4, name="queries")
    with pytest.raises(InputError, match=r"\[n, dim\]"):
        as_embedding_matrix(np.ones((2, 3, 4)))
    with pytest.raises(InputError, match="infinite"):
        as_embedding_matrix(np.array([[1.0, np.inf]]))


def test_search_on_one_vector_query_and_k_beyond_the_index():
    index = EmbeddingIndex()
    index.add(_unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])), ids=[5, 6, 7])
    scores, ids = index.search(np.array([1.0, 0.0], np.float32), k=10)
    assert ids.tolist() == [[5, 7, 6]]
    np.testing.assert_allclose(scores, [[1.0, np.sqrt(0.5), 0.0]], atol=1e-6)
