"""Figures are built from plain arrays and export offline (HTML with plotly.js inlined, Pillow PNG)."""

from __future__ import annotations

import os

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from lame_tools import viz, viz_export
from lame_tools.errors import InputError


def test_attention_overlay_spans_the_image_and_exports(tmp_path):
    image = np.full((126, 168, 3), 240, np.uint8)
    grid = np.arange(12, dtype=np.float32).reshape(3, 4) / 66
    fig = viz.attention_overlay(image, grid, "EMBED")
    assert isinstance(fig.data[0], go.Image) and isinstance(fig.data[1], go.Heatmap)
    heat = fig.data[1]
    assert heat.dx == 168 / 4 and heat.dy == 126 / 3  # each merged cell covers its share of the image
    tokens = viz.attention_overlay_tokens(image, np.stack([grid, grid[::-1]]), ["[REASON_0]", "[EMBED]"])
    assert len(tokens.data) == 3 and len(tokens.layout.updatemenus[0].buttons) == 2
    html = viz.save_figure(fig, tmp_path / "overlay.html").read_text()
    assert "plotly" in html.lower() and '<script src="http' not in html  # self-contained, opens offline
    png = viz.overlay_png(image, grid, tmp_path / "overlay.png")
    picture = Image.open(png)
    assert picture.size == (504, 378)  # enlarged x3 (126 px -> at least 336) so the cells are visible
    pixels = np.asarray(picture.convert("RGB")).astype(int)
    assert abs(pixels[-5, -5] - pixels[5, 5]).sum() > 100  # the hottest and coldest cells differ


def test_strip_grid_bars_and_probe_figures():
    strip = viz.token_strip(
        ["what", "colour", "?"], np.array([[0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]), query_labels=["a", "b"]
    )
    assert strip.data[0].z.shape == (2, 3)
    grid = viz.head_grid(np.random.default_rng(0).random((2, 3, 4, 4)))
    assert len(grid.data) == 6
    text_grid = viz.head_grid(np.random.default_rng(0).random((2, 2, 7)))
    assert len(text_grid.data) == 4
    bars = viz.ablation_bars(["zero [REASON_0]", "zero [REASON_1]"], [0.99, 0.9], [0.1, 2.0])
    np.testing.assert_allclose(bars.data[0].y, [0.01, 0.1], atol=1e-9)
    acc = viz.probe_accuracy(
        [0, 1],
        np.array([[0.3, 0.4], [0.6, 0.8]]),
        ["[REASON_0]", "[EMBED]"],
        control=np.full((2, 2), 0.2),
        majority=0.25,
        baseline=np.array([0.3, 0.5]),
    )
    assert [t.name for t in acc.data] == ["[REASON_0]", "[EMBED]", "shuffled labels (best token)", "K=0 [EMBED]"]


def test_projection_scatter_uses_webgl_past_a_thousand_points():
    small = viz.projection_scatter(
        np.zeros((50, 2)), ["a", "b"] * 25, highlight=np.ones((1, 2)), highlight_labels=["q"]
    )
    assert {type(t) for t in small.data[:-1]} == {go.Scatter} and len(small.data) == 3
    big = viz.projection_scatter(np.random.default_rng(0).random((1500, 2)), np.array(["x"] * 1500))
    assert isinstance(big.data[0], go.Scattergl)


def test_race_chart_orders_lanes_and_switches_to_log_scale():
    fig = viz.race_chart({"cot": 900.0, "latent": 12.0}, done={"latent": True, "cot": False}, tokens={"cot": 37})
    bar = fig.data[0]
    assert list(bar.y) == ["latent", "cot"]
    assert fig.layout.xaxis.type == "log"  # 75x apart
    assert bar.text[1].endswith("…") and "37 tokens" in bar.text[1]
    even = viz.race_chart({"latent": 12.0, "discriminative": 10.0})
    assert even.layout.xaxis.type == "linear"


def test_upsample_to_image_gives_each_cell_its_share_of_the_pixels():
    grid = np.arange(6, dtype=np.float32).reshape(2, 3)
    up = viz.upsample_to_image(grid, np.zeros((4, 6, 3), np.uint8))
    assert up.shape == (4, 6)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(grid, 2, 0), 2, 1))
    uneven = viz.upsample_to_image(grid, Image.new("RGB", (7, 5)))  # PIL size is (width, height)
    assert uneven.shape == (5, 7)
    assert uneven[0, 0] == 0 and uneven[-1, -1] == 5 and set(np.unique(uneven)) == set(range(6))


def test_png_and_svg_export_through_the_system_chromium(tmp_path):
    if viz.chromium_path() is None:
        if os.environ.get("LAME_REQUIRE_BROWSER") == "1":
            pytest.fail("LAME_REQUIRE_BROWSER=1 but there is no Chromium for figure export (apt-get install chromium).")
        pytest.skip("no Chromium on this machine (looked at $LAME_CHROMIUM, /usr/bin/chromium and PATH)")
    fig = viz.ablation_bars(["zero [REASON_0]", "zero [REASON_1]"], [0.9, 0.99], [1.5, 0.1], title="ablation")
    paths = viz.export_figure(fig, tmp_path / "ablation", width=500, height=300)
    assert [p.suffix for p in paths] == [".html", ".png", ".svg"]
    picture = Image.open(paths[1])
    assert picture.size == (1000, 600)  # scale 2 for print
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20  # bars and text were drawn, not a blank page
    svg = paths[2].read_text()
    assert svg.startswith("<svg") and "REASON_0" in svg


def test_export_errors_are_one_sentence(tmp_path, monkeypatch):
    fig = go.Figure(go.Bar(x=[1], y=[1]))
    monkeypatch.setenv("LAME_CHROMIUM", str(tmp_path / "missing"))
    monkeypatch.setattr(viz_export, "CHROMIUM_CANDIDATES", ())
    with pytest.raises(InputError, match="needs Chromium"):
        viz.figure_bytes(fig, "png")
    with pytest.raises(InputError):
        viz.export_figure(fig, tmp_path / "x", formats=["pdf"])
    html = viz.export_figure(fig, tmp_path / "only", formats=["html"])  # HTML needs no browser
    assert html[0].is_file()


def test_save_data_writes_csv_rows_and_npz_arrays(tmp_path):
    csv_path = viz.save_data(tmp_path / "rows.csv", [{"k": 2, "score": 0.5}, {"k": 1, "score": 0.25}])
    assert csv_path.read_text().splitlines() == ["k,score", "2,0.5", "1,0.25"]
    npz = viz.save_data(tmp_path / "arrays.npz", {"grid": np.eye(2)})
    with np.load(npz, allow_pickle=False) as data:
        assert np.array_equal(data["grid"], np.eye(2))
    with pytest.raises(InputError):
        viz.save_data(tmp_path / "rows.npz", [{"k": 1}])


def test_map_scatter_carries_index_and_thumbnail_per_point():
    from lame_tools import viz_probe

    coords = np.arange(10, dtype=np.float32).reshape(5, 2)
    thumbs = [f"data:image/png;base64,{i}" for i in range(5)]
    fig = viz_probe.map_scatter(coords, ["a", "b", "a", "b", "a"], [f"p{i}" for i in range(5)], thumbs)
    seen = {int(c[0]): c[1] for trace in fig.data for c in trace.customdata}
    assert seen == {i: thumbs[i] for i in range(5)}
    assert fig.layout.dragmode == "lasso"
    big = viz_probe.map_scatter(np.zeros((1200, 2)), ["x"] * 1200, [""] * 1200, [""] * 1200)
    assert isinstance(big.data[0], go.Scattergl)  # WebGL past 1,000 points
