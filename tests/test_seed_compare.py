"""scripts/seed_compare.py: per-query means over seeds, and the per-seed paired differences with their
t interval (seed i of A against seed i of B)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _app_server import import_file

from lame_tools.data.tasks import PERCEPTION_SUBTASKS, REASONING_SUBTASKS
from lame_tools.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "seed_compare.py"
N = 40  # queries per subtask


@pytest.fixture(scope="module")
def seed_compare():
    """The script, imported as a module."""
    return import_file(SCRIPT, "seed_compare_script")


def result(hits: dict[str, int]) -> dict:
    """An eval JSON whose subtask `name` has its first hits[name] of N queries right (0/1 scores)."""
    tasks = {name: {"per_query": [1.0] * k + [0.0] * (N - k), "score": k / N, "meta_task": "vqa"}
             for name, k in hits.items()}
    return {"tasks": tasks, "overall": float(np.mean([t["score"] for t in tasks.values()])), "mode": "latent",
            "split": "test", "seed": 0, "model": "m"}


def subtasks(perception: int, reasoning: int) -> dict[str, int]:
    return {**{name: perception for name in PERCEPTION_SUBTASKS}, **{name: reasoning for name in REASONING_SUBTASKS}}


def test_seed_mean_averages_each_query_over_seeds(seed_compare):
    a, b = result(subtasks(10, 20)), result(subtasks(30, 0))
    mean = seed_compare.seed_mean([a, b])
    first = PERCEPTION_SUBTASKS[0]
    assert mean["tasks"][first]["per_query"][:10] == [1.0] * 10
    assert mean["tasks"][first]["per_query"][10:30] == [0.5] * 20
    assert mean["tasks"][first]["per_query"][30:] == [0.0] * 10


def test_seed_mean_refuses_other_queries(seed_compare):
    a = result(subtasks(10, 20))
    b = result(subtasks(10, 20))
    b["tasks"][REASONING_SUBTASKS[0]]["per_query"] = [1.0]  # another query set
    with pytest.raises(InputError, match="other queries"):
        seed_compare.seed_mean([a, b])


def test_over_seeds_pairs_seed_i_with_seed_i_and_gives_the_t_interval(seed_compare):
    # A's reasoning lead over B is 5, 10 and 15 of 40 queries (12.5, 25, 37.5 points), perception level
    a = [result(subtasks(20, 10 + d)) for d in (5, 10, 15)]
    b = [result(subtasks(20, 10)) for _ in range(3)]
    report = seed_compare.over_seeds(a, b)
    reasoning = report["reasoning"]
    assert reasoning["per_seed"] == pytest.approx([0.125, 0.25, 0.375])
    # by hand: mean 0.25, sd 0.125, se 0.125 / sqrt(3), t(0.975, 2 df) = 4.302653
    half = 4.302653 * 0.125 / np.sqrt(3)
    assert reasoning["t_interval"]["estimate"] == pytest.approx(0.25)
    assert reasoning["t_interval"]["low"] == pytest.approx(0.25 - half, abs=1e-5)
    assert reasoning["t_interval"]["high"] == pytest.approx(0.25 + half, abs=1e-5)
    assert report["perception"]["per_seed"] == pytest.approx([0.0, 0.0, 0.0])
    assert set(report) == {"perception", "reasoning", "overall"}


def test_the_command_writes_the_per_seed_block_only_for_paired_seeds(tmp_path):
    paths = {}
    for side, lead in (("a", (2, 4)), ("b", (0, 0))):
        for i, d in enumerate(lead):
            paths[side, i] = tmp_path / f"{side}{i}.json"
            paths[side, i].write_text(json.dumps(result(subtasks(20, 10 + d))))
    out = tmp_path / "compare.json"
    command = [sys.executable, str(SCRIPT), "--a", str(paths["a", 0]), str(paths["a", 1]),
               "--b", str(paths["b", 0]), str(paths["b", 1]), "--out", str(out)]
    printed = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    report = json.loads(out.read_text())
    assert report["over_seeds"]["reasoning"]["per_seed"] == pytest.approx([0.05, 0.1])
    assert "reasoning per seed (A_i - B_i): +5.0, +10.0" in printed
    unpaired = [sys.executable, str(SCRIPT), "--a", str(paths["a", 0]), str(paths["a", 1]),
                "--b", str(paths["b", 0]), "--out", str(out)]
    subprocess.run(unpaired, check=True, capture_output=True, text=True, cwd=ROOT)
    assert "over_seeds" not in json.loads(out.read_text())


def test_gain_share_tests_a_against_half_of_cs_gain(seed_compare):
    # over B (reasoning 10 of 40 in each seed): A gains 4 and 8 queries, C gains 8 and 12
    b = [result(subtasks(20, 10)) for _ in range(2)]
    a = [result(subtasks(20, 10 + d)) for d in (4, 8)]
    c = [result(subtasks(20, 10 + d)) for d in (8, 12)]
    gains = seed_compare.gain_share(seed_compare.over_seeds(a, b), seed_compare.over_seeds(c, b), share=0.5)
    reasoning = gains["reasoning"]
    assert reasoning["gain_a"] == pytest.approx([0.1, 0.2])
    assert reasoning["gain_c"] == pytest.approx([0.2, 0.3])
    assert reasoning["ratio_of_means"] == pytest.approx(0.15 / 0.25)
    # by hand: margins 0.1 - 0.1 = 0.0 and 0.2 - 0.15 = 0.05; mean 0.025, sd 0.0353553,
    # se 0.025, t(0.975, 1 df) = 12.7062
    assert reasoning["margin_per_seed"] == pytest.approx([0.0, 0.05])
    ci = reasoning["margin_t_interval"]
    assert ci["estimate"] == pytest.approx(0.025)
    assert ci["low"] == pytest.approx(0.025 - 12.7062 * 0.025, abs=1e-4)
    assert ci["high"] == pytest.approx(0.025 + 12.7062 * 0.025, abs=1e-4)


def test_margin_by_queries_is_a_minus_b_moved_share_of_the_way_to_c(seed_compare):
    # one seed each; reasoning: B gets 10 of 40, C 20, A 17, so A - B - 0.5 x (C - B) = 7/40 - 5/40
    a, b, c = (seed_compare.seed_mean([result(subtasks(20, k))]) for k in (17, 10, 20))
    blended = seed_compare.blend(b, c, 0.5)
    row = blended["tasks"][REASONING_SUBTASKS[0]]["per_query"]
    assert row == [1.0] * 10 + [0.5] * 10 + [0.0] * 20
    margin = seed_compare.margin_by_queries(a, b, c, 0.5)
    assert margin["share"] == 0.5
    assert margin["reasoning"]["estimate"] == pytest.approx(0.05)
    assert margin["reasoning"]["low"] < 0.05 < margin["reasoning"]["high"]
    assert margin["perception"]["estimate"] == pytest.approx(0.0)
    # the whole gain (share 1): A against C itself
    assert seed_compare.margin_by_queries(a, b, c, 1.0)["reasoning"]["estimate"] == pytest.approx(-0.075)
    # per subtask too: each reasoning subtask has the pool's margin, each perception one 0
    assert margin["tasks"][REASONING_SUBTASKS[-1]]["estimate"] == pytest.approx(0.05)
    assert margin["tasks"][PERCEPTION_SUBTASKS[0]]["estimate"] == pytest.approx(0.0)


def test_share_by_task_says_where_the_share_comes_from(seed_compare):
    # B 10 of 40 on every reasoning subtask; C 20 on each; A 20 on the first, 10 on the rest, 6 on the last
    reasoning = list(REASONING_SUBTASKS)

    def hits(first: int, rest: int, last: int) -> dict[str, int]:
        return {**subtasks(20, rest), reasoning[0]: first, reasoning[-1]: last}

    a, b, c = (seed_compare.seed_mean([result(h)]) for h in (hits(20, 10, 6), hits(10, 10, 10), hits(20, 20, 20)))
    rows = seed_compare.share_by_task(a, b, c)
    assert rows[reasoning[0]] == pytest.approx({"gain_a": 0.25, "gain_c": 0.25, "share": 1.0})
    assert rows[reasoning[-1]] == pytest.approx({"gain_a": -0.1, "gain_c": 0.25, "share": -0.4})
    # C gains nothing on perception: no share
    assert rows[PERCEPTION_SUBTASKS[0]] == {"gain_a": 0.0, "gain_c": 0.0, "share": None}


def test_the_command_gives_the_margin_by_queries_for_one_seed(tmp_path):
    paths = {}
    for side, k in (("a", 17), ("b", 10), ("c", 20)):
        paths[side] = tmp_path / f"{side}.json"
        paths[side].write_text(json.dumps(result(subtasks(20, k))))
    out = tmp_path / "compare.json"
    command = [sys.executable, str(SCRIPT), "--a", str(paths["a"]), "--b", str(paths["b"]), "--c", str(paths["c"]),
               "--out", str(out)]
    printed = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    report = json.loads(out.read_text())
    assert report["gain_share_by_queries"]["reasoning"]["estimate"] == pytest.approx(0.05)
    assert "gain_share" not in report and "over_seeds" not in report
    assert "reasoning: A-B minus 0.5 x (C-B) on the seed means, by queries +5.0" in printed
    name = REASONING_SUBTASKS[0]
    assert report["share_by_task"][name]["share"] == pytest.approx(0.7)
    assert f"{name}: A +17.5, C +25.0 over B (70% of C's gain); A-B minus 0.5 x (C-B) +5.0 [" in printed


def test_the_command_refuses_a_c_of_other_seed_count(tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(result(subtasks(20, 10 + i))))
    command = [sys.executable, str(SCRIPT), "--a", str(paths[0]), str(paths[1]), "--b", str(paths[2]),
               str(paths[3]), "--c", str(paths[4])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0
    assert "--c needs as many seeds as --a and --b" in done.stderr
    assert "Traceback" not in done.stderr


def labelled(hits: dict[str, int], held_out: int = 10) -> dict:
    """`result(hits)` whose shape_of queries carry group labels: the first `held_out` are about a
    held-out colour-shape pair, the rest about a seen one (as the harness writes them)."""
    out = result(hits)
    out["tasks"]["shape_of"]["per_query_group"] = ["held_out"] * held_out + ["seen"] * (N - held_out)
    return out


def test_over_seeds_splits_a_labelled_task_by_group_even_when_b_has_no_labels(seed_compare):
    # A gets shape_of queries 0..k-1 right, B (written before labels were stored) 0..4: with 10
    # held-out queries first, A - B on held-out is (min(k, 10) - 5) / 10, on seen max(k - 10, 0) / 30
    a = [labelled(subtasks(k, 10)) for k in (10, 15, 25)]
    b = [result(subtasks(5, 10)) for _ in range(3)]
    report = seed_compare.over_seeds(a, b)
    assert report["shape_of/held_out"]["per_seed"] == pytest.approx([0.5, 0.5, 0.5])
    assert report["shape_of/seen"]["per_seed"] == pytest.approx([0.0, 5 / 30, 15 / 30])
    assert "colour_of/held_out" not in report  # no result labels colour_of here
    mean = seed_compare.seed_mean(a)
    assert mean["tasks"]["shape_of"]["per_query_group"] == a[0]["tasks"]["shape_of"]["per_query_group"]


def test_labels_that_disagree_across_results_are_refused(seed_compare):
    a, b = labelled(subtasks(10, 10), held_out=10), labelled(subtasks(10, 10), held_out=12)
    with pytest.raises(InputError, match="groups its queries differently"):
        seed_compare.over_seeds([a], [b])
