"""Rendering styles: the same scene graph drawn other ways still shows the same objects."""

from __future__ import annotations

import colorsys
import random

import numpy as np
import pytest

from lame_tools.data.render import ROBUSTNESS_VARIANTS, SHADE_RANGES, RenderStyle, object_boxes, random_style, render
from lame_tools.data.shapes import make_example, make_scene


def _named_colour(rgb: np.ndarray) -> str:
    """The named colour whose hue range is nearest to a pixel's hue."""
    h, s, v = colorsys.rgb_to_hsv(*(rgb / 255.0))

    def distance(name: str) -> float:
        lo, hi = SHADE_RANGES[name][0]
        centre = (lo + hi) / 2
        return min(abs(h - centre), 1 - abs(h - centre))

    return min(SHADE_RANGES, key=distance)


def _check_scene_drawn(scene, style) -> None:
    image = np.asarray(render(scene, style)).astype(float)
    h, w = image.shape[:2]
    assert (w, h) == (style.width or scene.width, style.height or scene.height)
    for obj, (x0, y0, x1, y1) in zip(scene.objects, object_boxes(scene, style)):
        # the centre of a shape is inside it for every shape (circle, square, triangle, diamond)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        patch = image[int(cy * h) - 1 : int(cy * h) + 2, int(cx * w) - 1 : int(cx * w) + 2].reshape(-1, 3)
        assert _named_colour(np.median(patch, axis=0)) == obj.colour, (style, obj)


@pytest.mark.parametrize("variant", sorted(ROBUSTNESS_VARIANTS))
def test_each_robustness_variant_keeps_every_object_and_its_colour(variant):
    style = ROBUSTNESS_VARIANTS[variant]
    for i in range(12):
        example = make_example(0, "test", i)
        _check_scene_drawn(example.scene, style)


def test_random_styles_keep_the_graph_and_are_deterministic():
    rng = random.Random(0)
    for i in range(40):
        style = random_style(rng)
        scene = make_scene(0, "train", i)
        _check_scene_drawn(scene, style)
        assert render(scene, style).tobytes() == render(scene, style).tobytes()


def test_styles_differ_from_the_default_rendering():
    scene = make_scene(0, "test", 3)
    default = np.asarray(render(scene))
    for style in ROBUSTNESS_VARIANTS.values():
        styled = np.asarray(render(scene, style))
        assert styled.shape != default.shape or np.abs(styled.astype(int) - default).mean() > 0.5, style.name
    with pytest.raises(ValueError, match="unknown background"):
        render(scene, RenderStyle(background="plaid"))


def _centre_pixels(scene, style) -> list[np.ndarray]:
    image = np.asarray(render(scene, style)).astype(float)
    h, w = image.shape[:2]
    out = []
    for x0, y0, x1, y1 in object_boxes(scene, style):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        out.append(np.median(image[int(cy * h) - 1 : int(cy * h) + 2, int(cx * w) - 1 : int(cx * w) + 2].reshape(-1, 3), 0))
    return out


def _in_a_named_range(rgb: np.ndarray) -> bool:
    h, s, v = colorsys.rgb_to_hsv(*(rgb / 255.0))
    for (h0, h1), (s0, s1), (v0, v1) in SHADE_RANGES.values():
        if (h0 <= h <= h1 or h0 <= h - 1 <= h1) and s0 - 0.1 <= s <= s1 + 0.1 and v0 - 0.1 <= v <= v1 + 0.1:
            return True
    return False


@pytest.mark.parametrize("fill", ["grey", "off-palette"])
def test_colourless_fills_show_no_named_colour_and_keep_the_layout(fill):
    from lame_tools.data.render import OFF_PALETTE_HUES

    for i in range(20):
        scene = make_scene(0, "train", i)
        style = RenderStyle(fill=fill, name="t", seed=i)
        for rgb in _centre_pixels(scene, style):
            assert not _in_a_named_range(rgb), (fill, rgb)
            h, s, _ = colorsys.rgb_to_hsv(*(rgb / 255.0))
            if fill == "grey":
                assert s < 0.05
            else:
                assert any(lo - 0.01 <= h <= hi + 0.01 for lo, hi in OFF_PALETTE_HUES), h
        # the objects stand where the named rendering draws them (only the fill differs)
        named = np.asarray(render(scene, RenderStyle(name="t", seed=i))).astype(float).mean(2) < 245
        colourless = np.asarray(render(scene, style)).astype(float).mean(2) < 245
        assert (named == colourless).mean() > 0.97
    with pytest.raises(ValueError, match="unknown fill"):
        render(make_scene(0, "train", 0), RenderStyle(fill="rainbow"))
