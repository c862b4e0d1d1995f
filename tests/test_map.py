"""The explorable map: neighbours of a clicked point come from the full embedding space (the index's
own top-k), selections list their entries, every point has its thumbnail; the bench's service views."""

from __future__ import annotations

import numpy as np
import pytest

from lame_tools.constants import MODES
from lame_tools.demo.gallery import shapes_gallery
from lame_tools.demo.models import ModeModels
from lame_tools.demo.service import DemoService
from lame_tools.errors import InputError
from lame_tools.index import EmbeddingIndex
from lame_tools.project import fit_projection, full_space_neighbours

_SERVICES: dict[str, DemoService] = {}  # one per test session (module-level cache, no conftest)


@pytest.fixture
def service(micro_model, tmp_path_factory):
    if "micro" not in _SERVICES:
        workdir = tmp_path_factory.mktemp("map")
        models = ModeModels({m: micro_model for m in MODES}, {m: f"micro in {m} mode" for m in MODES}, single=True)
        _SERVICES["micro"] = DemoService(models, shapes_gallery(workdir / "gallery", n_images=10), workdir, umap=False)
    return _SERVICES["micro"]


def test_projection_neighbours_equal_the_index_top_k():
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(40, 16)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    projection = fit_projection(corpus, "pca", use_cache=False)
    index = EmbeddingIndex()
    index.add(corpus)
    for point in (0, 7, 39):
        ids, scores = projection.neighbours(point, 5)
        top_scores, top_ids = index.search(corpus[point], 6)
        assert list(ids) == [i for i in top_ids[0] if i != point][:5]  # the index's own top-k, self left out
        np.testing.assert_allclose(scores, corpus[ids] @ corpus[point], atol=1e-6)
        brute = [int(i) for i in np.argsort(-(corpus @ corpus[point]), kind="stable") if i != point][:5]
        assert list(ids) == brute  # and not the 2-D neighbours
    with pytest.raises(InputError):
        full_space_neighbours(index, 40, 3)


def test_map_view_neighbours_selection_thumbnails_and_colours(service):
    view = service.embedding_map("latent")
    n = len(service.gallery)
    assert len(view.thumbnails) == n and view.embeddings.shape[0] == n
    images = [i for i, e in enumerate(view.entries) if e.kind == "image"]
    assert all(view.thumbnails[i].startswith("data:image/png;base64,") for i in images)
    assert all(view.thumbnails[i] == "" for i in range(n) if i not in images)
    rows = view.neighbours(images[0], 4)
    index = EmbeddingIndex()
    index.add(view.embeddings, normalize=True)
    _, top = index.search(view.embeddings[images[0]], 5)
    expected = [i for i in top[0] if i != images[0]][:4]
    assert [(r[2], r[3]) for r in rows] == [(view.entries[i].kind, view.entries[i].text) for i in expected]
    assert [r[0] for r in rows] == [1, 2, 3, 4] and rows[0][1] >= rows[-1][1]
    assert view.selection("0, 2") == [[p, view.entries[p].kind, view.entries[p].text, view.entries[p].group]
                                      for p in (0, 2)]
    with pytest.raises(InputError):
        view.selection("0,999")
    with pytest.raises(InputError):
        view.selection("one")
    colours = view.labels("colour")
    assert len(colours) == n and any(c != "no colour" for c in colours)


def test_bench_views_attribution_k_sweep_and_export(service, tmp_path):
    from lame_tools import viz

    attribution = service.attribution_view(None, "a red circle", item_text="a blue square")
    assert attribution.item_label == "a blue square" and attribution.deletion is None  # text-only query
    assert "cos =" in attribution.facts and attribution.token_table()
    top = service.attribution_view(service.gallery.image(0), "", "auto")  # item: the query's top result
    assert top.deletion is not None and "random draws" in top.facts
    sweep = service.k_sweep_view(None, "a red circle")
    assert sweep.table()[0][0] == service.models.model_for("latent").num_reason_tokens
    with pytest.raises(InputError):
        service.export_bench_figures(None)
    files = service.export_bench_figures(sweep, formats=("html",))
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["csv", "html"]
    if viz.chromium_path() is not None:
        files = service.export_bench_figures(top)
        assert sum(f.endswith(".png") for f in files) == 3 and sum(f.endswith(".svg") for f in files) == 3
