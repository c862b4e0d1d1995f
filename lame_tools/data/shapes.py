"""The Shapes world: procedural scenes, their scene graphs, four meta-tasks and rationales.

Every scene is a short list of objects (shape, colour, size, position) drawn with Pillow. From the
scene graph we derive examples in the shape of MMEB's image meta-tasks (classification, VQA,
retrieval, grounding), each with a chain-of-thought rationale written from the graph, and fixed
train / validation / test splits in which test holds colour-shape compositions never seen in training.

Everything is a pure function of (seed, split, index): the same call always gives the same scene.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from lame_tools.data.render import SUPERSAMPLE, object_boxes, render  # noqa: F401 - part of this module's API
from lame_tools.data.scene import (  # noqa: F401 - part of this module's API
    BASE_RGB,
    COLOURS,
    COUNT_WORDS,
    HELD_OUT_PAIRS,
    RELATIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneObject,
    relation_holds,
)
from lame_tools.inputs import Item

TASK_KINDS = ("classification", "vqa", "retrieval", "grounding")
SPLITS = ("train", "validation", "test")
SPLIT_SIZES = {"train": 20000, "validation": 500, "test": 500}

# Every word any template below can produce; the tokenizer's vocabulary is built from this list
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


@dataclass(frozen=True)
class Example:
    """One query -> target pair of a meta-task, with its rationale and the scene it comes from."""

    task: str  # one of TASK_KINDS
    subtask: str  # e.g. "count", "colour_of", "relation_two_step", "t2i", "i2t", "refer"
    instruction: str
    query_text: str  # may be "" for an image-only query
    query_has_image: bool
    target_text: str  # "" when the target is the image
    target_has_image: bool
    rationale: str
    scene: Scene
    candidates: tuple[str, ...] = field(default=())  # text candidates, positive first (text targets)
    # relational questions and references (relation_two_step, refer): the object asked about, the
    # relation and the object that answers; None / "" for the other subtasks
    anchor: SceneObject | None = None
    relation: str = ""
    answer_object: SceneObject | None = None

    def query_item(self, image: Image.Image | None = None) -> Item:
        """The query as a model input; the scene is rendered unless `image` (its rendering) is given."""
        if not self.query_has_image:
            return Item(None, self.query_text or None, self.instruction)
        return Item(image if image is not None else render(self.scene), self.query_text or None, self.instruction)

    def target_item(self, image: Image.Image | None = None) -> Item:
        """The positive target as a model input (the scene's image for t2i, else the answer text)."""
        if self.target_has_image:
            return Item(image if image is not None else render(self.scene), None, TARGET_INSTRUCTION)
        return Item(None, self.target_text, TARGET_INSTRUCTION)

    def object_index(self, obj: SceneObject | None) -> int | None:
        """Position of `obj` in `scene.objects` (None when `obj` is None)."""
        return None if obj is None else self.scene.objects.index(obj)


def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    if split == "test":
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
        if split == "test" and not any(p in HELD_OUT_PAIRS for p in chosen):
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


def gallery_file_name(split: str, seed: int, index: int) -> str:
    """The file name of scene `index` of a split in the app's gallery folder."""
    return f"{split}_s{seed}_{index:05d}.png"


def export_file_name(split: str, index: int) -> str:
    """The relative image path of example `index` in an MMEB-style export of a split."""
    return f"images/{split}_{index:05d}.png"


# ---- tasks -------------------------------------------------------------------------------------

INSTRUCTIONS = {
    "count": "count the objects in the image .",
    "colour_of": "answer the question about the image .",
    "shape_of": "answer the question about the image .",
    "relation_two_step": "answer the question about the image .",
    "t2i": "find the image that matches the caption .",
    "i2t": "describe the image with a caption .",
    "refer": "find the object named by the reference .",
}
TARGET_INSTRUCTION = "represent the text ."

ALL_OBJECT_NAMES = tuple(f"a {c} {s}" for c in COLOURS for s in SHAPES)


def _list_objects(scene: Scene) -> str:
    return "objects : " + " , ".join(o.name for o in scene.left_to_right()) + " ."


def _relation_pairs(scene: Scene) -> list[tuple[SceneObject, str, SceneObject]]:
    """(answer, relation, anchor) triples where `answer` is the only object `relation` of `anchor`."""
    found = []
    for anchor in scene.objects:
        for relation in RELATIONS:
            hits = [o for o in scene.objects if o is not anchor and relation_holds(o, relation, anchor)]
            if len(hits) == 1:
                found.append((hits[0], relation, anchor))
    return found


def _relation_phrase(relation: str) -> str:
    return f"{relation} of" if relation in ("left", "right") else relation


def _distractors(positive: str, pool: tuple[str, ...], rng: random.Random, n: int) -> tuple[str, ...]:
    others = [p for p in pool if p != positive]
    rng.shuffle(others)
    return (positive, *others[:n])


def _captions_pool(seed: int, split: str, index: int, rng: random.Random, n: int) -> list[str]:
    """Captions of other scenes of the same split, used as hard-ish negatives for i2t."""
    captions = []
    while len(captions) < n:
        other = make_scene(seed, split, rng.randrange(SPLIT_SIZES[split] * 4) + 10**6 + index)
        captions.append(other.caption())
    return captions


def make_example(seed: int, split: str, index: int, task: str | None = None, n_candidates: int = 16) -> Example:
    """Example `index` of `split`: the task kind cycles over TASK_KINDS unless `task` is given."""
    scene = make_scene(seed, split, index)
    rng = random.Random(f"{seed}/{split}/{index}/task")
    task = task or TASK_KINDS[index % len(TASK_KINDS)]
    objects_line = _list_objects(scene)

    if task == "classification":
        n = len(scene.objects)
        answer = COUNT_WORDS[n]
        rationale = f"{objects_line} count : {answer} . answer : {answer} ."
        return Example(
            task, "count", INSTRUCTIONS["count"], "how many objects are there ?", True, answer, False,
            rationale, scene, candidates=tuple([answer] + [w for w in COUNT_WORDS[1:] if w != answer]),
        )

    if task == "vqa":
        triples = _relation_pairs(scene)
        if triples and rng.random() < 0.7:
            answer_obj, relation, anchor = rng.choice(triples)
            question = f"what is {_relation_phrase(relation)} the {anchor.name} ?"
            answer = answer_obj.describe()
            rationale = (
                f"{objects_line} find the {anchor.name} . then look {relation} : "
                f"{answer_obj.name} . answer : {answer} ."
            )
            return Example(
                task, "relation_two_step", INSTRUCTIONS["relation_two_step"], question, True, answer, False,
                rationale, scene, candidates=_distractors(answer, ALL_OBJECT_NAMES, rng, n_candidates - 1),
                anchor=anchor, relation=relation, answer_object=answer_obj,
            )
        obj = rng.choice(scene.objects)
        if rng.random() < 0.5:
            question, answer, sub = f"what colour is the {obj.shape} ?", obj.colour, "colour_of"
            pool = COLOURS
        else:
            question, answer, sub = f"what shape is the {obj.colour} object ?", obj.shape, "shape_of"
            pool = SHAPES
        # Only ask when the question has one answer in this scene.
        if sum(1 for o in scene.objects if (o.shape if sub == "colour_of" else o.colour) == (
            obj.shape if sub == "colour_of" else obj.colour)) > 1:
            return make_example(seed, split, index, "classification", n_candidates)
        rationale = f"{objects_line} find the {obj.shape if sub == 'colour_of' else obj.colour} . answer : {answer} ."
        return Example(
            task, sub, INSTRUCTIONS[sub], question, True, answer, False, rationale, scene,
            candidates=_distractors(answer, pool, rng, len(pool) - 1),
        )

    if task == "retrieval":
        caption = scene.caption()
        rationale = f"{objects_line} answer : {caption} ."
        if index % 8 < 4:
            return Example(task, "t2i", INSTRUCTIONS["t2i"], caption, False, "", True, rationale, scene)
        pool = _captions_pool(seed, split, index, rng, n_candidates - 1)
        return Example(
            task, "i2t", INSTRUCTIONS["i2t"], "", True, caption, False, rationale, scene,
            candidates=tuple([caption] + [c for c in pool if c != caption][: n_candidates - 1]),
        )

    if task == "grounding":
        triples = _relation_pairs(scene)
        if not triples:
            return make_example(seed, split, index, "vqa", n_candidates)
        answer_obj, relation, anchor = rng.choice(triples)
        reference = f"the shape {_relation_phrase(relation)} the {anchor.name}"
        answer = answer_obj.describe(with_size=True)
        rationale = (
            f"{objects_line} find the {anchor.name} . then look {relation} : {answer_obj.name} . "
            f"answer : {answer} ."
        )
        pool = tuple(f"a {z} {c} {s}" for z in SIZES for c in COLOURS for s in SHAPES)
        return Example(
            task, "refer", INSTRUCTIONS["refer"], reference, True, answer, False, rationale, scene,
            candidates=_distractors(answer, pool, rng, n_candidates - 1),
            anchor=anchor, relation=relation, answer_object=answer_obj,
        )

    raise ValueError(f"unknown task {task!r}; expected one of {TASK_KINDS}")


def iter_split(seed: int, split: str, limit: int | None = None):
    """Yield the examples of a split in order (train is long; pass `limit`)."""
    n = SPLIT_SIZES[split] if limit is None else min(limit, SPLIT_SIZES[split])
    for i in range(n):
        yield make_example(seed, split, i)


# ---- export --------------------------------------------------------------------------------------


def mmeb_rows(seed: int, split: str, limit: int | None = None) -> tuple[dict[str, list[dict]], list[tuple[str, Scene]]]:
    """Build `split` as MMEB-style rows in memory (no files), one list per subtask.

    Rows carry `qry_inst`, `qry_text`, `qry_img_path`, `tgt_inst`, `tgt_text`, `tgt_img_path`
    (candidate lists, first one positive), plus our `task`, `rationale` and `scene`. Image paths are
    `images/{split}_{i:05d}.png`; the second return value lists every (path, scene) pair, in order,
    so a caller can render the images to disk (`export_mmeb`) or in memory (the evaluation
    harness). For t2i the candidates are the positive image and 15 other images of the split.
    """
    examples = list(iter_split(seed, split, limit))
    images = [(export_file_name(split, i), ex.scene) for i, ex in enumerate(examples)]
    image_paths = [path for path, _ in images]
    rows: dict[str, list[dict]] = {}
    for i, ex in enumerate(examples):
        if ex.target_has_image:
            rng = random.Random(f"{seed}/{split}/{i}/t2i")
            others = [p for j, p in enumerate(image_paths) if j != i]
            tgt_img = [image_paths[i], *rng.sample(others, min(15, len(others)))]
            tgt_text = [""] * len(tgt_img)
        else:
            tgt_text = list(ex.candidates)
            tgt_img = [""] * len(tgt_text)
        rows.setdefault(ex.subtask, []).append(
            {
                "qry_inst": ex.instruction,
                "qry_text": ex.query_text,
                "qry_img_path": image_paths[i] if ex.query_has_image else "",
                "tgt_inst": TARGET_INSTRUCTION,
                "tgt_text": tgt_text,
                "tgt_img_path": tgt_img,
                "task": ex.task,
                "rationale": ex.rationale,
                "scene": ex.scene.to_json(),
            }
        )
    return rows, images


def export_mmeb(seed: int, split: str, out_dir: str | Path, limit: int | None = None) -> Path:
    """Write `split` as MMEB-style rows (one JSONL per subtask) plus PNG files under `out_dir`.

    The rows are those of `mmeb_rows` (see there for the fields); image paths are relative to
    `out_dir`. Returns the folder.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, images = mmeb_rows(seed, split, limit)
    for rel, scene in images:
        render(scene).save(out / rel)
    for subtask, task_rows in rows.items():
        tmp = out / f".{subtask}.jsonl.tmp"
        with tmp.open("w") as f:
            for row in task_rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(out / f"{subtask}.jsonl")
    return out
