"""scripts/binding_errors.py: its per-query hits are the evaluation harness's, every query falls in
exactly one outcome, a wrong answer is "another object's" exactly when another object of the scene
has it, a relational query's wrong answer is "the anchor's" exactly when it names the object the
question names, and a reference that disagrees stops the script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "binding_errors.py"
PER_SUBTASK = 6
RELATIONAL = ("relation_two_step", "relation_attribute", "refer")


@pytest.fixture(scope="module")
def binding():
    return import_file(SCRIPT, "binding_errors_script")


@pytest.fixture(scope="module")
def reference(shipped_model, tmp_path_factory):
    """The harness's own evaluation of colour_of / shape_of on the same balanced validation queries."""
    from lame_tools.evaluate.harness import evaluate_shapes

    result = evaluate_shapes(shipped_model, split="validation", per_subtask=PER_SUBTASK,
                             tasks=["colour_of", "shape_of", "count", *RELATIONAL])
    path = tmp_path_factory.mktemp("binding") / "reference.json"
    path.write_text(json.dumps(result))
    return path, result


def test_hits_match_the_harness_and_outcomes_partition(binding, shipped_model, reference):
    _, result = reference
    for subtask in binding.ATTRIBUTE:
        rows = binding.classify(shipped_model, subtask, "validation", PER_SUBTASK, None)
        assert [float(r["outcome"] == "right") for r in rows] == result["tasks"][subtask]["per_query"]
        block = binding.summarize(rows)
        assert sum(block[o]["count"] for o in binding.OUTCOMES) == len(rows) == PER_SUBTASK
        assert sum(b["n"] for b in block["by_objects"].values()) == len(rows)
        for row in rows:
            assert (row["outcome"] == "right") == (row["top"] == row["answer"])
        # a one-object scene cannot give a binding error, and has no nearest other object
        assert not any(r["outcome"] == "another_object" and r["objects"] == 1 for r in rows)
        assert all((r["nearest"] is None) == (r["objects"] == 1) for r in rows)
        assert sum(b["n"] for b in block["by_nearest"].values()) == sum(r["objects"] > 1 for r in rows)


def test_count_hits_match_the_harness_and_the_head_counts_objects(binding, shipped_model, reference):
    _, result = reference
    rows = binding.classify_count(shipped_model, "validation", PER_SUBTASK, None)
    assert [float(r["outcome"] == "right") for r in rows] == result["tasks"]["count"]["per_query"]
    block = binding.summarize_count(rows)
    assert sum(c["n"] for c in block["confusion"]) == len(rows) == PER_SUBTASK
    assert sum(c["n"] for c in block["confusion"] if c["answer"] == c["top"]) == block["right"]["count"]
    # the head's count is of the cells it gives a shape (not "none"): near the true count, not 16 - it
    assert all(0 <= r["head_count"] <= 16 for r in rows)
    assert sum(abs(r["head_count"] - r["objects"]) <= 1 for r in rows) >= PER_SUBTASK - 1
    assert sum((block[k] or {"n": 0})["n"] for k in ("right_where_head_right", "right_where_head_wrong")) == len(rows)


def test_relational_hits_match_the_harness_and_the_anchor_is_the_named_object(binding, shipped_model, reference):
    from lame_tools.data.shapes import balanced_examples
    from lame_tools.data.tasks import relational_answer

    _, result = reference
    assert set(binding.RELATIONAL) == set(RELATIONAL)
    for subtask in RELATIONAL:
        rows = binding.classify_relation(shipped_model, subtask, "validation", PER_SUBTASK, None)
        assert [float(r["outcome"] == "right") for r in rows] == result["tasks"][subtask]["per_query"]
        block = binding.summarize(rows, binding.RELATION_OUTCOMES)
        assert sum(block[o]["count"] for o in binding.RELATION_OUTCOMES) == len(rows) == PER_SUBTASK
        assert sum(b["n"] for b in block["by_relation"].values()) == len(rows)
        examples = [e for _, e in balanced_examples(0, "validation", PER_SUBTASK, subtasks=(subtask,))]
        for row, example in zip(rows, examples):
            assert row["relation"] == example.relation and row["answer"] == example.target_text
            anchor = relational_answer(subtask, example.anchor)
            assert example.anchor.name in example.query_text  # the object the question names
            if row["outcome"] != "right":
                assert (row["outcome"] == "anchor") == (row["top"] == anchor)
            if row["outcome"] == "another_object":
                assert row["top"] in {relational_answer(subtask, o) for o in example.scene.objects}


def test_relation_baselines_against_a_hand_computation(binding):
    from types import SimpleNamespace

    from lame_tools.data.scene import SceneObject

    anchor = SceneObject("square", "red", "small", 0.6, 0.5)
    left = SceneObject("circle", "blue", "small", 0.2, 0.5)
    right = SceneObject("diamond", "green", "small", 0.9, 0.5)
    same_cell = SceneObject("triangle", "green", "small", 0.55, 0.55)  # left of the anchor, in its cell
    scene = SimpleNamespace(objects=(anchor, left, right))
    asked = SimpleNamespace(scene=scene, anchor=anchor, relation="left", target_text="a blue circle")
    # naming one of the two others: 1/2; by cells only the blue circle's is left of the anchor's: 1
    assert binding.relation_baselines("relation_two_step", [asked]) == {"exclusion": 0.5, "cell_oracle": 1.0, "cells": 4}
    crowded = SimpleNamespace(scene=SimpleNamespace(objects=(anchor, same_cell, right)), anchor=anchor,
                              relation="left", target_text="a green triangle")
    # the triangle shares the anchor's cell, so no cell is left of it: all the others again, 1/2
    both = binding.relation_baselines("relation_two_step", [asked, crowded])
    assert both["exclusion"] == 0.5 and both["cell_oracle"] == 0.75
    # relation_attribute answers a colour: the diamond and the triangle are both green
    colour = SimpleNamespace(scene=SimpleNamespace(objects=(anchor, same_cell, right)), anchor=anchor,
                             relation="left", target_text="green")
    assert binding.relation_baselines("relation_attribute", [colour])["exclusion"] == 1.0


def test_nearest_other_is_the_closest_centre(binding):
    from lame_tools.data.scene import SceneObject

    answer = SceneObject("circle", "red", "small", 0.2, 0.2)
    near = SceneObject("square", "blue", "small", 0.5, 0.6)
    far = SceneObject("diamond", "green", "small", 0.9, 0.9)

    class Scene:
        objects = [answer, far, near]

    assert binding.nearest_other(Scene, answer) == pytest.approx(0.5)
    Scene.objects = [answer]
    assert binding.nearest_other(Scene, answer) is None


def test_another_objects_attribute_is_read_from_the_scene(binding, shipped_model):
    from lame_tools.data.shapes import balanced_examples

    rows = binding.classify(shipped_model, "colour_of", "validation", PER_SUBTASK, None)
    examples = [e for _, e in balanced_examples(0, "validation", PER_SUBTASK, subtasks=("colour_of",))]
    for row, example in zip(rows, examples):
        others = {o.colour for o in example.scene.objects if o is not example.answer_object}
        if row["outcome"] != "right":
            assert (row["outcome"] == "another_object") == (row["top"] in others)


def test_main_writes_the_report_and_a_disagreeing_reference_stops_it(binding, reference, tmp_path):
    path, result = reference
    out = tmp_path / "binding.json"
    model = str(ROOT / "assets" / "models" / "lame-shapes")
    args = [model, "--split", "validation", "--per-subtask", str(PER_SUBTASK), "--out", str(out)]
    assert binding.main([*args, "--reference", str(path)]) == 0
    report = json.loads(out.read_text())
    assert set(report["subtasks"]) == {"colour_of", "shape_of", "count"}
    assert report["subtasks"]["colour_of"]["right"]["share"] == pytest.approx(result["tasks"]["colour_of"]["hit@1"])
    flipped = json.loads(path.read_text())
    first = flipped["tasks"]["colour_of"]["per_query"]
    first[0] = 1.0 - first[0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(flipped))
    out.unlink()
    assert binding.main([*args, "--reference", str(bad)]) == 1
    assert not out.exists()
