"""scripts/robustness.py: the default rendering and rendering styles of the balanced Shapes split,
ratios to the default, paired comparisons, resume per style, unknown styles, same scene graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _app_server import import_file

from lame_tools.errors import InputError

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "robustness.py"
STYLES = ["pastel", "canvas-224"]


@pytest.fixture(scope="module")
def robustness():
    """The script, imported as a module."""
    return import_file(SCRIPT, "robustness_script")


@pytest.fixture(scope="module")
def model_dir(micro_model, tmp_path_factory):
    """The micro model saved as a LaME folder."""
    folder = tmp_path_factory.mktemp("robustness") / "micro"
    micro_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(robustness, model_dir):
    """One small run (2 queries per subtask, two styles): (report, its path, the log lines)."""
    out = model_dir.parent / "robustness.json"
    logs: list[str] = []
    report = robustness.robustness(model_dir, out, STYLES, per_subtask=2, batch_size=16, log=logs.append)
    return report, out, logs


def test_report_has_every_style_with_ratios_to_the_default(run):
    report, out, _ = run
    assert json.loads(out.read_text()) == report
    assert list(report["styles"]) == STYLES
    default = report["default"]
    assert report["per_subtask"] == 2 and report["mode"] == "latent"
    for name, style in report["styles"].items():
        assert not style["reused"]
        assert set(style["tasks"]) == set(default["tasks"])
        assert style["ratio"] == pytest.approx(style["overall"] / default["overall"])
        assert style["within_5pct"] == (style["ratio"] >= 0.95)
        for task, t in style["tasks"].items():
            base = default["tasks"][task]["hit@1"]
            assert t["ratio"] == (pytest.approx(t["hit@1"] / base) if base else None)
            assert t["n"] == 2 and len(t["interval"]) == 2
            assert t["paired"]["difference"]["estimate"] == pytest.approx(t["hit@1"] - base)
        ratios = [t["ratio"] for t in style["tasks"].values() if t["ratio"] is not None]
        assert style["worst_subtask_ratio"] == min(ratios)
        assert style["paired"]["difference"]["estimate"] == pytest.approx(style["overall"] - default["overall"])
        assert style["paired"]["difference"]["n"] == 18
        assert style["render_style"]["name"] == name
        assert style["eval_seconds"] > 0


def test_the_styles_pose_the_same_scene_graphs(run):
    from lame_tools.evaluate.sources import benchmark_sources

    report, _, _ = run
    for style in report["styles"].values():
        assert style["inputs_sha256"] == report["default"]["inputs_sha256"]
        assert style["same_inputs_as_default"]
    # and directly: the same queries, candidates and answers, only the pixels differ
    plain = benchmark_sources("shapes", None, "test", 0, None, per_subtask=2)[0].load()
    styled = benchmark_sources("shapes", None, "test", 0, None, per_subtask=2, style="canvas-224")[0].load()
    assert plain.queries == styled.queries and plain.candidates == styled.candidates
    ref = next(q.images[0] for q in plain.queries if q.images)
    assert styled.load_image(ref).size == (224, 224) != plain.load_image(ref).size


def test_a_finished_style_is_not_recomputed(robustness, run, model_dir):
    report, out, _ = run
    work = Path(report["work"])
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in work.glob("*.json")}
    assert set(before) == {"default.json", "pastel.json", "canvas-224.json"}
    logs: list[str] = []
    again = robustness.robustness(model_dir, out, STYLES, per_subtask=2, batch_size=16, log=logs.append)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in work.glob("*.json")} == before
    assert all(s["reused"] and s["wall_seconds"] == 0.0 for s in again["styles"].values())
    assert sum("finished earlier" in line for line in logs) == 3
    assert {k: v for k, v in again["styles"]["pastel"].items() if k not in ("reused", "wall_seconds")} == {
        k: v for k, v in report["styles"]["pastel"].items() if k not in ("reused", "wall_seconds")
    }
    # another mode is another run: computed again, not read back
    other = robustness.evaluate_rendering(model_dir, "pastel", work / "other", "test", 0, 2, "discriminative",
                                          batch_size=16, log=lambda _: None)
    assert not other[1] and other[0]["mode"] == "discriminative"


def test_an_unknown_style_is_one_sentence(robustness, model_dir, tmp_path, capsys):
    with pytest.raises(InputError, match="Unknown rendering style 'sepia'"):
        robustness.parse_styles("pastel,sepia")
    code = robustness.main(["--model", str(model_dir), "--out", str(tmp_path / "r.json"), "--styles", "sepia"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: Unknown rendering style 'sepia'; known: pastel,")
    assert not (tmp_path / "r.json").exists()


def test_ratios_worst_subtask_and_flag_from_scores(robustness):
    def result(scores: dict[str, list[float]]) -> dict:
        tasks = {
            name: {"score": sum(v) / len(v), "n": len(v), "per_query": v, "interval": [0.0, 1.0], "meta_task": "vqa"}
            for name, v in scores.items()
        }
        return {"overall": sum(t["score"] for t in tasks.values()) / len(tasks), "tasks": tasks}

    default = result({"a": [1, 1, 1, 1], "b": [1, 1, 0, 0], "c": [0, 0, 0, 0]})
    styled = result({"a": [1, 1, 1, 1], "b": [1, 0, 0, 0], "c": [1, 0, 0, 0]})
    block = robustness.compare_style(styled, default)
    assert block["ratio"] == pytest.approx(0.5 / 0.5)
    assert block["tasks"]["a"]["ratio"] == pytest.approx(1.0) and block["tasks"]["b"]["ratio"] == pytest.approx(0.5)
    assert block["tasks"]["c"]["ratio"] is None  # the default scores 0: no ratio
    assert block["worst_subtask"] == "b" and block["within_5pct"]
    assert block["tasks"]["b"]["paired"]["a_only"] == 0 and block["tasks"]["b"]["paired"]["b_only"] == 1
    worse = robustness.compare_style(result({"a": [1, 1, 1, 0], "b": [1, 0, 0, 0], "c": [0, 0, 0, 0]}), default)
    assert worse["ratio"] == pytest.approx((0.75 + 0.25) / 3 / 0.5) and not worse["within_5pct"]


def test_markdown_table_has_a_row_per_rendering(robustness, run):
    report, _, _ = run
    table = robustness.format_markdown(report).splitlines()
    assert table[0].startswith("| style | overall | ratio | worst subtask ratio | within 5% |")
    assert [row.split("|")[1].strip() for row in table[2:]] == ["default", *STYLES]
