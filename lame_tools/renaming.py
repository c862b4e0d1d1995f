"""Renaming: a training augmentation that relabels the shape and colour words of an example.

The binding runs (README, "Perception") found that once the language model binds a named shape to
its colour, it binds only the sixteen colour-shape pairs of training, even when it reads nothing of
an image but its scene head's words (`LameConfig.scene_words_only`): "what colour is the square ?"
never has a held-out pair's colour as its answer in training, so a model that fits training
learns never to give it. That prior is in the data, not in the architecture.

With `TrainConfig.rename_words` (a share of examples), an example draws a random permutation of the
four shape words and one of the five colour words (a pure function of seed, step and scene index),
and everything the language model reads of it is relabelled alike: its query, target, hard-negative
and decoder texts (`rename_text`), and, through `lame_tools.scene_words.renamed`, the words its
images' visual tokens carry. With the words alone that is a symmetry of the world as the language
model sees it (a red square called "green triangle" everywhere), so the pair statistics it trains on
become uniform over all twenty pairs, held-out ones included, while the vision tower and its scene
head keep seeing only the training pairs under their true names. Evaluation never renames.
"""

from __future__ import annotations

import random
import re

from lame_tools.data.scene import COLOURS, SHAPES

_WORD = re.compile(r"\b(" + "|".join(sorted([*SHAPES, *COLOURS], key=len, reverse=True)) + r")\b")


def draw_renaming(seed: int, step: int, index: int, share: float) -> dict[str, str] | None:
    """The relabelling of train scene `index` at `step` (true name -> name used), or None (not
    renamed: a `1 - share` part of draws). A pure function of its arguments, so a resumed run draws
    the same."""
    rng = random.Random(f"rename/{seed}/{step}/{index}")
    if share <= 0 or rng.random() >= share:
        return None
    shapes, colours = list(SHAPES), list(COLOURS)
    rng.shuffle(shapes)
    rng.shuffle(colours)
    return {**dict(zip(SHAPES, shapes)), **dict(zip(COLOURS, colours))}


def rename_text(text: str | None, renaming: dict[str, str] | None) -> str | None:
    """`text` with every whole shape or colour word replaced by its new name (all at once, so a
    swap of two names stays a swap)."""
    if text is None or renaming is None:
        return text
    return _WORD.sub(lambda m: renaming[m.group(0)], text)
