"""The Shapes world's scene graph: objects (shape, colour, size, position), their spatial relations,
and the deterministic scene of each split and index.

A `Scene` is pure data; `lame_tools.data.render` draws it and `lame_tools.data.shapes` derives tasks
from it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
COUNT_WORDS = ("zero", "one", "two", "three", "four")
RELATIONS = ("left", "right", "above", "below")

# Colour-shape pairs that never appear in training or validation scenes; every test scene holds at
# least one, so the test split measures systematic generalisation to unseen compositions.
# `validation_pairs` is drawn like test (every scene holds a held-out pair) from its own scenes: a
# recipe choice made on plain validation rewards a model that answers a pair it has seen from the
# colour alone, one made on validation_pairs sees what test's held-out queries will see.
SPLITS = ("train", "validation", "test", "validation_pairs")
SPLIT_SIZES = {"train": 20000, "validation": 500, "test": 500, "validation_pairs": 500}
HELD_OUT_SPLITS = frozenset({"test", "validation_pairs"})

HELD_OUT_PAIRS = frozenset({("red", "triangle"), ("blue", "circle"), ("green", "diamond"), ("yellow", "square")})

BASE_RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 180),
}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    x: float  # centre, fraction of width
    y: float  # centre, fraction of height

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def describe(self, with_size: bool = False) -> str:
        return f"a {self.size} {self.name}" if with_size else f"a {self.name}"


@dataclass(frozen=True)
class Scene:
    """A scene graph plus how to draw it (the render parameters are part of the scene)."""

    objects: tuple[SceneObject, ...]
    width: int
    height: int
    background: tuple[int, int, int]
    render_seed: int

    def left_to_right(self) -> list[SceneObject]:
        return sorted(self.objects, key=lambda o: o.x)

    def caption(self) -> str:
        names = [o.describe() for o in self.left_to_right()]
        if len(names) == 1:
            return names[0]
        return " , ".join(names[:-1]) + " and " + names[-1]

    def to_json(self) -> dict:
        return asdict(self)


def relation_holds(a: SceneObject, relation: str, b: SceneObject) -> bool:
    """Whether `a` is `relation` of `b` (image coordinates: y grows downwards)."""
    dx, dy = a.x - b.x, a.y - b.y
    if relation == "left":
        return dx < -0.08 and abs(dx) >= abs(dy)
    if relation == "right":
        return dx > 0.08 and abs(dx) >= abs(dy)
    if relation == "above":
        return dy < -0.08 and abs(dy) > abs(dx)
    if relation == "below":
        return dy > 0.08 and abs(dy) > abs(dx)
    raise ValueError(f"unknown relation {relation!r}")


def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    if split in HELD_OUT_SPLITS:
        return pairs
    return [p for p in pairs if p not in HELD_OUT_PAIRS]


def make_scene(seed: int, split: str, index: int) -> Scene:
    """The scene `index` of `split` for world seed `seed` (deterministic)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    rng = random.Random(f"{seed}/{split}/{index}")
    pairs = _allowed_pairs(split)
    while True:
        count = rng.choice((1, 2, 2, 3, 3, 3, 4, 4))
        chosen = rng.sample(pairs, count)
        if split in HELD_OUT_SPLITS and not any(p in HELD_OUT_PAIRS for p in chosen):
            continue
        positions: list[tuple[float, float]] = []
        tries = 0
        while len(positions) < count and tries < 200:
            tries += 1
            p = (rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85))
            if all(math.dist(p, q) > 0.28 for q in positions):
                positions.append(p)
        if len(positions) == count:
            break
    objects = tuple(
        SceneObject(shape=s, colour=c, size=rng.choice(SIZES), x=round(x, 4), y=round(y, 4))
        for (c, s), (x, y) in zip(chosen, positions)
    )
    width, height = rng.choice(((112, 112), (140, 140), (168, 126), (126, 168), (196, 196), (224, 168)))
    tint = rng.randint(225, 255)
    background = (tint, min(255, tint + rng.randint(-8, 8)), min(255, tint + rng.randint(-8, 8)))
    return Scene(objects, width, height, background, rng.randrange(2**31))
