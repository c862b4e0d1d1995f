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
