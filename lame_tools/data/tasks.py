"""Tasks of the Shapes world: one query -> target example per scene and subtask, with its rationale.

Subtasks, grouped in MMEB's four image meta-tasks:
    classification  count ("how many objects"), count_attribute ("how many red objects")
    vqa             colour_of, shape_of (perception); relation_two_step ("what is left of the red
                    square"), relation_attribute ("what colour is the shape left of the red square")
    retrieval       t2i (caption -> image), i2t (image -> caption)
    grounding       refer ("the shape left of the red square" -> its size, colour and shape)

`make_example` is the original cycle of the fixed splits (its output never changes: the shipped
models were trained and evaluated on it). `make_subtask_example` builds one named subtask for a
scene, or None where the scene cannot pose it; the balanced splits are made from it.
Every rationale is written from the scene graph (the gold chain of thought of the CoT baseline).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from lame_tools.data.render import render
from lame_tools.data.scene import (
    COLOURS,
    COUNT_WORDS,
    HELD_OUT_PAIRS,
    RELATIONS,
    SHAPES,
    SIZES,
    SPLIT_SIZES,
    Scene,
    SceneObject,
    make_scene,
    relation_holds,
)
from lame_tools.inputs import Item

TASK_KINDS = ("classification", "vqa", "retrieval", "grounding")
SUBTASK_KIND = {
    "count": "classification",
    "count_attribute": "classification",
    "colour_of": "vqa",
    "shape_of": "vqa",
    "relation_two_step": "vqa",
    "relation_attribute": "vqa",
    "t2i": "retrieval",
    "i2t": "retrieval",
    "refer": "grounding",
}
SUBTASKS = tuple(SUBTASK_KIND)
# Subtasks answered from what is seen (an attribute or the number of objects) ...
PERCEPTION_SUBTASKS = ("count", "colour_of", "shape_of")
# ... and those that need a step more: find an anchor, then look in a direction, or filter then count.
REASONING_SUBTASKS = ("relation_two_step", "relation_attribute", "count_attribute", "refer")
# the subtasks about an anchor object and the object in a relation to it (`Example.anchor`)
RELATIONAL_SUBTASKS = ("relation_two_step", "relation_attribute", "refer")

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
    # relational subtasks: the object asked about, the relation and the object that answers;
    # colour_of / shape_of: `answer_object` is the object asked about; None / "" elsewhere
    anchor: SceneObject | None = None
    relation: str = ""
    answer_object: SceneObject | None = None

    @property
    def steps(self) -> str:
        """The rationale without its opening objects list: the steps a reader takes after listing the
        scene (find, look, filter, count, answer). A decoder taught to write these from the reason
        tokens cannot read the answer off a listed scene in its own teacher-forced prefix."""
        listed = _list_objects(self.scene) + " "
        return self.rationale[len(listed):] if self.rationale.startswith(listed) else self.rationale

    @property
    def held_out_pair(self) -> bool:
        """Whether the object that answers is a colour-shape pair never seen in training."""
        obj = self.answer_object
        return obj is not None and (obj.colour, obj.shape) in HELD_OUT_PAIRS

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


INSTRUCTIONS = {
    "count": "count the objects in the image .",
    "colour_of": "answer the question about the image .",
    "shape_of": "answer the question about the image .",
    "relation_two_step": "answer the question about the image .",
    "t2i": "find the image that matches the caption .",
    "i2t": "describe the image with a caption .",
    "refer": "find the object named by the reference .",
    "relation_attribute": "answer the question about the image .",
    "count_attribute": "answer the question about the image .",
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


def relational_answer(subtask: str, obj: SceneObject) -> str:
    """The answer text a relational subtask (relation_two_step, relation_attribute, refer) gives when
    `obj` is the object that answers: its name, its colour, its size and name."""
    if subtask == "relation_two_step":
        return obj.describe()
    if subtask == "relation_attribute":
        return obj.colour
    if subtask == "refer":
        return obj.describe(with_size=True)
    raise ValueError(f"{subtask!r} is not a relational subtask ({', '.join(RELATIONAL_SUBTASKS)})")


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


def _count(scene: Scene, objects_line: str) -> Example:
    answer = COUNT_WORDS[len(scene.objects)]
    rationale = f"{objects_line} count : {answer} . answer : {answer} ."
    return Example(
        "classification", "count", INSTRUCTIONS["count"], "how many objects are there ?", True, answer, False,
        rationale, scene, candidates=tuple([answer] + [w for w in COUNT_WORDS[1:] if w != answer]),
    )


def _relation_two_step(scene: Scene, triple, objects_line: str, rng: random.Random, n_candidates: int) -> Example:
    answer_obj, relation, anchor = triple
    question = f"what is {_relation_phrase(relation)} the {anchor.name} ?"
    answer = relational_answer("relation_two_step", answer_obj)
    rationale = f"{objects_line} find the {anchor.name} . then look {relation} : {answer_obj.name} . answer : {answer} ."
    return Example(
        "vqa", "relation_two_step", INSTRUCTIONS["relation_two_step"], question, True, answer, False,
        rationale, scene, candidates=_distractors(answer, ALL_OBJECT_NAMES, rng, n_candidates - 1),
        anchor=anchor, relation=relation, answer_object=answer_obj,
    )


def _attribute(scene: Scene, obj: SceneObject, subtask: str, objects_line: str, rng: random.Random) -> Example | None:
    """colour_of / shape_of about `obj`; None when the question would have two answers in this scene."""
    if subtask == "colour_of":
        question, answer, pool, key = f"what colour is the {obj.shape} ?", obj.colour, COLOURS, obj.shape
        same = sum(1 for o in scene.objects if o.shape == obj.shape)
    else:
        question, answer, pool, key = f"what shape is the {obj.colour} object ?", obj.shape, SHAPES, obj.colour
        same = sum(1 for o in scene.objects if o.colour == obj.colour)
    if same > 1:
        return None
    rationale = f"{objects_line} find the {key} . answer : {answer} ."
    return Example(
        "vqa", subtask, INSTRUCTIONS[subtask], question, True, answer, False, rationale, scene,
        candidates=_distractors(answer, pool, rng, len(pool) - 1), answer_object=obj,
    )


def _t2i(scene: Scene, objects_line: str) -> Example:
    caption = scene.caption()
    return Example("retrieval", "t2i", INSTRUCTIONS["t2i"], caption, False, "", True, f"{objects_line} answer : {caption} .", scene)


def _i2t(scene: Scene, objects_line: str, pool: list[str], n_candidates: int) -> Example:
    caption = scene.caption()
    return Example(
        "retrieval", "i2t", INSTRUCTIONS["i2t"], "", True, caption, False, f"{objects_line} answer : {caption} .", scene,
        candidates=tuple([caption] + [c for c in pool if c != caption][: n_candidates - 1]),
    )


def _refer(scene: Scene, triple, objects_line: str, rng: random.Random, n_candidates: int) -> Example:
    answer_obj, relation, anchor = triple
    reference = f"the shape {_relation_phrase(relation)} the {anchor.name}"
    answer = relational_answer("refer", answer_obj)
    rationale = (
        f"{objects_line} find the {anchor.name} . then look {relation} : {answer_obj.name} . "
        f"answer : {answer} ."
    )
    pool = tuple(f"a {z} {c} {s}" for z in SIZES for c in COLOURS for s in SHAPES)
    return Example(
        "grounding", "refer", INSTRUCTIONS["refer"], reference, True, answer, False, rationale, scene,
        candidates=_distractors(answer, pool, rng, n_candidates - 1),
        anchor=anchor, relation=relation, answer_object=answer_obj,
    )


def _relation_attribute(scene: Scene, triple, objects_line: str, rng: random.Random) -> Example:
    answer_obj, relation, anchor = triple
    question = f"what colour is the shape {_relation_phrase(relation)} the {anchor.name} ?"
    answer = relational_answer("relation_attribute", answer_obj)
    rationale = (
        f"{objects_line} find the {anchor.name} . then look {relation} : {answer_obj.name} . "
        f"answer : {answer} ."
    )
    return Example(
        "vqa", "relation_attribute", INSTRUCTIONS["relation_attribute"], question, True, answer, False,
        rationale, scene, candidates=_distractors(answer, COLOURS, rng, len(COLOURS) - 1),
        anchor=anchor, relation=relation, answer_object=answer_obj,
    )


def _count_attribute(scene: Scene, objects_line: str, rng: random.Random) -> Example:
    # choose the answer first (uniform over the counts this scene can give), then a colour with that count,
    # so "one" is not the answer to most questions
    by_count: dict[int, list[str]] = {}
    for c in COLOURS:
        by_count.setdefault(sum(1 for o in scene.objects if o.colour == c), []).append(c)
    colour = rng.choice(by_count[rng.choice(sorted(by_count))])
    matches = [o for o in scene.left_to_right() if o.colour == colour]
    answer = COUNT_WORDS[len(matches)]
    listed = " , ".join(o.name for o in matches) or "nothing"
    rationale = f"{objects_line} find {colour} : {listed} . count : {answer} . answer : {answer} ."
    return Example(
        "classification", "count_attribute", INSTRUCTIONS["count_attribute"], f"how many {colour} objects are there ?",
        True, answer, False, rationale, scene, candidates=tuple([answer] + [w for w in COUNT_WORDS if w != answer]),
    )


def make_example(seed: int, split: str, index: int, task: str | None = None, n_candidates: int = 16) -> Example:
    """Example `index` of the fixed split: the task kind cycles over TASK_KINDS unless `task` is given
    (vqa falls back to count, grounding to vqa, where the scene cannot pose the question)."""
    scene = make_scene(seed, split, index)
    rng = random.Random(f"{seed}/{split}/{index}/task")
    task = task or TASK_KINDS[index % len(TASK_KINDS)]
    objects_line = _list_objects(scene)
    if task == "classification":
        return _count(scene, objects_line)
    if task == "vqa":
        triples = _relation_pairs(scene)
        if triples and rng.random() < 0.7:
            return _relation_two_step(scene, rng.choice(triples), objects_line, rng, n_candidates)
        obj = rng.choice(scene.objects)
        subtask = "colour_of" if rng.random() < 0.5 else "shape_of"
        example = _attribute(scene, obj, subtask, objects_line, rng)
        return example if example is not None else make_example(seed, split, index, "classification", n_candidates)
    if task == "retrieval":
        if index % 8 < 4:
            return _t2i(scene, objects_line)
        return _i2t(scene, objects_line, _captions_pool(seed, split, index, rng, n_candidates - 1), n_candidates)
    if task == "grounding":
        triples = _relation_pairs(scene)
        if not triples:
            return make_example(seed, split, index, "vqa", n_candidates)
        return _refer(scene, rng.choice(triples), objects_line, rng, n_candidates)
    raise ValueError(f"unknown task {task!r}; expected one of {TASK_KINDS}")


def make_subtask_example(seed: int, split: str, index: int, subtask: str, n_candidates: int = 16) -> Example | None:
    """An example of `subtask` about scene `index` of `split`, or None where that scene cannot pose it
    (no unique relation, or an attribute question with two answers). Deterministic."""
    if subtask not in SUBTASK_KIND:
        raise ValueError(f"unknown subtask {subtask!r}; expected one of {SUBTASKS}")
    scene = make_scene(seed, split, index)
    rng = random.Random(f"{seed}/{split}/{index}/{subtask}")
    objects_line = _list_objects(scene)
    if subtask == "count":
        return _count(scene, objects_line)
    if subtask == "count_attribute":
        return _count_attribute(scene, objects_line, rng)
    if subtask in ("colour_of", "shape_of"):
        return _attribute(scene, rng.choice(scene.objects), subtask, objects_line, rng)
    if subtask == "t2i":
        return _t2i(scene, objects_line)
    if subtask == "i2t":
        return _i2t(scene, objects_line, _captions_pool(seed, split, index, rng, n_candidates - 1), n_candidates)
    triples = _relation_pairs(scene)
    if not triples:
        return None
    triple = rng.choice(triples)
    if subtask == "relation_two_step":
        return _relation_two_step(scene, triple, objects_line, rng, n_candidates)
    if subtask == "relation_attribute":
        return _relation_attribute(scene, triple, objects_line, rng)
    return _refer(scene, triple, objects_line, rng, n_candidates)
