"""The Shapes world's scene graph: objects (shape, colour, size, position) and their spatial relations.

A `Scene` is pure data; `lame_tools.data.render` draws it and `lame_tools.data.shapes` derives tasks
from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
COUNT_WORDS = ("zero", "one", "two", "three", "four")
RELATIONS = ("left", "right", "above", "below")

# Colour-shape pairs that never appear in training or validation scenes; every test scene holds at
# least one, so the test split measures systematic generalisation to unseen compositions.
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
