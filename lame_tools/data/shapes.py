"""The Shapes world: procedural scenes, their scene graphs, tasks with rationales, and fixed splits.

Every scene is a short list of objects (shape, colour, size, position) drawn with Pillow. From the
scene graph we derive examples in the shape of MMEB's image meta-tasks (classification, VQA,
retrieval, grounding), each with a chain-of-thought rationale written from the graph, and fixed
train / validation / test splits in which test holds colour-shape compositions never seen in training.

The world lives in three modules, all re-exported here: `scene` (the graph and the scene of each
split and index), `render` (drawing, rendering styles) and `tasks` (examples of each subtask).
This module holds the vocabulary, the splits (the original cycle and the balanced splits, with the
same number of queries per subtask) and the MMEB-style export.

Everything is a pure function of (seed, split, index): the same call always gives the same scene.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lame_tools.data.render import ROBUSTNESS_VARIANTS, RenderStyle, object_boxes, random_style, render
from lame_tools.data.scene import (
    BASE_RGB,
    COLOURS,
    COUNT_WORDS,
    HELD_OUT_PAIRS,
    RELATIONS,
    SHAPES,
    SIZES,
    SPLIT_SIZES,
    SPLITS,
    Scene,
    SceneObject,
    make_scene,
    relation_holds,
)
from lame_tools.data.tasks import (
    ALL_OBJECT_NAMES,
    INSTRUCTIONS,
    PERCEPTION_SUBTASKS,
    REASONING_SUBTASKS,
    SUBTASK_KIND,
    SUBTASKS,
    TARGET_INSTRUCTION,
    TASK_KINDS,
    Example,
    make_example,
    make_subtask_example,
)

__all__ = [
    "ALL_OBJECT_NAMES", "BALANCED_SIZES", "BASE_RGB", "COLOURS", "COUNT_WORDS", "HELD_OUT_PAIRS", "INSTRUCTIONS",
    "PERCEPTION_SUBTASKS", "REASONING_SUBTASKS", "RELATIONS", "ROBUSTNESS_VARIANTS", "RenderStyle", "SHAPES",
    "SIZES", "SPLITS", "SPLIT_SIZES", "SUBTASKS", "SUBTASK_KIND", "Scene", "SceneObject", "TARGET_INSTRUCTION",
    "TASK_KINDS", "VOCABULARY", "Example", "balanced_examples", "export_file_name", "export_mmeb",
    "gallery_file_name", "iter_split", "make_example", "make_scene", "make_subtask_example", "mmeb_rows",
    "object_boxes", "random_style", "relation_holds", "render",
]

# Every word any template can produce; the tokenizer's vocabulary is built from this list
# (a test checks that generated texts never fall outside it).
VOCABULARY = sorted(
    set(SHAPES)
    | set(COLOURS)
    | set(SIZES)
    | set(COUNT_WORDS)
    | set(RELATIONS)
    | {
        "a", "an", "and", "the", "of", "is", "are", "there", "how", "many", "objects", "object",
        "what", "which", "colour", "shape", "left", "right", "above", "below", "find", "count",
        "answer", "question", "image", "picture", "describe", "caption", "match", "scene", "with",
        "shows", "it", "in", "this", "to", "on", "at", "so", "one", "thing", "step", "first",
        "then", "target", "look", "for", "shapes", "select", "retrieve", "classify", "by",
        "represent", "given", "number", "named", "relation", "nothing", "reference", "description",
        "text", "query", "about", "matches", "that", ",", ".", ":", "?",
    }
)

# Queries per subtask of the balanced splits (every subtask of SUBTASKS the same number).
BALANCED_SIZES = {"validation": 100, "test": 300, "validation_pairs": 200}
BALANCED_SCENE_STRIDE = 100_000


def gallery_file_name(split: str, seed: int, index: int) -> str:
    """The file name of scene `index` of a split in the app's gallery folder."""
    return f"{split}_s{seed}_{index:05d}.png"


def export_file_name(split: str, index: int) -> str:
    """The relative image path of scene `index` in an MMEB-style export of a split."""
    return f"images/{split}_{index:05d}.png"


def iter_split(seed: int, split: str, limit: int | None = None):
    """Yield the examples of a fixed split in order (train is long; pass `limit`)."""
    n = SPLIT_SIZES[split] if limit is None else min(limit, SPLIT_SIZES[split])
    for i in range(n):
        yield make_example(seed, split, i)


def balanced_examples(
    seed: int, split: str, per_subtask: int | None = None, subtasks: tuple[str, ...] = SUBTASKS
) -> list[tuple[int, Example]]:
    """The balanced split: `per_subtask` examples of every subtask (default `BALANCED_SIZES[split]`),
    as (scene index, example) pairs, subtask by subtask. Each subtask walks its own range of scenes
    (from `BALANCED_SCENE_STRIDE` times its position in SUBTASKS) and keeps those that can pose it,
    so no two queries share a scene and the queries of a subtask are independent draws."""
    n = per_subtask if per_subtask is not None else BALANCED_SIZES.get(split)
    if n is None or n < 1:
        raise ValueError(f"give per_subtask for the {split!r} split (balanced sizes: {BALANCED_SIZES})")
    if n > BALANCED_SCENE_STRIDE // 4:
        raise ValueError(f"at most {BALANCED_SCENE_STRIDE // 4} queries per subtask")
    found: list[tuple[int, Example]] = []
    for subtask in subtasks:
        index, kept = BALANCED_SCENE_STRIDE * SUBTASKS.index(subtask), 0
        while kept < n:
            example = make_subtask_example(seed, split, index, subtask)
            if example is not None:
                found.append((index, example))
                kept += 1
            index += 1
    return found


# ---- export --------------------------------------------------------------------------------------


def mmeb_rows(
    seed: int, split: str, limit: int | None = None, per_subtask: int | None = None
) -> tuple[dict[str, list[dict]], list[tuple[str, Scene]]]:
    """Build `split` as MMEB-style rows in memory (no files), one list per subtask.

    Rows carry `qry_inst`, `qry_text`, `qry_img_path`, `tgt_inst`, `tgt_text`, `tgt_img_path`
    (candidate lists, first one positive), plus our `task`, `rationale`, `scene` and, on the
    balanced split, `held_out` (the answer is a held-out colour-shape pair). Image paths are
    `export_file_name(split, scene index)`; the second return value lists every (path, scene) pair
    once, in order, so a caller can render the images to disk (`export_mmeb`) or in memory (the
    evaluation harness). For t2i the candidates are the positive image and 15 other scenes of the split.

    Args:
        limit: the first `limit` examples of the fixed split.
        per_subtask: build the balanced split instead (`balanced_examples`), this many per subtask.
    """
    if per_subtask is not None:
        indexed = balanced_examples(seed, split, per_subtask)
    else:
        indexed = list(enumerate(iter_split(seed, split, limit)))
    scenes = {export_file_name(split, index): ex.scene for index, ex in indexed}
    image_paths = list(scenes)
    rows: dict[str, list[dict]] = {}
    for i, (index, ex) in enumerate(indexed):
        own = export_file_name(split, index)
        if ex.target_has_image:
            rng = random.Random(f"{seed}/{split}/{i}/t2i")
            others = [p for p in image_paths if p != own]
            tgt_img = [own, *rng.sample(others, min(15, len(others)))]
            tgt_text = [""] * len(tgt_img)
        else:
            tgt_text = list(ex.candidates)
            tgt_img = [""] * len(tgt_text)
        row = {
            "qry_inst": ex.instruction,
            "qry_text": ex.query_text,
            "qry_img_path": own if ex.query_has_image else "",
            "tgt_inst": TARGET_INSTRUCTION,
            "tgt_text": tgt_text,
            "tgt_img_path": tgt_img,
            "task": ex.task,
            "rationale": ex.rationale,
            "scene": ex.scene.to_json(),
        }
        if per_subtask is not None:
            row["held_out"] = ex.held_out_pair
        rows.setdefault(ex.subtask, []).append(row)
    return rows, list(scenes.items())


def export_mmeb(
    seed: int, split: str, out_dir: str | Path, limit: int | None = None, per_subtask: int | None = None
) -> Path:
    """Write `split` as MMEB-style rows (one JSONL per subtask) plus PNG files under `out_dir`.

    The rows are those of `mmeb_rows` (see there for the fields and options); image paths are
    relative to `out_dir`. Returns the folder.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, images = mmeb_rows(seed, split, limit, per_subtask)
    for rel, scene in images:
        render(scene).save(out / rel)
    for subtask, task_rows in rows.items():
        tmp = out / f".{subtask}.jsonl.tmp"
        with tmp.open("w") as f:
            for row in task_rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(out / f"{subtask}.jsonl")
    return out
