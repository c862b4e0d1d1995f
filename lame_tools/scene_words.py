"""Scene words: visual tokens that also carry the words of what the scene head sees.

The binding diagnostics (README, "Perception") show the language model learns pair-specific keys
and values: a look-up loss teaches it to find "the square" and read its colour on the colour-shape
pairs of training (94-98% on test's seen pairs) but not on held-out ones (31-35%), though the
vision tower's scene head reads a held-out pair's shape at 90% and colour at 98%. With
`LameConfig.scene_words`, each merged visual token gets, before the language model reads it, the
probability-weighted input embeddings of the shape and colour words its scene head predicts
(nothing for "none"), scaled to the token's size. The question's "square" and a square's token
then share a direction by construction, and a held-out pair is the sum of two words the model
knows: an additive inductive bias for binding, not a label (the head's predictions are the
model's own, trained with the vision tower).

With `LameConfig.scene_words_only` the language model reads the words alone, not the raw visual
token beside them: the binding diagnostics found that a look-up trained on the sixteen training
pairs keys on the raw token's pair-specific features even when the words are there (held-out pairs
17-29% against 95-98% seen), so this variant leaves it nothing else to key on. A cell where the head
sees no object then reads the input row of `<|image_pad|>` (a learned "nothing", used nowhere else:
the image's own positions get the vision features), weighted by the head's "none" probability, so an
empty cell is not a near-zero vector that the first RMSNorm would blow up.

`attach(model)` installs the forward hook on the vision tower for the model's life; `raw_vision`
turns it (and the positions of `lame_tools.visual_positions`) off inside a block (the scene head's
own loss and read-out see the raw tokens).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from lame_tools.data.scene import COLOURS, SHAPES
from lame_tools.image_batch import visual_token_counts
from lame_tools.scene_head import NONE_COLOUR, NONE_SHAPE, hooked_tokens, with_tokens


def word_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids of the shape words and the colour words, in `SHAPES` / `COLOURS` order."""
    def one(word: str) -> int:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"scene words need {word!r} to be one token of the tokenizer, got {len(ids)}")
        return ids[0]

    return [one(w) for w in SHAPES], [one(w) for w in COLOURS]


def scene_word_vectors(model, tokens: torch.Tensor, with_none: bool = False,
                       renamed_rows: tuple[torch.Tensor, torch.Tensor] | None = None,
                       grids: torch.Tensor | None = None) -> torch.Tensor:
    """[tokens, hidden]: per merged visual token, p(shape) . E[shape words] + p(colour) . E[colour
    words] from the model's scene head, times the token's norm over the words' mean norm (per token,
    so a token's words do not depend on the other images of its batch). `with_none`: the "none"
    classes' probabilities weigh the `<|image_pad|>` row too (the words-only variant).
    `renamed_rows`: per token, the embedding rows that stand for each shape / each colour
    ([tokens, shapes], [tokens, colours]; `renaming_rows`), for a relabelled training example.
    `grids`: the images' grids (needed by a scene head that reads its neighbours)."""
    shape_ids, colour_ids = model._scene_word_ids
    table = model.backbone.get_input_embeddings().weight
    shape_logits, colour_logits = model.scene_head(tokens.to(model.scene_head.shape.weight.dtype), grids,
                                                   model.processor.merge_size)
    if with_none:  # every class, "none" standing for the <|image_pad|> row
        p_shape, p_colour = shape_logits.softmax(-1), colour_logits.softmax(-1)
    else:
        p_shape, p_colour = shape_logits.softmax(-1)[:, :NONE_SHAPE], colour_logits.softmax(-1)[:, :NONE_COLOUR]
    none_id = [model.processor.image_token_id] if with_none else []
    if renamed_rows is None:  # the same rows for every token
        words = p_shape @ table[shape_ids + none_id] + p_colour @ table[colour_ids + none_id]
    else:
        pad = torch.tensor(none_id, dtype=torch.long, device=tokens.device).expand(len(tokens), len(none_id))
        shape_rows, colour_rows = (torch.cat([r.to(tokens.device), pad], 1) for r in renamed_rows)
        words = (torch.einsum("nk,nkh->nh", p_shape, table[shape_rows])
                 + torch.einsum("nk,nkh->nh", p_colour, table[colour_rows]))
    with torch.no_grad():
        word_norm = torch.cat([table[shape_ids], table[colour_ids]]).norm(dim=-1).mean()
        scale = tokens.norm(dim=-1, keepdim=True) / word_norm.clamp_min(1e-6)
    return (words * scale).to(tokens.dtype)


def renaming_rows(model, renamings: Sequence[dict[str, str] | None],
                  tokens_per_image: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per visual token ([tokens, shapes], [tokens, colours]): the embedding row of the name each
    true shape / colour goes by in its image's renaming (`lame_tools.renaming`; None: its own)."""
    shape_ids, colour_ids = model._scene_word_ids
    shape_rows, colour_rows = [], []
    for renaming, count in zip(renamings, tokens_per_image, strict=True):
        name = renaming or {}
        shape_rows += [[shape_ids[SHAPES.index(name.get(s, s))] for s in SHAPES]] * count
        colour_rows += [[colour_ids[COLOURS.index(name.get(c, c))] for c in COLOURS]] * count
    return torch.tensor(shape_rows), torch.tensor(colour_rows)


@contextlib.contextmanager
def renamed(model, renamings: Sequence[dict[str, str] | None] | None) -> Iterator[None]:
    """Within the block, the forwards' images (in forward order, one renaming each; None: not
    renamed) carry their words under their example's renaming (training only; see
    `lame_tools.renaming`). `renamings` None or all None: nothing changes."""
    saved = getattr(model, "_scene_word_renamings", None)
    model._scene_word_renamings = list(renamings) if renamings and any(renamings) else None
    try:
        yield
    finally:
        model._scene_word_renamings = saved


def attach(model) -> None:
    """Add scene words to every forward of the model's vision tower (see the module docstring)."""
    model._scene_word_ids = word_ids(model.processor.tokenizer)
    words_only = model.config.scene_words_only

    def hook(_module, args, kwargs, output):
        if getattr(model, "_raw_vision", False):
            return None
        tokens, grid = hooked_tokens(args, kwargs, output)
        rows = None
        if getattr(model, "_scene_word_renamings", None):
            counts = visual_token_counts(grid, model.processor.merge_size)
            rows = renaming_rows(model, model._scene_word_renamings, counts)
        words = scene_word_vectors(model, tokens, with_none=words_only, renamed_rows=rows, grids=grid)
        return with_tokens(output, words if words_only else tokens + words)

    model.backbone.model.visual.register_forward_hook(hook, with_kwargs=True)


@contextlib.contextmanager
def raw_vision(model) -> Iterator[None]:
    """Within the block the vision tower gives its raw tokens (no scene words, no positions of
    `lame_tools.visual_positions`); restored after."""
    saved = getattr(model, "_raw_vision", False)
    model._raw_vision = True
    try:
        yield
    finally:
        model._raw_vision = saved
