"""Field-level scores of CoT rationales (`lame_tools.evaluate.rationales`) and their place in a cot-mode
evaluation: gold rationales score 1 on every field, hand-made mistakes cost exactly their fields,
garbage never raises, and the eval JSON of a micro CoT model carries the block (only in cot mode)."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from lame_tools.data.shapes import SUBTASKS, VOCABULARY, make_subtask_example, render
from lame_tools.evaluate.rationales import (
    FIELDS,
    format_rationales,
    parse_rationale,
    score_rationale,
    score_task_rationales,
    shapes_examples,
    summarize_rationales,
)

OBJECT_FIELDS = {"well_formed", "objects_exact", "objects_precision", "objects_recall", "answer"}
APPLICABLE = {
    "count": OBJECT_FIELDS | {"count"},
    "count_attribute": OBJECT_FIELDS | {"filtered", "count"},
    "colour_of": OBJECT_FIELDS | {"anchor"},
    "shape_of": OBJECT_FIELDS | {"anchor"},
    "relation_two_step": OBJECT_FIELDS | {"anchor", "relation", "related"},
    "relation_attribute": OBJECT_FIELDS | {"anchor", "relation", "related"},
    "refer": OBJECT_FIELDS | {"anchor", "relation", "related"},
    "t2i": OBJECT_FIELDS,
    "i2t": OBJECT_FIELDS,
}


def _examples(subtask):
    """The examples of `subtask` about 60 scenes of each of three (world seed, split) pairs."""
    found = []
    for seed, split in ((0, "train"), (0, "test"), (7, "validation")):
        for index in range(60):
            example = make_subtask_example(seed, split, index, subtask)
            if example is not None:
                found.append(example)
    return found


def _applicable(scores):
    return {name for name, value in scores.items() if value is not None}


def _wrong(scores):
    return {name for name, value in scores.items() if value is not None and value != 1.0}


def _example(subtask):
    """The first example of `subtask` with at least two objects."""
    return next(e for e in _examples(subtask) if len(e.scene.objects) >= 2)


# ---- gold rationales -------------------------------------------------------------------------------


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_every_gold_rationale_scores_one_on_every_field(subtask):
    examples = _examples(subtask)
    assert len(examples) >= 60
    for example in examples:
        scores = score_rationale(example.rationale, example)
        assert list(scores) == list(FIELDS)
        assert _applicable(scores) == APPLICABLE[subtask], example.rationale
        assert _wrong(scores) == set(), (example.rationale, scores)
        parsed = parse_rationale(example.rationale)
        assert parsed.well_formed and parsed.steps[0].kind == "objects" and parsed.steps[-1].kind == "answer"
        assert parsed.steps[-1].value == (example.target_text or example.scene.caption())


def test_the_parser_reads_each_step_form():
    parsed = parse_rationale(
        "objects : red circle , blue square . find the red circle . then look left : blue square . "
        "find red : nothing . count : zero . answer : a blue square ."
    )
    kinds = [(s.kind, s.head, s.value, s.items) for s in parsed.steps]
    assert kinds == [
        ("objects", "", "red circle , blue square", ("red circle", "blue square")),
        ("anchor", "", "red circle", ()),
        ("look", "left", "blue square", ()),
        ("filter", "red", "nothing", ()),
        ("count", "", "zero", ()),
        ("answer", "", "a blue square", ()),
    ]
    assert parsed.terminated and parsed.well_formed
    # spacing and case as a person might write it parse the same
    assert parse_rationale("Objects: red circle,blue square. Answer: a red circle.").well_formed


# ---- hand-made mistakes ------------------------------------------------------------------------------


def _edit(example, old, new):
    assert old in example.rationale, (old, example.rationale)
    return example.rationale.replace(old, new, 1)


def _other_name(example, avoid=()):
    """An object name not in the scene (nor in `avoid`)."""
    names = {o.name for o in example.scene.objects} | set(avoid)
    return next(f"{c} {s}" for c in ("red", "green", "blue", "yellow", "purple")
                for s in ("circle", "square", "triangle", "diamond") if f"{c} {s}" not in names)


def test_relation_mistakes_cost_only_their_field():
    for subtask in ("relation_two_step", "relation_attribute", "refer"):
        example = _example(subtask)
        anchor, relation, answer = example.anchor.name, example.relation, example.answer_object.name
        other = {"left": "right", "right": "left", "above": "below", "below": "above"}[relation]
        cases = {
            "anchor": _edit(example, f"find the {anchor} .", f"find the {_other_name(example)} ."),
            "relation": _edit(example, f"then look {relation} :", f"then look {other} :"),
            "related": _edit(example, f": {answer} . answer", f": {_other_name(example)} . answer"),
            "answer": _edit(example, f"answer : {example.target_text} .", "answer : a red nothing ."),
        }
        for field, text in cases.items():
            assert _wrong(score_rationale(text, example)) == {field}, (subtask, field, text)
        dropped = _edit(example, f"find the {anchor} . ", "")
        assert _wrong(score_rationale(dropped, example)) == {"anchor"}  # a missing step is wrong, still well-formed


def test_count_filter_and_attribute_mistakes_cost_only_their_field():
    example = next(e for e in _examples("count_attribute") if ": nothing ." not in e.rationale)
    count = example.target_text
    other_count = "four" if count != "four" else "three"
    colour = example.rationale.split(" find ")[1].split(" :")[0]
    listed = example.rationale.split(f"find {colour} : ")[1].split(" .")[0]
    assert _wrong(score_rationale(_edit(example, f"count : {count} .", f"count : {other_count} ."), example)) == {"count"}
    assert _wrong(score_rationale(_edit(example, f": {listed} .", ": nothing ."), example)) == {"filtered"}
    assert _wrong(score_rationale(_edit(example, f"find {colour} :", "find blank :"), example)) == {"filtered"}
    reordered = " , ".join(reversed(listed.split(" , ")))
    assert _wrong(score_rationale(_edit(example, f": {listed} .", f": {reordered} ."), example)) == set()

    example = _example("colour_of")
    key = example.answer_object.shape
    assert _wrong(score_rationale(_edit(example, f"find the {key} .", "find the blob ."), example)) == {"anchor"}
    example = _example("count")
    text = _edit(example, f"count : {example.target_text} . answer", "count : many . answer")
    assert _wrong(score_rationale(text, example)) == {"count"}


def test_object_list_mistakes_give_precision_and_recall():
    example = _example("relation_two_step")
    names = [o.name for o in example.scene.left_to_right()]
    line = "objects : " + " , ".join(names) + " ."
    n = len(names)

    def with_objects(listed):
        return example.rationale.replace(line, "objects : " + " , ".join(listed) + " .", 1)

    scores = score_rationale(with_objects(names[1:]), example)  # one missing
    assert _wrong(scores) == {"objects_exact", "objects_recall"}
    assert scores["objects_precision"] == 1.0 and scores["objects_recall"] == pytest.approx((n - 1) / n)
    scores = score_rationale(with_objects([*names, _other_name(example)]), example)  # one extra
    assert _wrong(scores) == {"objects_exact", "objects_precision"}
    assert scores["objects_precision"] == pytest.approx(n / (n + 1)) and scores["objects_recall"] == 1.0
    scores = score_rationale(with_objects([*names, names[0]]), example)  # one repeated
    assert _wrong(scores) == {"objects_exact", "objects_precision"}
    assert _wrong(score_rationale(with_objects(names[::-1]), example)) == set()  # any order
    scores = score_rationale(example.rationale.replace(line + " ", "", 1), example)  # no objects step
    assert _wrong(scores) == {"well_formed", "objects_exact", "objects_precision", "objects_recall"}
    assert scores["objects_precision"] == 0.0 and scores["objects_recall"] == 0.0


def test_malformed_rationales_fail_well_formed_only():
    example = _example("relation_attribute")
    gold = example.rationale
    assert _wrong(score_rationale(gold[: -len(" .")], example)) == {"well_formed"}  # not terminated
    assert _wrong(score_rationale(gold + " count : two .", example)) == {"well_formed"}  # a step after the answer
    assert _wrong(score_rationale(gold + " answer : blue .", example)) == {"well_formed"}  # two answers
    assert _wrong(score_rationale(gold.replace(" . then", " . hmm . then", 1), example)) == {"well_formed"}
    no_answer = gold[: gold.index(" answer :")]
    assert _wrong(score_rationale(no_answer, example)) == {"well_formed", "answer"}
    cut = gold[: gold.index(" then look")] + " then look"  # cut off at the cap, mid-step
    assert _wrong(score_rationale(cut, example)) == {"well_formed", "relation", "related", "answer"}


def test_garbage_never_raises_and_scores_in_range():
    rng = random.Random(0)
    words = [*VOCABULARY[:200], ".", ",", ":", "", " ", "\n", "\t", "objects", "answer", "find", "the", "then",
             "look", "count", "nothing", "[EMBED]", "é", "\u2028", "\x00", "数", "🙂", "..", "::", ",,"]
    strings = ["", " ", ".", "....", ": : ,", "answer :", "answer : .", "objects : .", "find the", "then look :",
               "find : x .", "then look left :", "count :", "\x00" * 5, "a" * 10_000, ". " * 500]
    strings += [" ".join(rng.choice(words) for _ in range(rng.randrange(0, 60))) for _ in range(300)]
    strings += ["".join(rng.choice(words) for _ in range(rng.randrange(0, 30))) for _ in range(100)]
    strings += [None, 123, 4.5, b"objects : red circle .", ["answer"]]
    examples = [_example(s) for s in SUBTASKS]
    for text in strings:
        parse_rationale(text)
        for example in examples:
            scores = score_rationale(text, example)
            assert _applicable(scores) == APPLICABLE[example.subtask]
            assert all(0.0 <= v <= 1.0 for v in scores.values() if v is not None)
    assert score_rationale(None, examples[0])["well_formed"] == 0.0


# ---- summaries -----------------------------------------------------------------------------------


def test_task_columns_and_summary_block():
    from lame_tools.intervals import score_interval, wilson_interval

    count = [e for e in _examples("count")][:4]
    colour = [e for e in _examples("colour_of")][:3]
    texts = [count[0].rationale, count[1].rationale, "garbage", count[3].rationale.replace("count :", "count : x")]
    columns = score_task_rationales(texts, count)
    assert columns["texts"] == texts and set(columns["fields"]) == APPLICABLE["count"]
    assert columns["fields"]["count"] == [1.0, 1.0, 0.0, 0.0]
    other = score_task_rationales([e.rationale for e in colour], colour)
    with pytest.raises(ValueError):
        score_task_rationales(["x"], colour)
    block = summarize_rationales({"count": {"rationales": columns}, "colour_of": {"rationales": other}, "t2i": {}})
    assert set(block["tasks"]) == {"count", "colour_of"}
    assert block["overall"]["n"] == 7 and block["tasks"]["count"]["n"] == 4
    count_field = block["tasks"]["count"]["fields"]["count"]
    wilson = wilson_interval(2, 4)
    assert count_field == {"mean": 0.5, "interval": [wilson.low, wilson.high], "n": 4}
    assert "anchor" not in block["tasks"]["count"]["fields"] and block["overall"]["fields"]["anchor"]["n"] == 3
    assert block["overall"]["fields"]["well_formed"]["mean"] == pytest.approx(6 / 7)  # pooled over queries
    recall = [v for c in (columns, other) for v in c["fields"]["objects_recall"]]
    found = score_interval(recall)
    assert block["overall"]["fields"]["objects_recall"]["interval"] == [found.low, found.high]
    line = format_rationales(block)
    assert "\n" not in line and line.startswith("rationales (n=7): well-formed 85.7 | objects exact")
    assert "count 50.0" in line and "anchor 100.0" in line
    assert summarize_rationales({"count": {"score": 1.0}}) is None


# ---- in an evaluation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def micro_cot():
    """A random micro CoT model (K = 0, no decoder, cot by default) whose rationales stop at 6 tokens."""
    from lame_tools.model import LameModel

    model = LameModel.build_tiny("micro", num_reason_tokens=0, with_decoder=False, default_mode="cot",
                                 embed_dim=32, seed=0, vocabulary=VOCABULARY)
    model.config.cot_max_new_tokens = 6
    return model


def test_cot_encoding_keeps_encodes_numbers(micro_cot, scenes):
    examples, images = scenes
    inputs = [(images[i], examples[i].query_text or None, examples[i].instruction) for i in range(6)]
    inputs += [(None, "a red circle", "represent the text ."), (None, "two", "represent the text .")]
    images, texts, instructions = (list(column) for column in zip(*inputs))
    embedded, ids = micro_cot.encode(images=images, texts=texts, instruction=instructions, batch_size=3, mode="cot",
                                     return_rationales=True)
    reference = micro_cot.encode(images=images, texts=texts, instruction=instructions, batch_size=3, mode="cot")
    assert np.array_equal(embedded, reference) and embedded.dtype == reference.dtype
    assert len(ids) == len(inputs) and all(len(r) <= 6 for r in ids)


def test_rationales_leave_the_cot_scores_as_they_were(micro_cot):
    from lame_tools.evaluate import benchmark_sources, evaluate_task

    examples = shapes_examples(0, "validation", per_subtask=1)
    for source in benchmark_sources("shapes", None, "validation", per_subtask=1):
        task = source.load()
        plain = evaluate_task(micro_cot, task, "cot", batch_size=16)
        scored = evaluate_task(micro_cot, task, "cot", batch_size=16, examples=examples[source.name])
        rationales = scored.pop("rationales")
        assert scored == plain and "rationales" not in plain
        assert len(rationales["texts"]) == len(task.queries) and set(rationales["fields"]) == APPLICABLE[source.name]
        assert "rationales" not in evaluate_task(micro_cot, task, "discriminative", examples=examples[source.name])


def _image_key(image):
    return hashlib.sha256(image.convert("RGB").tobytes()).hexdigest()


def test_each_query_is_scored_against_its_own_example(micro_cot, monkeypatch):
    """Generation replaced by each query's gold rationale: every field then scores 1, so every
    rationale reached the example of its own query."""
    from lame_tools.evaluate import evaluate_shapes

    examples = shapes_examples(0, "validation", per_subtask=2)
    gold = {}
    for example in (e for group in examples.values() for e in group):
        image = _image_key(render(example.scene)) if example.query_has_image else None
        gold[(example.instruction, example.query_text or None, image)] = example.rationale
    tokenizer = micro_cot.processor.tokenizer

    def gold_rationales(items, *args, **kwargs):
        keys = [(it.instruction, it.text, _image_key(it.image) if it.image is not None else None) for it in items]
        return [tokenizer(gold[k], add_special_tokens=False)["input_ids"] if k in gold else [] for k in keys]

    monkeypatch.setattr(micro_cot, "generate_rationales", gold_rationales)
    result = evaluate_shapes(micro_cot, split="validation", per_subtask=2, batch_size=16)
    block = result["rationales"]
    assert block["overall"]["n"] == 2 * len(SUBTASKS) and set(block["tasks"]) == set(SUBTASKS)
    for name, task in block["tasks"].items():
        assert set(task["fields"]) == APPLICABLE[name]
        assert all(stats["mean"] == 1.0 for stats in task["fields"].values()), (name, task)
    assert result["tasks"]["count"]["rationales"]["texts"] == [e.rationale for e in examples["count"]]


def test_eval_json_has_the_block_in_cot_mode_only(micro_cot, tmp_path, capsys):
    from lame_tools.cli import main
    from lame_tools.evaluate import run_benchmark, task_file

    model_dir = tmp_path / "model"
    micro_cot.save_pretrained(model_dir)
    cot_out, plain_out = tmp_path / "cot.json", tmp_path / "plain.json"
    options = {"split": "validation", "per_subtask": 1, "batch_size": 16, "show_progress_bar": False}
    summary = run_benchmark(model_dir, "shapes", cot_out, log=lambda _: None, **options)  # the model's own mode
    stored = json.loads(cot_out.read_text())
    assert stored["mode"] == "cot" and stored["rationales"] == json.loads(json.dumps(summary["rationales"]))
    assert stored["rationales"]["overall"]["n"] == len(SUBTASKS) and set(stored["rationales"]["tasks"]) == set(SUBTASKS)
    for name, result in stored["tasks"].items():
        assert len(result["rationales"]["texts"]) == result["n"] == 1
        assert set(result["rationales"]["fields"]) == APPLICABLE[name]
    run_benchmark(model_dir, "shapes", plain_out, mode="discriminative", log=lambda _: None, **options)
    assert '"rationales"' not in plain_out.read_text()

    # a resumed run writes the same bytes; a task file from before rationales were scored is rerun
    first = cot_out.read_bytes()
    path = task_file(cot_out, "count")
    old = json.loads(path.read_text())
    del old["result"]["rationales"]
    path.write_text(json.dumps(old))
    logs = []
    run_benchmark(model_dir, "shapes", cot_out, log=logs.append, **options)
    assert cot_out.read_bytes() == first
    assert [line for line in logs if "skipped" not in line] and len(logs) == len(SUBTASKS)
    assert not any(line.startswith("count:") and "skipped" in line for line in logs)

    capsys.readouterr()
    args = ["eval", "--model", str(model_dir), "--split", "validation", "--per-subtask", "1", "--no-progress"]
    assert main([*args, "--mode", "cot", "--out", str(cot_out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("rationales")]
    assert len(lines) == 1 and lines[0].startswith(f"rationales (n={len(SUBTASKS)}): well-formed ")
    assert main([*args, "--mode", "discriminative", "--out", str(plain_out)]) == 0
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("rationales")]


@pytest.mark.slow
def test_two_processes_gather_the_rationales_one_process_writes(micro_cot, tmp_path):
    """Under torchrun with two gloo processes each embeds part of a task's inputs; the rationales are
    gathered back in order, so the cot JSON is the one process's, byte for byte."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    model_dir = tmp_path / "model"
    micro_cot.save_pretrained(model_dir)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(root))
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    # i2t with 6 queries embeds about 95 distinct inputs: two chunks of the harness, the image queries
    # (sorted after the text candidates) in the second one, which the second process embeds
    for prefix, name in (([sys.executable], "one"), (launch, "two")):
        args = ["-m", "lame_tools", "eval", "--model", str(model_dir), "--split", "validation", "--per-subtask", "6",
                "--tasks", "i2t", "refer", "--batch-size", "8", "--no-progress", "--out", str(tmp_path / f"{name}.json")]
        done = subprocess.run(prefix + args, cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["tasks"]["i2t"]["n_embedded"] > 64
    assert one["rationales"]["overall"]["n"] == 12 and len(one["tasks"]["i2t"]["rationales"]["texts"]) == 6
    assert (tmp_path / "two.json").read_bytes() == (tmp_path / "one.json").read_bytes()
