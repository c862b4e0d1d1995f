"""scripts/ablation_table.py: its share of CoT's gain, recovered from a seed_compare margin, agrees with
CoT's gain computed straight from the recorded eval JSONs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
table = import_file(ROOT / "scripts" / "ablation_table.py", "ablation_table_script")
SEEDS = ROOT / "assets" / "results" / "seeds"
REASONING = ("relation_two_step", "relation_attribute", "count_attribute", "refer")


def _reasoning_hits(name: str) -> np.ndarray:
    result = json.loads((SEEDS / f"eval_balanced_{name}.json").read_text())
    return np.concatenate([result["tasks"][t]["per_query"] for t in REASONING])


def test_row_recovers_cots_gain_and_share():
    compare = json.loads((SEEDS / "compare_deep-lame-k16-readsrat-bind-mixed_vs_deep-disc-bind-mixed_vs_deep-cot.json").read_text())
    row = table.row("K = 16", compare, None, ["count_attribute"])
    one_pass = _reasoning_hits("see-deep-discriminative-bind-mixed")
    cot_gain = _reasoning_hits("see-deep-cot-bind-mixed").mean() - one_pass.mean()
    lame_gain = _reasoning_hits("see-deep-lame-k16-readsrat-bind-mixed").mean() - one_pass.mean()
    assert abs(row["cot_gain"] - cot_gain) < 1e-9
    assert abs(row["share_of_cot"] - lame_gain / cot_gain) < 1e-9
    line = table.markdown([{**row, "swap": "-", "mask": "-"}], ["count_attribute"]).splitlines()[-1]
    assert line.startswith("| K = 16 | 72.6 | +8.9 [") and "57%" in line
