"""scripts/latent_readout.py on the shipped LaME: each row's read-out is the decoder's reading of that
query (checked against `readout_items` on the same example), `right` and the pooled shares follow from
the rows, Hit@1 comes from the reference eval JSON in its query order; a model without a decoder and
an unknown subtask get one sentence and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "latent_readout.py"
REFERENCE = ROOT / "assets" / "results" / "eval_balanced_lame-shapes_latent.json"
SUBTASKS = ["count", "colour_of", "relation_two_step", "i2t"]


@pytest.fixture(scope="module")
def script():
    return import_file(SCRIPT, "latent_readout_script")


@pytest.fixture(scope="module")
def run(script, tmp_path_factory):
    out = tmp_path_factory.mktemp("readout") / "readout.json"
    code = script.main(["--model", str(ROOT / "assets" / "models" / "lame-shapes"), "--reference", str(REFERENCE),
                        "--per-subtask", "4", "--subtasks", *SUBTASKS, "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_rows_are_the_decoders_reading_of_each_query(script, run):
    from lame_tools import load_model
    from lame_tools.data.shapes import balanced_examples
    from lame_tools.probe import readout_items

    reference = json.loads(REFERENCE.read_text())
    model = load_model(ROOT / "assets" / "models" / "lame-shapes", device="cpu")
    size = len(reference["tasks"]["count"]["per_query"])
    examples = [e for _, e in balanced_examples(reference["seed"], reference["split"], size, tuple(SUBTASKS))]
    assert sorted(run["queries"]) == sorted(SUBTASKS)
    for subtask, rows in run["queries"].items():
        chosen = [e for e in examples if e.subtask == subtask][:4]
        assert [r["target"] for r in rows] == [e.target_text for e in chosen]
        assert [r["readout"] for r in rows] == readout_items(model, [e.query_item() for e in chosen]).texts
        assert [r["hit"] for r in rows] == [bool(h) for h in reference["tasks"][subtask]["per_query"][:4]]
        assert [r["right"] for r in rows] == [script.normalize(r["readout"]) == script.normalize(r["target"])
                                              for r in rows]


def test_shares_follow_from_the_rows(run):
    from lame_tools.data.shapes import REASONING_SUBTASKS

    for subtask, rows in run["queries"].items():
        block = run["subtasks"][subtask]
        assert block["readout"]["n"] == block["hit"]["n"] == 4
        assert block["readout"]["share"] == pytest.approx(sum(r["right"] for r in rows) / 4)
        split = [block[k]["n"] if block[k] else 0 for k in ("hit_if_right", "hit_if_wrong")]
        assert sum(split) == 4
        if block["hit_if_right"]:
            right = [r["hit"] for r in rows if r["right"]]
            assert block["hit_if_right"]["share"] == pytest.approx(sum(right) / len(right))
    reasoning = [r for s in run["queries"] if s in REASONING_SUBTASKS for r in run["queries"][s]]
    assert run["pools"]["reasoning"]["readout"]["n"] == len(reasoning) == 4
    assert run["pools"]["overall"]["hit"]["n"] == 16
    low, high = run["pools"]["overall"]["readout"]["interval"]
    assert low <= run["pools"]["overall"]["readout"]["share"] <= high


def test_normalize_spaces_punctuation_and_case(script):
    assert script.normalize("A red circle, a Blue square.") == "a red circle , a blue square ."
    assert script.normalize("a red circle , a blue square .") == "a red circle , a blue square ."


def test_bad_input_gets_one_sentence(script, tmp_path, capsys):
    out = tmp_path / "x.json"
    code = script.main(["--model", str(ROOT / "assets" / "models" / "discriminative-shapes"),
                        "--reference", str(REFERENCE), "--out", str(out)])
    assert code == 2 and "no latent decoder" in capsys.readouterr().err and not out.exists()
    code = script.main(["--model", str(ROOT / "assets" / "models" / "lame-shapes"), "--reference", str(REFERENCE),
                        "--subtasks", "nonsense", "--out", str(out)])
    assert code == 2 and "no subtask 'nonsense'" in capsys.readouterr().err and not out.exists()


def test_rationale_target_scores_the_answer_step(script, tmp_path):
    from lame_tools.data.shapes import balanced_examples
    from lame_tools.evaluate.rationales import score_rationale

    out = tmp_path / "rationale.json"
    assert script.main(["--model", str(ROOT / "assets" / "models" / "lame-shapes"), "--reference", str(REFERENCE),
                        "--per-subtask", "3", "--subtasks", "relation_two_step", "--target", "rationale",
                        "--max-new-tokens", "8", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    reference = json.loads(REFERENCE.read_text())
    size = len(reference["tasks"]["count"]["per_query"])
    chosen = [e for _, e in balanced_examples(reference["seed"], reference["split"], size, ("relation_two_step",))][:3]
    rows = report["queries"]["relation_two_step"]
    scores = [score_rationale(r["readout"], e) for r, e in zip(rows, chosen)]
    assert report["target"] == "rationale"
    assert [r["right"] for r in rows] == [s["answer"] == 1.0 for s in scores]
    fields = report["subtasks"]["relation_two_step"]["fields"]
    assert fields["anchor"]["mean"] == pytest.approx(sum(s["anchor"] for s in scores) / 3)
    assert all(len(r["readout"].split()) <= 8 for r in rows)


def test_relation_reading_by_hand(script):
    reading = script.relation_reading(["left", "left", "above", "right"], ["right", "left", "below", None])
    assert reading["confusion"] == {"above": {"below": 1}, "left": {"left": 1, "right": 1}, "right": {"None": 1}}
    assert (reading["axis"]["count"], reading["axis"]["n"]) == (3, 4)
    assert (reading["direction_if_axis"]["count"], reading["direction_if_axis"]["n"]) == (1, 3)
    assert script.read_relation("objects : red square . find the red square . then look left : nothing .") == "left"
    assert script.read_relation("objects : red square . answer : red .") is None


def test_relational_rows_carry_the_true_and_the_read_relation(script, tmp_path):
    from collections import Counter

    from lame_tools.data.shapes import balanced_examples
    from lame_tools.evaluate.rationales import parse_rationale

    out = tmp_path / "relations.json"
    assert script.main(["--model", str(ROOT / "assets" / "models" / "lame-shapes"), "--reference", str(REFERENCE),
                        "--per-subtask", "12", "--subtasks", "refer", "count", "--target", "rationale",
                        "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    reference = json.loads(REFERENCE.read_text())
    size = len(reference["tasks"]["count"]["per_query"])
    chosen = [e for _, e in balanced_examples(reference["seed"], reference["split"], size, ("refer",))][:12]
    rows = report["queries"]["refer"]
    assert [r["relation"] for r in rows] == [e.relation for e in chosen]
    for r in rows:
        look = parse_rationale(r["readout"]).first("look")
        assert r["read_relation"] == (look.head if look else None)
    reading = report["subtasks"]["refer"]["relation_reading"]
    assert Counter({(t, read): n for t, row in reading["confusion"].items() for read, n in row.items()}) == Counter(
        (r["relation"], str(r["read_relation"])) for r in rows)
    on_axis = [r for r in rows if script.AXES.get(str(r["read_relation"])) == script.AXES[r["relation"]]]
    assert reading["axis"]["count"] == reading["direction_if_axis"]["n"] == len(on_axis)
    assert reading["direction_if_axis"]["count"] == sum(r["read_relation"] == r["relation"] for r in on_axis)
    # a subtask without relations gets neither the columns nor the block
    assert "relation" not in report["queries"]["count"][0] and "relation_reading" not in report["subtasks"]["count"]
