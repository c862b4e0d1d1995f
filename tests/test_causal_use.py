"""scripts/causal_use.py: the JSON's numbers agree with its per-query Hit@1, the pooled reasoning block
pools exactly the reasoning subtasks, the cache is read back, the verdict logic on hand-made numbers,
and a K = 0 model gets one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _app_server import import_file

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "causal_use.py"


@pytest.fixture(scope="module")
def causal():
    """The script, imported as a module."""
    return import_file(SCRIPT, "causal_use_script")


@pytest.fixture(scope="module")
def small_run(causal, tmp_path_factory):
    """The script on the shipped model, 3 validation queries per subtask, zero and swap."""
    out = tmp_path_factory.mktemp("causal") / "causal.json"
    assert causal.main(["--split", "validation", "--per-subtask", "3", "--out", str(out)]) == 0
    return out, json.loads(out.read_text())


def test_json_numbers_match_the_per_query_hits(causal, small_run):
    from lame_tools.data.shapes import PERCEPTION_SUBTASKS, REASONING_SUBTASKS, SUBTASKS

    _, report = small_run
    assert report["subtasks"] == [s for s in SUBTASKS if s != "t2i"]  # every text-target subtask, no t2i
    assert report["reasoning_subtasks"] == list(REASONING_SUBTASKS)
    assert report["hows"] == ["zero", "swap"]
    for condition in report["conditions"].values():
        diffs = {}
        for subtask, rows in condition["per_query"].items():
            before, after = np.array(rows["hit1_before"]), np.array(rows["hit1_after"])
            assert len(before) == len(after) == len(rows["scene_index"]) == 3
            assert before.tolist() == [float(r == 1) for r in rows["rank_before"]]
            assert after.tolist() == [float(r == 1) for r in rows["rank_after"]]
            block = condition["subtasks"][subtask]
            assert block["hit1_before"] == pytest.approx(before.mean())
            assert block["hit1_after"] == pytest.approx(after.mean())
            assert block["difference"] == pytest.approx((after - before).mean())
            assert block["lost"] == int(((before == 1) & (after == 0)).sum())
            assert block["gained"] == int(((before == 0) & (after == 1)).sum())
            low, high = block["interval"]
            assert low <= block["difference"] + 1e-12 and block["difference"] <= high + 1e-12
            diffs[subtask] = (after - before).mean()
        # the pooled blocks pool exactly their subtasks; overall pools every text subtask
        for name, members in (("reasoning", REASONING_SUBTASKS), ("perception", PERCEPTION_SUBTASKS),
                              ("overall", report["subtasks"])):
            block = condition[name]
            assert block["subtasks"] == list(members)
            assert block["n"] == 3 * len(members)
            assert block["difference"] == pytest.approx(np.mean([diffs[s] for s in members]))
            assert block["lost"] == sum(condition["subtasks"][s]["lost"] for s in members)
        assert condition["verdict"]["drop_points"] == pytest.approx(-100 * condition["reasoning"]["difference"])
        assert condition["verdict"]["n"] == 12
    # the unablated pass is the same for both conditions, and equals the evaluation harness's
    zero, swap = report["conditions"]["zero"]["per_query"], report["conditions"]["swap"]["per_query"]
    assert all(zero[s]["hit1_before"] == swap[s]["hit1_before"] for s in zero)
    check = report["reference_check"]
    assert check["equal"] is True and check["differing"] == []
    assert "harness" in check["sentence"]
    table = causal.format_table(report)
    assert "**reasoning pooled**" in table and "- **swap**:" in table


def test_rerun_reads_the_cache(causal, small_run, monkeypatch):
    out, report = small_run

    def fail(*args, **kwargs):
        raise AssertionError("ablate ran although every condition is cached")

    monkeypatch.setattr(causal, "ablate", fail)
    again = out.with_name("again.json")
    assert causal.main(["--split", "validation", "--per-subtask", "3", "--reference", "none", "--out", str(again),
                        "--cache", str(out.with_name(out.name + ".cache"))]) == 0
    assert json.loads(again.read_text())["conditions"] == report["conditions"]


def _hits(n: int, lost: int = 0, gained: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One subtask's before / after 0/1 arrays: half right before, `lost` turn wrong, `gained` turn right."""
    before = np.zeros(n)
    before[: n // 2] = 1
    after = before.copy()
    after[:lost] = 0
    after[n // 2 : n // 2 + gained] = 1
    return before, after


def _subtasks(n: int, lost: int, gained: int = 0):
    from lame_tools.data.shapes import REASONING_SUBTASKS

    pairs = {s: _hits(n, lost, gained) for s in REASONING_SUBTASKS}
    return {s: b for s, (b, _) in pairs.items()}, {s: a for s, (_, a) in pairs.items()}


def test_verdict_on_hand_made_numbers(causal):
    used = causal.verdict(*_subtasks(100, lost=10), how="zero")
    assert used["used"] and used["drop_points"] == pytest.approx(10.0)
    assert used["interval_points"][1] < 0 and used["sentence"].startswith("the reason tokens are used")
    edge = causal.verdict(*_subtasks(300, lost=15))  # exactly 5 points
    assert edge["drop_points"] == pytest.approx(5.0) and edge["used"]
    small = causal.verdict(*_subtasks(300, lost=6))  # 2 points, every change one way: real, under the bar
    assert not small["used"] and small["excludes_zero"] and small["sentence"].startswith("a real but small effect")
    noisy = causal.verdict(*_subtasks(10, lost=3, gained=2))  # 10 points on 40 queries, changes both ways
    assert noisy["drop_points"] == pytest.approx(10.0)
    assert not noisy["used"] and not noisy["excludes_zero"] and noisy["sentence"].startswith("not shown")
    nothing = causal.verdict(*_subtasks(50, lost=0))
    assert not nothing["used"] and nothing["p_mcnemar"] == 1.0 and nothing["sentence"].startswith("no measurable")
    helps = causal.verdict(*_subtasks(100, lost=0, gained=10))
    assert not helps["used"] and helps["sentence"].startswith("the ablation helps")


def test_a_model_without_reason_tokens_gets_one_sentence(causal, tmp_path, capsys):
    from lame_tools import SHIPPED_MODELS

    out = tmp_path / "k0.json"
    folder = SHIPPED_MODELS["discriminative"]
    assert causal.main(["--model", str(folder), "--split", "validation", "--per-subtask", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no reason tokens (K = 0)" in err
    assert not out.exists()


def test_swap_task_takes_its_donors_from_the_next_text_subtask(causal, monkeypatch):
    from lame_tools import load_model

    real, seen = causal.ablate, []

    def recording(model, examples, tokens="each", how="zero", donors=None, **kwargs):
        seen.append((examples[0].subtask, how, [d.subtask for d in donors]))
        return real(model, examples, tokens=tokens, how=how, donors=donors, **kwargs)

    monkeypatch.setattr(causal, "ablate", recording)
    report = causal.run_causal_use(load_model(), "validation", 2, ["swap-task"], check_against_harness=False)
    order = report["subtasks"]
    assert [s for s, *_ in seen] == order
    for position, (_, how, donor_subtasks) in enumerate(seen):
        assert how == "swap"  # activation patching, with the other subtask's queries as donors
        assert donor_subtasks == [order[(position + 1) % len(order)]] * 2
    block = report["conditions"]["swap-task"]
    assert set(block["subtasks"]) == set(order) and "verdict" in block
    assert "swap-task" in report["donors"]
