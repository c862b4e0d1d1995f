"""scripts/binding_attention.py: the named object's cell is the one that holds its centre, the top
rate and share are what a hand count gives for each probed token, and a reference of another size
is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "binding_attention.py"


@pytest.fixture(scope="module")
def script():
    return import_file(SCRIPT, "binding_attention_script")


class _Obj:
    def __init__(self, x, y):
        self.x, self.y = x, y


def test_centre_cell_and_object_attention(script):
    assert script.centre_cell(_Obj(0.1, 0.9), (3, 4)) == (2, 0)
    assert script.centre_cell(_Obj(1.0, 1.0), (3, 4)) == (2, 3)  # the edge stays inside the grid
    a, b = _Obj(0.1, 0.1), _Obj(0.9, 0.6)

    class Scene:
        objects = [a, b]

    attention = np.zeros((2, 3, 2, 3, 4))  # layer, head, [reason, EMBED], grid
    attention[:, :, -1, 0, 0] = 0.2  # a's cell
    attention[:, :, -1, 1, 3] = 0.5  # b's cell
    attention[:, :, 0, 0, 0] = 0.9  # a reason token's row
    mass, named = script.object_attention(attention, Scene, b)
    assert named == 1 and mass.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(mass[0, 0, -1], [0.2, 0.5])  # [EMBED]
    np.testing.assert_allclose(mass[0, 0, 0], [0.9, 0.0])  # the reason token


def test_summarize_counts_by_hand(script):
    rows = []
    # three 2-object queries, one head, [EMBED] and a reason token that always finds the named object;
    # [EMBED] puts the most on it in queries 0 and 2
    for index, (mass, named) in enumerate((([0.1, 0.3], 1), ([0.4, 0.2], 1), ([0.6, 0.2], 0))):
        reason = [0.0, 0.0]
        reason[named] = 1.0
        rows.append({"index": index, "objects": 2, "mass": np.array([[[reason, mass]]]), "named": named})
    rows.append({"index": 3, "objects": 1, "mass": np.array([[[[1.0], [1.0]]]]), "named": 0})  # left out
    rows[0]["held_out"] = True
    block = script.summarize(rows, [1.0, 0.0, 1.0, 1.0], ["[REASON_0]", "[EMBED]"])
    assert block["heads"][1]["held_out"]["top"]["share"] == 1.0 and block["heads"][1]["seen"]["top"]["share"] == 0.5
    assert block["queries"] == 3 and block["chance_top"] == pytest.approx(0.5)
    reason, embed = block["heads"]
    assert embed["token"] == "[EMBED]" and embed["all"]["top"]["share"] == pytest.approx(2 / 3)
    assert embed["all"]["share"] == pytest.approx(np.mean([0.75, 1 / 3, 0.75]))
    assert embed["right"]["top"]["share"] == 1.0 and embed["wrong"]["top"]["share"] == 0.0
    assert block["best"] is embed and block["best_any"] is reason and reason["all"]["share"] == 1.0


def test_main_reports_the_shipped_model_and_refuses_a_reference_of_another_size(script, tmp_path):
    out = tmp_path / "attention.json"
    model = str(ROOT / "assets" / "models" / "discriminative-shapes")
    args = [model, "--split", "validation", "--per-subtask", "6", "--out", str(out)]
    assert script.main(args) == 0
    report = json.loads(out.read_text())
    block = report["subtasks"]["colour_of"]
    assert 0 < block["queries"] <= 6 and block["best"]["token"] == "[EMBED]"
    # every layer of the shipped backbone (6 since 2026-12-07), 4 heads; [EMBED] and the question's naming word
    text = json.loads((Path(model) / "lame_config.json").read_text())["backbone"]["text_config"]
    assert len(block["heads"]) == text["num_hidden_layers"] * text["num_attention_heads"] * 2
    assert {e["token"] for e in block["heads"]} == {"[EMBED]", "<word>"}
    held = [e for e in block["heads"] if "held_out" in e]
    assert all(e["held_out"]["top"]["n"] + e["seen"]["top"]["n"] == block["queries"] for e in held)
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({"tasks": {s: {"per_query": [1.0] * 5} for s in ("colour_of", "shape_of")}}))
    out.unlink()
    assert script.main([*args, "--reference", str(reference)]) == 1
    assert not out.exists()
