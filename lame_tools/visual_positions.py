"""Visual positions: each merged visual token also carries where its cell lies in the image.

The relational error analysis (`scripts/binding_errors.py`, relational subtasks; README, "Where the
relational answers go wrong") found that no model reads spatial relations: on the test split's
relation_two_step queries every model, CoT included, scores at or below what naming a random object
other than the anchor gives (54%), though a reader that knew only which of the 16 cells each object
lies in could reach 87%. With `LameConfig.scene_words_only` a visual token is the probability-
weighted embedding of the shape and colour words its scene head sees: what it is, never where.
Where is left to the language model's rotary positions, which only shape attention scores.

With `LameConfig.visual_positions`, each merged token gets, before the language model reads it, a
learned linear map (`VisualPositions`, zero at the start, so a new model starts as it would
without) of sinusoidal features of its cell centre's (x, y) as fractions of the image, so "left of
the anchor" can be read as content: the anchor's x and a candidate's x, compared in the layers
after. Fractions, not cell indices, so images of other sizes and aspect ratios (the rendering
variation) place the same point alike. `attach(model)` installs the forward hook after the scene
words'; `lame_tools.scene_words.raw_vision` turns both off (the scene head reads raw tokens).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lame_tools.scene_head import hooked_tokens, merged_spans, with_tokens

FREQUENCIES = 4  # sin / cos of pi * k * coordinate, k = 1..4, for x and for y


def cell_features(grids: torch.Tensor, merge_size: int) -> torch.Tensor:
    """[tokens, 4 * FREQUENCIES]: per merged token of `grids`' images (row-major, in order), sin and
    cos of pi * k * x and pi * k * y for its cell centre (x, y) in image fractions."""
    rows_out = []
    k = torch.arange(1, FREQUENCIES + 1, dtype=torch.float32) * math.pi
    for _, rows, cols in merged_spans(grids, merge_size):
        y = (torch.arange(rows, dtype=torch.float32) + 0.5) / rows
        x = (torch.arange(cols, dtype=torch.float32) + 0.5) / cols
        yy, xx = torch.meshgrid(y, x, indexing="ij")
        angles = torch.cat([xx.reshape(-1, 1) * k, yy.reshape(-1, 1) * k], dim=1)
        rows_out.append(torch.cat([angles.sin(), angles.cos()], dim=1))
    return torch.cat(rows_out) if rows_out else torch.zeros(0, 4 * FREQUENCIES)


class VisualPositions(nn.Module):
    """A linear map from `cell_features` to the language model's width, zero at initialisation."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4 * FREQUENCIES, hidden, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, grids: torch.Tensor, merge_size: int) -> torch.Tensor:
        features = cell_features(grids, merge_size).to(self.proj.weight.device, self.proj.weight.dtype)
        return self.proj(features)


def attach(model) -> None:
    """Add each merged visual token's position (`model.visual_positions`) to every forward of the
    vision tower, after any scene words (see the module docstring)."""

    def hook(_module, args, kwargs, output):
        if getattr(model, "_raw_vision", False):
            return None
        tokens, grid = hooked_tokens(args, kwargs, output)
        return with_tokens(output, tokens + model.visual_positions(grid, model.processor.merge_size).to(tokens.dtype))

    model.backbone.model.visual.register_forward_hook(hook, with_kwargs=True)
