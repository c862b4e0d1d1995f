"""A dense scene-graph read-out of the vision tower: what each visual token sees.

The Shapes world knows every object's shape, colour and position, so the vision tower can be taught
to see with labels instead of only through the contrastive loss: a linear `SceneHead` on each merged
visual token (the tokens the language model reads, in the row-major order of the merged grid)
predicts the shape and the colour of the object whose centre falls in that token's cell, or "none".
The head is part of the model when `LameConfig.scene_head` is set (it trains with the vision tower
and is saved with it); at inference it is a probe of what the tower perceives.

`capture_vision(model)` records the tower's merged tokens of every forward inside it, so the loss
costs no second vision pass; `scene_head_loss` and `scene_readout` use them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lame_tools.data.scene import COLOURS, HELD_OUT_PAIRS, SHAPES, Scene

NONE_SHAPE = len(SHAPES)  # class index of "no object centred here"
NONE_COLOUR = len(COLOURS)


class SceneHead(nn.Module):
    """Per visual token: logits over SHAPES + none, and over COLOURS + none. With `context` > 1 each
    token first adds a `context` x `context` convolution of its image's merged grid around it (zero at
    the start, so the head begins as the per-token one): a cell can see whether its neighbour reads
    the other half of an object that straddles their border."""

    def __init__(self, hidden_size: int, context: int = 1) -> None:
        super().__init__()
        if context < 1 or context % 2 == 0:
            raise ValueError(f"the scene head's context is an odd kernel size >= 1, not {context}")
        self.shape = nn.Linear(hidden_size, len(SHAPES) + 1)
        self.colour = nn.Linear(hidden_size, len(COLOURS) + 1)
        self.context = None  # built last, so a per-token head initialises exactly as before
        if context > 1:
            self.context = nn.Conv2d(hidden_size, hidden_size, context, padding=context // 2)
            nn.init.zeros_(self.context.weight)
            nn.init.zeros_(self.context.bias)

    def forward(self, tokens: torch.Tensor, grids: torch.Tensor | None = None,
                merge_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """`tokens` [n, hidden] of images whose `grids` (t, h, w in patches, merged by `merge_size`)
        are given in order; the grids are needed only by a head with context."""
        if self.context is not None:
            if grids is None:
                raise ValueError("a scene head that reads its neighbours needs the images' grids")
            tokens = tokens + self._neighbours(tokens, grids, merge_size)
        return self.shape(tokens), self.colour(tokens)

    def _neighbours(self, tokens: torch.Tensor, grids: torch.Tensor, merge_size: int) -> torch.Tensor:
        parts = []
        for offset, rows, cols in merged_spans(grids, merge_size):
            image = tokens[offset : offset + rows * cols].T.reshape(1, -1, rows, cols)
            parts.append(self.context(image).reshape(tokens.shape[1], rows * cols).T)
        return torch.cat(parts)


@dataclass
class VisionCapture:
    """The merged visual tokens [tokens, hidden] and image grids [images, 3] of each forward."""

    tokens: list[torch.Tensor]
    grids: list[torch.Tensor]

    def take(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All captured (tokens, grids) so far, concatenated in forward order, and cleared."""
        if not self.tokens:
            return None
        out = torch.cat(self.tokens), torch.cat(self.grids)
        self.tokens.clear()
        self.grids.clear()
        return out


def hooked_tokens(args, kwargs, output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(merged tokens, image grids) seen by a forward hook (`with_kwargs=True`) on the vision tower."""
    return getattr(output, "pooler_output", output), kwargs.get("grid_thw", args[1] if len(args) > 1 else None)


def with_tokens(output, tokens: torch.Tensor):
    """What a vision-tower forward hook returns to replace the merged tokens of `output` by `tokens`."""
    if hasattr(output, "pooler_output"):
        output.pooler_output = tokens
        return output
    return tokens


@contextlib.contextmanager
def capture_vision(model) -> Iterator[VisionCapture]:
    """Record the vision tower's merged tokens of every backbone forward inside the block."""
    capture = VisionCapture([], [])
    visual = model.backbone.model.visual

    def hook(_module, args, kwargs, output):
        tokens, grid = hooked_tokens(args, kwargs, output)
        capture.tokens.append(tokens)
        capture.grids.append(grid.detach().cpu())

    # first of the tower's hooks: the raw tokens, before `lame_tools.scene_words` adds to them
    handle = visual.register_forward_hook(hook, with_kwargs=True, prepend=True)
    try:
        yield capture
    finally:
        handle.remove()


def merged_grid(grid_thw: Sequence[int], merge_size: int) -> tuple[int, int]:
    """(rows, columns) of one image's merged visual tokens."""
    _, h, w = (int(v) for v in grid_thw)
    return h // merge_size, w // merge_size


def merged_spans(grids: torch.Tensor, merge_size: int) -> list[tuple[int, int, int]]:
    """Per image (grids in order): (its first merged token's index in the batch's tokens, rows,
    columns)."""
    spans, offset = [], 0
    for grid in grids.tolist():
        rows, cols = merged_grid(grid, merge_size)
        spans.append((offset, rows, cols))
        offset += rows * cols
    return spans


def cell_of(x: float, y: float, rows: int, cols: int) -> int:
    """The row-major index of the merged cell holding the point (x, y) in image fractions."""
    return min(int(y * rows), rows - 1) * cols + min(int(x * cols), cols - 1)


def cell_labels(scenes: Sequence[Scene], grids: torch.Tensor, merge_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(shape, colour) class per merged token of `scenes`' images (grids in the same order): the object
    centred in the cell (the later object when two share a cell, as it is drawn on top), else none."""
    shapes, colours = [], []
    for scene, grid in zip(scenes, grids.tolist()):
        rows, cols = merged_grid(grid, merge_size)
        shape = torch.full((rows * cols,), NONE_SHAPE, dtype=torch.long)
        colour = torch.full((rows * cols,), NONE_COLOUR, dtype=torch.long)
        for obj in scene.objects:
            cell = cell_of(obj.x, obj.y, rows, cols)
            shape[cell] = SHAPES.index(obj.shape)
            colour[cell] = COLOURS.index(obj.colour)
        shapes.append(shape)
        colours.append(colour)
    return torch.cat(shapes), torch.cat(colours)


def border_sets(scenes: Sequence[Scene], grids: torch.Tensor, merge_size: int,
                margin: float) -> list[tuple[list[int], int, int]]:
    """The objects whose centre lies within `margin` (a fraction of a cell) of a border between cells:
    per such object (the cells its centre +- margin touches, as global token indices; its shape and
    colour classes). An object is left to its centre's cell when one of those cells is claimed by
    another object (its centre's cell, or another such set)."""
    found = []
    for scene, (offset, rows, cols) in zip(scenes, merged_spans(grids, merge_size)):
        sets = []
        for obj in scene.objects:
            xs = {min(max(int((obj.x + d / cols) * cols), 0), cols - 1) for d in (-margin, 0.0, margin)}
            ys = {min(max(int((obj.y + d / rows) * rows), 0), rows - 1) for d in (-margin, 0.0, margin)}
            sets.append(sorted(y * cols + x for y in ys for x in xs))
        claims: dict[int, int] = {}
        for cells in sets:
            for cell in cells:
                claims[cell] = claims.get(cell, 0) + 1
        for obj, cells in zip(scene.objects, sets):
            if len(cells) > 1 and all(claims[c] == 1 for c in cells):
                found.append(([offset + c for c in cells], SHAPES.index(obj.shape), COLOURS.index(obj.colour)))
    return found


def _exactly_one_nll(log_probs: torch.Tensor, cells: list[int], cls: int, none: int) -> torch.Tensor:
    """-log P(exactly one of `cells` holds class `cls`, the others none), each cell independent."""
    rows = log_probs[cells]
    nones = rows[:, none]
    return -torch.logsumexp(rows[:, cls] + nones.sum() - nones, dim=0)


def scene_head_loss(head: SceneHead, tokens: torch.Tensor, grids: torch.Tensor, scenes: Sequence[Scene],
                    merge_size: int, colour: bool = True, border_margin: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the head's shape and colour classes against the scene graphs (mean of the two;
    the shape term alone with `colour=False`, for images whose objects are not in their named colour).

    `border_margin` > 0: an object whose centre lies within that fraction of a cell of a border
    (`border_sets`) is not tied to its centre's cell; the cells around the border must say, together,
    that exactly one of them holds it (`-log` of that probability, one term per object, averaged with
    the other cells' cross-entropy): a straddling object may be read in either cell, never in both or
    in neither, which is what counting by cells needs."""
    shape_target, colour_target = cell_labels(scenes, grids, merge_size)
    shape_logits, colour_logits = head(tokens.to(head.shape.weight.dtype), grids, merge_size)
    device = shape_logits.device
    sets = border_sets(scenes, grids, merge_size, border_margin) if border_margin > 0 else []
    plain = torch.ones(len(shape_target), dtype=torch.bool)
    for cells, _, _ in sets:
        plain[cells] = False

    def loss(logits: torch.Tensor, target: torch.Tensor, which: int, none: int) -> torch.Tensor:
        if not sets:
            return F.cross_entropy(logits, target.to(device))
        log_probs = logits.float().log_softmax(-1)
        keep = plain.to(device)
        terms = F.nll_loss(log_probs[keep], target.to(device)[keep], reduction="sum")
        terms = terms + sum(_exactly_one_nll(log_probs, cells, labels[which], none) for cells, *labels in sets)
        return terms / (int(keep.sum()) + len(sets))

    shape_loss = loss(shape_logits, shape_target, 0, NONE_SHAPE)
    if not colour:
        return shape_loss
    return 0.5 * (shape_loss + loss(colour_logits, colour_target, 1, NONE_COLOUR))


def vision_tokens(model, images: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """(merged visual tokens, image grids) of `images` through the vision tower alone."""
    from lame_tools.image_batch import pixel_inputs
    from lame_tools.scene_words import raw_vision

    vision = model.move_batch(pixel_inputs(model.processor.image_processor, list(images)))
    with raw_vision(model):
        output = model.backbone.model.visual(vision["pixel_values"], grid_thw=vision["image_grid_thw"])
    return getattr(output, "pooler_output", output), vision["image_grid_thw"]


def counts_from_logits(shape_logits: torch.Tensor, grids: torch.Tensor, merge_size: int) -> list[int]:
    """Per image (grids in order), the merged cells whose shape argmax is a shape, not "none": the
    objects the head's cells say the image holds."""
    return [int((shape_logits[offset : offset + rows * cols].argmax(-1) != NONE_SHAPE).sum())
            for offset, rows, cols in merged_spans(grids, merge_size)]


@torch.no_grad()
def head_counts(model, images: Sequence, batch_size: int = 64) -> list[int]:
    """`counts_from_logits` of the model's scene head on each image."""
    if model.scene_head is None:
        raise ValueError("this model has no scene head")
    counts = []
    for start in range(0, len(images), batch_size):
        tokens, grids = vision_tokens(model, images[start : start + batch_size])
        shape_logits, _ = model.scene_head(tokens.to(model.scene_head.shape.weight.dtype), grids,
                                           model.processor.merge_size)
        counts += counts_from_logits(shape_logits, grids, model.processor.merge_size)
    return counts


@torch.no_grad()
def scene_readout(model, scenes: Sequence[Scene], images: Sequence) -> dict[str, float]:
    """Accuracy of the model's scene head on each object's cell: shape and colour (the argmax over the
    real classes), over all objects of `scenes` drawn as `images`, and the shape accuracy apart on
    objects of a held-out colour-shape pair ("shape_held_out") and the rest ("shape_seen"), since a
    head that guesses shape from colour passes on seen pairs only; also the objects counted, and the
    share of scenes whose cells name as many objects as the scene holds ("count", `counts_from_logits`)."""
    if model.scene_head is None:
        raise ValueError("this model has no scene head")
    tokens, grids = vision_tokens(model, images)
    merge = model.processor.merge_size
    shape_logits, colour_logits = model.scene_head(tokens.to(model.scene_head.shape.weight.dtype), grids, merge)
    counted = counts_from_logits(shape_logits, grids, merge)
    right_colour = 0
    shape_hits: dict[bool, list[bool]] = {True: [], False: []}
    for scene, (offset, rows, cols) in zip(scenes, merged_spans(grids, merge)):
        for obj in scene.objects:
            cell = offset + cell_of(obj.x, obj.y, rows, cols)
            held_out = (obj.colour, obj.shape) in HELD_OUT_PAIRS
            shape_hits[held_out].append(int(shape_logits[cell, :NONE_SHAPE].argmax()) == SHAPES.index(obj.shape))
            right_colour += int(colour_logits[cell, :NONE_COLOUR].argmax()) == COLOURS.index(obj.colour)
    n = len(shape_hits[True]) + len(shape_hits[False])

    def share(hits: list[bool]) -> float | None:
        return sum(hits) / len(hits) if hits else None

    return {"shape": share(shape_hits[True] + shape_hits[False]) or 0.0, "colour": right_colour / max(1, n),
            "shape_held_out": share(shape_hits[True]), "shape_seen": share(shape_hits[False]),
            "objects": n, "held_out_objects": len(shape_hits[True]),
            "count": sum(c == len(s.objects) for c, s in zip(counted, scenes)) / max(1, len(scenes)),
            "scenes": len(scenes)}
