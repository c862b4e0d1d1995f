"""Drawing Shapes scenes with Pillow: the default renderer of the splits, and rendering styles.

`render(scene)` is the renderer the splits and shipped models use (supersampled anti-aliasing,
jittered colours, small rotations, sometimes blur or JPEG), a pure function of the scene.
`render(scene, style)` draws the same scene graph another way (`RenderStyle`: background tints and
gradients, shades within each named colour, canvas size, resampling, JPEG, noise), for training
with rendering variation and for measuring robustness to it.
"""

from __future__ import annotations

import dataclasses
import io
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lame_tools.data.scene import BASE_RGB, Scene, SceneObject


def _jitter(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-18, 18))) for v in rgb)  # type: ignore[return-value]


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    corners = {"square": 4, "triangle": 3, "diamond": 4}[shape]
    offset = {"square": math.pi / 4, "triangle": -math.pi / 2, "diamond": 0.0}[shape]
    scale = 1.0 if shape != "diamond" else 1.15
    points = []
    for i in range(corners):
        theta = offset + angle + 2 * math.pi * i / corners
        rx = r * scale * (0.75 if shape == "diamond" and i % 2 == 0 else 1.0)
        points.append((cx + rx * math.cos(theta), cy + r * scale * math.sin(theta)))
    return points


SUPERSAMPLE = 3


@dataclass(frozen=True)
class _DrawnObject:
    """How one object is drawn, in supersampled canvas pixels."""

    obj: SceneObject
    cx: float
    cy: float
    radius: float
    fill: tuple[int, int, int]
    angle: float


def _draw_plan(scene: Scene, rng: random.Random, supersample: int = SUPERSAMPLE) -> list[_DrawnObject]:
    """The per-object drawing parameters, drawn from the render RNG in the order `render` uses them."""
    w, h = scene.width * supersample, scene.height * supersample
    unit = min(w, h)
    plan = []
    for obj in scene.objects:
        r = unit * (0.075 if obj.size == "small" else 0.12) * rng.uniform(0.9, 1.1)
        fill = _jitter(BASE_RGB[obj.colour], rng)
        angle = rng.uniform(-0.2, 0.2) if obj.shape != "circle" else 0.0
        plan.append(_DrawnObject(obj, obj.x * w, obj.y * h, r, fill, angle))
    return plan


def object_boxes(scene: Scene, style: RenderStyle | None = None) -> list[tuple[float, float, float, float]]:
    """Each object's bounding box as it is drawn, in image fractions (x0, y0, x1, y1), in scene order
    (on the style's canvas when a style is given)."""
    if style is not None:
        scene = dataclasses.replace(scene, width=style.width or scene.width, height=style.height or scene.height)
    w, h = scene.width * SUPERSAMPLE, scene.height * SUPERSAMPLE
    return [
        ((d.cx - d.radius) / w, (d.cy - d.radius) / h, (d.cx + d.radius) / w, (d.cy + d.radius) / h)
        for d in _draw_plan(scene, random.Random(scene.render_seed))
    ]


RESAMPLING = {
    "lanczos": Image.LANCZOS,
    "bicubic": Image.BICUBIC,
    "bilinear": Image.BILINEAR,
    "box": Image.BOX,
    "nearest": Image.NEAREST,
}

# Each named colour as ranges of hue, saturation and value (HSV in 0..1): every shade drawn from
# these still reads as its name, and no two ranges overlap.
SHADE_RANGES = {
    "red": ((-0.025, 0.02), (0.65, 0.95), (0.70, 0.95)),
    "green": ((0.27, 0.40), (0.55, 0.90), (0.45, 0.80)),
    "blue": ((0.58, 0.66), (0.60, 0.90), (0.65, 0.95)),
    "yellow": ((0.125, 0.16), (0.75, 1.00), (0.85, 1.00)),
    "purple": ((0.75, 0.82), (0.45, 0.75), (0.50, 0.80)),
}

# Hue bands (HSV hue in 0..1) between the named colours' hue ranges, each at least 0.03 away from
# every range: orange, lime, cyan, pink. Nothing drawn in them reads as a named colour.
OFF_PALETTE_HUES = ((0.055, 0.09), (0.195, 0.235), (0.45, 0.53), (0.87, 0.93))
FILLS = ("named", "grey", "off-palette")


@dataclass(frozen=True)
class RenderStyle:
    """How to draw a scene graph other than the default way (the graph itself never changes).

    Attributes:
        name: names the style's own randomness (with `seed` and the scene's render seed).
        width / height: canvas size (objects keep their positions as fractions); None: the scene's.
        background: "scene" (the scene's near-white), "tint" (a light tint of any hue), "gradient"
            (a linear blend of two tints at a random angle).
        max_tint_saturation: how coloured a tint may be (0.3: pastels).
        shades: draw each object in a random shade within its named colour (`SHADE_RANGES`).
        supersample: anti-aliasing factor (1: none); resample: the down-sampling filter.
        blur: Gaussian blur radius (0: none); jpeg_quality: None for no JPEG; noise: std of
            Gaussian pixel noise on the 0..255 scale.
        fill: "named" (each object in its named colour), or, for images that teach shape without
            colour, "grey" (each object a random grey) or "off-palette" (a random hue between the
            named colours' ranges, `OFF_PALETTE_HUES`): no object then shows any named colour, so no
            colour-shape pair, held-out or not, is drawn.
    """

    name: str = "custom"
    width: int | None = None
    height: int | None = None
    background: str = "scene"
    max_tint_saturation: float = 0.15
    shades: bool = False
    supersample: int = SUPERSAMPLE
    resample: str = "lanczos"
    blur: float = 0.0
    jpeg_quality: int | None = None
    noise: float = 0.0
    seed: int = 0
    fill: str = "named"


# Fixed variants of the test scenes for the robustness report (same graphs, other rendering).
ROBUSTNESS_VARIANTS = {
    "pastel": RenderStyle("pastel", background="tint", max_tint_saturation=0.3),
    "gradient": RenderStyle("gradient", background="gradient", max_tint_saturation=0.25),
    "shades": RenderStyle("shades", shades=True),
    "canvas-160x120": RenderStyle("canvas-160x120", width=160, height=120),
    "canvas-224": RenderStyle("canvas-224", width=224, height=224),
    "no-antialias": RenderStyle("no-antialias", supersample=1, resample="nearest"),
    "jpeg-noise": RenderStyle("jpeg-noise", jpeg_quality=45, noise=6.0),
    "everything": RenderStyle(
        "everything", width=160, height=120, background="gradient", max_tint_saturation=0.3, shades=True,
        supersample=2, resample="bilinear", jpeg_quality=60, noise=4.0,
    ),
}


def random_style(rng: random.Random) -> RenderStyle:
    """A random style for training with rendering variation (every field varies)."""
    sizes = ((112, 112), (128, 96), (96, 128), (160, 120), (120, 160), (224, 224), (224, 168), (140, 140))
    width, height = rng.choice(sizes)
    return RenderStyle(
        name="random",
        width=width,
        height=height,
        background=rng.choice(("scene", "tint", "tint", "gradient", "gradient")),
        max_tint_saturation=rng.uniform(0.05, 0.3),
        shades=rng.random() < 0.8,
        supersample=rng.choice((1, 2, 3, 4)),
        resample=rng.choice(tuple(RESAMPLING)),
        blur=rng.uniform(0.2, 0.8) if rng.random() < 0.2 else 0.0,
        jpeg_quality=rng.randint(40, 95) if rng.random() < 0.3 else None,
        noise=rng.uniform(1.0, 8.0) if rng.random() < 0.3 else 0.0,
        seed=rng.randrange(2**31),
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _shade(colour: str, rng: random.Random) -> tuple[int, int, int]:
    (h0, h1), (s0, s1), (v0, v1) = SHADE_RANGES[colour]
    return _hsv_to_rgb(rng.uniform(h0, h1), rng.uniform(s0, s1), rng.uniform(v0, v1))


def _tint(rng: random.Random, max_saturation: float) -> tuple[int, int, int]:
    return _hsv_to_rgb(rng.random(), rng.uniform(0.0, max_saturation), rng.uniform(0.88, 1.0))


def _background(style: RenderStyle, scene: Scene, size: tuple[int, int], rng: random.Random) -> Image.Image:
    if style.background == "scene":
        return Image.new("RGB", size, scene.background)
    if style.background == "tint":
        return Image.new("RGB", size, _tint(rng, style.max_tint_saturation))
    if style.background != "gradient":
        raise ValueError(f"unknown background {style.background!r}; expected scene, tint or gradient")
    a = np.array(_tint(rng, style.max_tint_saturation), dtype=np.float32)
    b = np.array(_tint(rng, style.max_tint_saturation), dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    t = (xs / max(size[0] - 1, 1) - 0.5) * math.cos(angle) + (ys / max(size[1] - 1, 1) - 0.5) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    pixels = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    return Image.fromarray(pixels.round().astype(np.uint8), "RGB")


def _render_styled(scene: Scene, style: RenderStyle) -> Image.Image:
    width, height = style.width or scene.width, style.height or scene.height
    canvas_scene = dataclasses.replace(scene, width=width, height=height)
    plan = _draw_plan(canvas_scene, random.Random(scene.render_seed), style.supersample)
    rng = random.Random(f"{scene.render_seed}/{style.name}/{style.seed}")
    ss = style.supersample
    canvas = _background(style, scene, (width * ss, height * ss), rng)
    draw = ImageDraw.Draw(canvas)
    for d in plan:
        _draw_object(draw, d, _fill(style, d, rng))
    image = canvas.resize((width, height), RESAMPLING[style.resample]) if ss > 1 else canvas
    if style.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    if style.noise > 0:
        noise = np.random.default_rng(rng.randrange(2**31)).normal(0.0, style.noise, (height, width, 3))
        image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).round().astype(np.uint8))
    if style.jpeg_quality is not None:
        image = _jpeg(image, style.jpeg_quality)
    return image


def _fill(style: RenderStyle, d: _DrawnObject, rng: random.Random) -> tuple[int, int, int]:
    if style.fill == "grey":
        return _hsv_to_rgb(0.0, 0.0, rng.uniform(0.1, 0.65))
    if style.fill == "off-palette":
        low, high = OFF_PALETTE_HUES[rng.randrange(len(OFF_PALETTE_HUES))]
        return _hsv_to_rgb(rng.uniform(low, high), rng.uniform(0.6, 0.95), rng.uniform(0.6, 0.95))
    if style.fill != "named":
        raise ValueError(f"unknown fill {style.fill!r}; expected one of {FILLS}")
    return _shade(d.obj.colour, rng) if style.shades else d.fill


def _draw_object(draw: ImageDraw.ImageDraw, d: _DrawnObject, fill: tuple[int, int, int]) -> None:
    r = d.radius
    if d.obj.shape == "circle":
        draw.ellipse((d.cx - r, d.cy - r, d.cx + r, d.cy + r), fill=fill)
    else:
        draw.polygon(_polygon(d.obj.shape, d.cx, d.cy, r, d.angle), fill=fill)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def render(scene: Scene, style: RenderStyle | None = None) -> Image.Image:
    """Draw a scene. Without a style: the default renderer (supersampled, jittered colours, small
    rotations, sometimes blur or JPEG; what the splits use). With one: the same graph drawn that way."""
    if style is not None:
        return _render_styled(scene, style)
    rng = random.Random(scene.render_seed)
    canvas = Image.new("RGB", (scene.width * SUPERSAMPLE, scene.height * SUPERSAMPLE), scene.background)
    draw = ImageDraw.Draw(canvas)
    for d in _draw_plan(scene, rng):
        _draw_object(draw, d, d.fill)
    image = canvas.resize((scene.width, scene.height), Image.LANCZOS)
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.6)))
    if rng.random() < 0.3:
        image = _jpeg(image, rng.randint(55, 90))
    return image
