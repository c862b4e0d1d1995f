"""Projections: UMAP fitted once (one shared fit for the whole session: numba compiles once),
reused from memory and from a pickle-free disk cache with identical `transform` results; PCA fallback."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lame_tools.data.shapes import VOCABULARY
from lame_tools.errors import InputError
from lame_tools.fingerprint import folder_fingerprint, model_fingerprint
from lame_tools.project import (
    clear_memory_cache,
    corpus_key,
    fit_projection,
    load_projection,
    project_shapes,
    projection_key,
)


def _corpus(n: int = 150, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 4
    points = centres[np.arange(n) % 3] + rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def umap_fit(tmp_path_factory):
    """The one UMAP fit of the test session (its first call pays numba's compilation)."""
    cache_dir = tmp_path_factory.mktemp("projections")
    corpus = _corpus()
    start = time.perf_counter()
    projection = fit_projection(corpus, "umap", cache_dir=cache_dir, labels={"cluster": np.arange(len(corpus)) % 3})
    first = time.perf_counter() - start
    return projection, corpus, cache_dir, first


@pytest.mark.slow
def test_umap_is_fitted_once_and_reused(umap_fit):
    projection, corpus, cache_dir, first = umap_fit
    assert projection.source == "fit" and projection.coords.shape == (len(corpus), 2)
    start = time.perf_counter()
    again = fit_projection(corpus, "umap", cache_dir=cache_dir)
    second = time.perf_counter() - start
    print(f"first projection call {first:.2f} s, second {second * 1000:.1f} ms")
    assert again.source == "memory" and again.key == projection.key
    np.testing.assert_array_equal(again.coords, projection.coords)
    new = _corpus(6, seed=1)
    placed = projection.transform(new)
    assert placed.shape == (6, 2) and np.isfinite(placed).all()
    np.testing.assert_array_equal(placed, again.transform(new))  # deterministic


@pytest.mark.slow
def test_disk_cache_is_plain_npz_and_rebuilds_the_same_transform(umap_fit):
    projection, corpus, cache_dir, _ = umap_fit
    path = cache_dir / f"{projection.key}.npz"
    with np.load(path, allow_pickle=False) as data:  # no object arrays: nothing to unpickle
        assert {"coords", "corpus", "meta", "label__cluster"} <= set(data.files)
    new = _corpus(5, seed=2)
    expected = projection.transform(new)
    clear_memory_cache()
    loaded = load_projection(projection.key, cache_dir)
    assert loaded is not None and loaded.source == "disk"
    np.testing.assert_array_equal(loaded.coords, projection.coords)
    np.testing.assert_array_equal(loaded.labels["cluster"], np.arange(len(corpus)) % 3)
    np.testing.assert_allclose(loaded.transform(new), expected, atol=1e-5)


def test_corrupt_or_foreign_cache_files_are_ignored(tmp_path):
    corpus = _corpus(40)
    first = fit_projection(corpus, "pca", cache_dir=tmp_path)
    clear_memory_cache()
    (tmp_path / f"{first.key}.npz").write_bytes(b"not an npz")
    refit = fit_projection(corpus, "pca", cache_dir=tmp_path)
    assert refit.source == "fit"
    np.testing.assert_allclose(refit.coords, first.coords, atol=1e-5)
    assert load_projection("umap-unknown", tmp_path) is None


def test_pca_fallback_and_transform(tmp_path):
    corpus = _corpus(60)
    projection = fit_projection(corpus, "pca", cache_dir=tmp_path)
    np.testing.assert_allclose(projection.transform(corpus), projection.coords, atol=1e-5)
    assert abs(projection.coords.mean(0)).max() < 1e-4  # centred
    tiny = fit_projection(corpus[:3], "umap", cache_dir=tmp_path)  # too few points for UMAP
    assert tiny.method == "pca"
    with pytest.raises(InputError):
        projection.transform(np.zeros((2, 5)))
    with pytest.raises(InputError):
        fit_projection(corpus, "tsne")
    with pytest.raises(InputError):
        fit_projection(np.full((5, 4), np.nan))


def test_cache_key_depends_on_model_and_corpus(micro_model):
    from lame_tools.model import LameModel

    other = LameModel.build_tiny("micro", num_reason_tokens=4, embed_dim=32, seed=1, vocabulary=VOCABULARY)
    assert model_fingerprint(micro_model) == model_fingerprint(micro_model)
    assert model_fingerprint(micro_model) != model_fingerprint(other)
    spec = ("shapes", "test", 100, 0)
    assert corpus_key(micro_model, spec, "latent") != corpus_key(other, spec, "latent")
    assert corpus_key(micro_model, spec, "latent") != corpus_key(micro_model, ("shapes", "test", 101, 0), "latent")
    assert corpus_key(micro_model, spec, "latent") != corpus_key(micro_model, spec, "discriminative")


def test_a_umap_map_of_fewer_than_four_points_is_found_again(micro_model, tmp_path):
    # Three points are too few for UMAP: PCA fits them, and the map is stored under the key it is
    # looked up by ("umap-..."), so the second call is a cache hit, from memory and from disk.
    first = project_shapes(micro_model, n=3, method="umap", cache_dir=tmp_path)
    assert first.method == "pca" and first.source == "fit" and first.key.startswith("umap-")
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.key}.npz"]
    again = project_shapes(micro_model, n=3, method="umap", cache_dir=tmp_path)
    assert again.source == "memory" and again.key == first.key
    clear_memory_cache()
    from_disk = project_shapes(micro_model, n=3, method="umap", cache_dir=tmp_path)
    assert from_disk.source == "disk" and from_disk.method == "pca"
    np.testing.assert_array_equal(from_disk.coords, first.coords)
    key = corpus_key(micro_model, ("shapes", "test", 3, 0), micro_model.config.default_mode)
    assert first.key == projection_key("umap", key)
    assert fit_projection(first.corpus, "umap", key=key, cache_dir=tmp_path).source == "memory"


def test_folder_fingerprint_follows_the_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    before = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    assert folder_fingerprint(tmp_path) != before
