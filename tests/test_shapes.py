from __future__ import annotations

import json

from lame_tools.backbone import build_tokenizer
from lame_tools.data.shapes import (
    HELD_OUT_PAIRS,
    TASK_KINDS,
    VOCABULARY,
    export_mmeb,
    make_example,
    make_scene,
    relation_holds,
    render,
)


def test_scenes_are_deterministic_and_rendered_identically():
    a, b = make_scene(0, "train", 5), make_scene(0, "train", 5)
    assert a == b
    assert render(a).tobytes() == render(b).tobytes()
    assert make_scene(1, "train", 5) != a


def test_held_out_compositions_only_in_test():
    for i in range(300):
        train_pairs = {(o.colour, o.shape) for o in make_scene(0, "train", i).objects}
        assert not train_pairs & HELD_OUT_PAIRS
        val_pairs = {(o.colour, o.shape) for o in make_scene(0, "validation", i).objects}
        assert not val_pairs & HELD_OUT_PAIRS
    for i in range(100):
        test_pairs = {(o.colour, o.shape) for o in make_scene(0, "test", i).objects}
        assert test_pairs & HELD_OUT_PAIRS
        # validation_pairs is drawn like test, from scenes of its own
        assert {(o.colour, o.shape) for o in make_scene(0, "validation_pairs", i).objects} & HELD_OUT_PAIRS
        assert make_scene(0, "validation_pairs", i) != make_scene(0, "test", i)


def test_validation_pairs_balanced_split_groups_held_out_and_seen_answers():
    from lame_tools.data.shapes import BALANCED_SIZES, mmeb_rows

    assert BALANCED_SIZES["validation_pairs"] == 200
    rows, images = mmeb_rows(0, "validation_pairs", per_subtask=60)
    test_rows, _ = mmeb_rows(0, "test", per_subtask=60)
    for subtask in ("colour_of", "shape_of"):
        flags = [row["held_out"] for row in rows[subtask]]
        assert 0 < sum(flags) < len(flags)  # both groups present, so selection can read each
        assert {json.dumps(r["scene"]) for r in rows[subtask]}.isdisjoint(
            {json.dumps(r["scene"]) for r in test_rows[subtask]}
        )
    assert all(p.startswith("images/validation_pairs_") for p, _ in images)


def test_every_task_kind_appears_with_rationale_and_positive_first():
    kinds = set()
    for i in range(80):
        ex = make_example(0, "train", i)
        kinds.add(ex.task)
        assert ex.rationale.endswith(".") and "answer :" in ex.rationale
        if not ex.target_has_image:
            assert ex.candidates[0] == ex.target_text
            assert len(set(ex.candidates)) == len(ex.candidates)
    assert kinds == set(TASK_KINDS)


def test_relational_answers_are_true_of_the_scene():
    checked = 0
    for i in range(200):
        ex = make_example(0, "train", i)
        if ex.subtask != "relation_two_step":
            continue
        # "what is left of the red circle ?" -> "a blue square"
        words = ex.query_text.split()
        relation = words[2]
        anchor_name = " ".join(words[-3:-1])
        anchor = next(o for o in ex.scene.objects if o.name == anchor_name)
        answer = next(o for o in ex.scene.objects if f"a {o.name}" == ex.target_text)
        assert relation_holds(answer, relation, anchor)
        others = [o for o in ex.scene.objects if o is not anchor and relation_holds(o, relation, anchor)]
        assert others == [answer]
        checked += 1
    assert checked > 10


def test_world_texts_stay_inside_the_tokenizer_vocabulary():
    tok = build_tokenizer(VOCABULARY)
    for i in range(200):
        ex = make_example(0, "train", i)
        for text in (ex.instruction, ex.query_text, ex.target_text, ex.rationale, *ex.candidates):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids, text


def test_export_mmeb_rows(tmp_path):
    out = export_mmeb(0, "test", tmp_path, limit=24)
    files = sorted(p.name for p in out.glob("*.jsonl"))
    assert files, "no JSONL written"
    for f in out.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            for key in ("qry_inst", "qry_text", "qry_img_path", "tgt_text", "tgt_img_path"):
                assert key in row
            assert len(row["tgt_text"]) == len(row["tgt_img_path"]) >= 2
            if row["qry_img_path"]:
                assert (out / row["qry_img_path"]).is_file()
            for p in row["tgt_img_path"]:
                assert not p or (out / p).is_file()


def test_relational_examples_carry_their_anchor_and_answer():
    from lame_tools.data.shapes import relation_holds as holds

    seen = set()
    for i in range(200):
        ex = make_example(0, "test", i)
        if ex.subtask in ("colour_of", "shape_of"):
            assert ex.anchor is None and ex.relation == "" and ex.answer_object in ex.scene.objects
            assert ex.target_text in (ex.answer_object.colour, ex.answer_object.shape)
            continue
        if ex.subtask not in ("relation_two_step", "refer"):
            assert ex.anchor is None and ex.answer_object is None and ex.relation == ""
            continue
        seen.add(ex.subtask)
        assert ex.anchor.name in ex.query_text
        assert ex.answer_object.name in ex.target_text
        assert holds(ex.answer_object, ex.relation, ex.anchor)
        others = [o for o in ex.scene.objects if o not in (ex.anchor, ex.answer_object)]
        assert not any(holds(o, ex.relation, ex.anchor) for o in others)  # the answer is unique
        assert ex.object_index(ex.anchor) != ex.object_index(ex.answer_object)
    assert seen == {"relation_two_step", "refer"}


def test_query_and_target_items_follow_the_example():
    for i in range(16):
        ex = make_example(0, "test", i)
        image = render(ex.scene)
        query = ex.query_item(image)
        assert (query.image is image) == ex.query_has_image
        assert query.text == (ex.query_text or None) and query.instruction == ex.instruction
        rendered = ex.query_item()
        if ex.query_has_image:
            assert rendered.image.tobytes() == image.tobytes()
        target = ex.target_item(image)
        if ex.target_has_image:
            assert target.image is image and target.text is None
        else:
            assert target.text == ex.target_text and target.image is None


def test_object_boxes_cover_the_drawn_objects():
    import numpy as np

    from lame_tools.data.shapes import BASE_RGB, object_boxes

    for i in range(30):
        scene = make_scene(0, "train", i)
        boxes = object_boxes(scene)
        assert len(boxes) == len(scene.objects)
        pixels = np.asarray(render(scene)).astype(int)
        h, w = pixels.shape[:2]
        colours = [o.colour for o in scene.objects]
        for obj, (x0, y0, x1, y1) in zip(scene.objects, boxes):
            assert 0 <= x0 < obj.x < x1 <= 1 and 0 <= y0 < obj.y < y1 <= 1
            if colours.count(obj.colour) > 1:
                continue
            colour = np.array(BASE_RGB[obj.colour])
            near = np.abs(pixels - colour).sum(-1) < 60  # the object's own colour (jittered, maybe JPEG)
            inside = near[int(y0 * h) : int(np.ceil(y1 * h)), int(x0 * w) : int(np.ceil(x1 * w))].sum()
            outside_box = near.sum() - inside
            assert inside > 0
            # the only object of its colour: that colour's pixels lie in its box
            assert outside_box <= 0.05 * near.sum() + 2


def test_file_names():
    from lame_tools.data.shapes import export_file_name, gallery_file_name

    assert gallery_file_name("test", 3, 7) == "test_s3_00007.png"
    assert export_file_name("validation", 12) == "images/validation_00012.png"


def test_balanced_split_is_balanced_deterministic_and_disjoint_from_training():
    from collections import Counter

    from lame_tools.data.shapes import SUBTASKS, balanced_examples, mmeb_rows

    pairs = balanced_examples(0, "test", per_subtask=40)
    assert Counter(ex.subtask for _, ex in pairs) == {s: 40 for s in SUBTASKS}
    assert len({index for index, _ in pairs}) == len(pairs)  # no two queries share a scene
    again = balanced_examples(0, "test", per_subtask=40)
    assert [(i, e.query_text, e.target_text, e.candidates) for i, e in pairs] == [
        (i, e.query_text, e.target_text, e.candidates) for i, e in again
    ]
    for _, ex in pairs:
        assert ex.target_text in ex.candidates or ex.target_has_image
        assert any((o.colour, o.shape) in HELD_OUT_PAIRS for o in ex.scene.objects)  # test scenes: held-out pairs
    rows, images = mmeb_rows(0, "validation", per_subtask=10)
    assert {k: len(v) for k, v in rows.items()} == {s: 10 for s in SUBTASKS}
    assert len(images) == len({p for p, _ in images}) == 10 * len(SUBTASKS)
    scene_of = {path: scene.to_json() for path, scene in images}
    for row in rows["t2i"]:
        assert len(set(row["tgt_img_path"])) == 16 and set(row["tgt_img_path"]) <= set(scene_of)
        assert scene_of[row["tgt_img_path"][0]] == row["scene"]  # the positive is the caption's own scene
    assert all(row["held_out"] is False for r in rows.values() for row in r)  # validation has no held-out pairs


def test_reasoning_subtasks_answer_from_the_graph():
    from lame_tools.data.shapes import make_subtask_example

    tokenizer = build_tokenizer(VOCABULARY)
    unk = tokenizer.unk_token_id
    for i in range(60):
        ex = make_subtask_example(0, "train", i, "relation_attribute")
        if ex is not None:
            assert ex.target_text == ex.answer_object.colour and relation_holds(ex.answer_object, ex.relation, ex.anchor)
            assert ex.target_text in ex.candidates and len(ex.candidates) == 5
        counted = make_subtask_example(0, "train", i, "count_attribute")
        colour = counted.query_text.split()[2]
        n = sum(1 for o in counted.scene.objects if o.colour == colour)
        assert counted.target_text == ("zero", "one", "two", "three", "four")[n]
        for e in (ex, counted):
            if e is not None:
                ids = tokenizer(f"{e.query_text} {e.rationale} {e.target_text}")["input_ids"]
                assert unk not in ids
