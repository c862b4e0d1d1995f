"""Metrics on hand-computed rankings (ties, missing qrels, duplicates), the harness on Shapes, and
resumption of the `eval` command after SIGKILL."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from lame_tools.data.formats import CandidateTask, CorpusTask, EmbedInput
from lame_tools.evaluate import (
    evaluate_shapes,
    evaluate_task,
    format_table,
    hit_at_k,
    metric,
    ndcg_at_k,
    recall_at_k,
    run_benchmark,
    sample_stats,
    summarize_tasks,
)
from lame_tools.ranking import top_k, top_k_pessimistic, top_k_rows

# ---- metrics by hand -------------------------------------------------------------------------------


def test_ndcg_linear_gain_by_hand():
    qrels = {"a": 2, "b": 1, "c": 0}
    ranking = ["x", "a", "b", "y"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranking, qrels, 5) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranking, qrels, 1) == 0.0
    assert ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1.0)
    # Linear, not exponential, gain: grade 3 counts 3x grade 1 (2^3-1 = 7x would be exponential).
    assert ndcg_at_k(["b", "a"], {"a": 3, "b": 1}, 1) == pytest.approx(1 / 3)


def test_recall_and_hit_by_hand():
    qrels = {"a": 1, "b": 1, "c": 1, "z": 0}
    ranking = ["z", "a", "q", "c", "b"]
    assert recall_at_k(ranking, qrels, 1) == 0.0
    assert recall_at_k(ranking, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranking, qrels, 4) == pytest.approx(2 / 3)
    assert hit_at_k(ranking, qrels, 1) == 0.0 and hit_at_k(ranking, qrels, 2) == 1.0
    assert metric("recall@5", ranking, qrels) == 1.0


def test_missing_or_negative_qrels_give_none():
    for fn in (hit_at_k, recall_at_k, ndcg_at_k):
        assert fn(["a", "b"], {}, 5) is None
        assert fn(["a", "b"], {"a": 0, "b": -1}, 5) is None
    # A relevant document that is not in the ranking at all still counts in recall's denominator.
    assert recall_at_k(["a"], {"a": 1, "ghost": 1}, 5) == 0.5


def test_duplicates_count_once_at_their_first_position():
    qrels = {"a": 1, "b": 1}
    # Without dedup, "a" twice would give DCG 1 + 1/log2(3) > IDCG-ish and recall 2/2.
    assert recall_at_k(["a", "a", "x"], qrels, 2) == 0.5
    assert ndcg_at_k(["a", "a", "b"], qrels, 2) == pytest.approx(1.0)  # dedup -> [a, b]
    assert hit_at_k(["x", "x", "a"], qrels, 2) == 1.0  # dedup -> [x, a]


def test_ties_are_pessimistic():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1], np.float32)
    gains = np.array([1, 0, 0, 2, 0], np.float64)
    # 0.9 first; then the three tied at 0.5 ordered by gain ascending (2, 0, 3), then position.
    assert top_k_pessimistic(scores, gains, 5).tolist() == [1, 2, 0, 3, 4]
    assert top_k_pessimistic(scores, gains, 2).tolist() == [1, 2]
    assert top_k_pessimistic(np.zeros(4), np.array([1.0, 0, 0, 0]), 1).tolist() == [1]


def test_batched_top_k_equals_the_row_by_row_rule():
    # Few distinct values, so most rows hold ties at the k-th place: the vectorised path and the
    # exact per-row path must give the same positions as a full (score desc, key asc, position) sort.
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(9, 30)).astype(np.float32)
    keys = rng.permutation(30)
    for k in (1, 4, 29, 30, 50):
        for ties in (None, keys):
            got = top_k_rows(scores, k, ties)
            secondary = np.zeros(30) if ties is None else ties
            expected = [np.lexsort((np.arange(30), secondary, -row))[:k].tolist() for row in scores]
            assert got.tolist() == expected, (k, ties is None)
            assert [top_k(row, k, ties).tolist() for row in scores] == expected
    assert top_k_rows(np.zeros((2, 0), np.float32), 3).shape == (2, 0)


def test_sample_stats_keys_and_values():
    stats = sample_stats([1.0, None, 3.0, 2.0])
    assert stats == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3}
    assert sample_stats([5.0]) == {"mean": 5.0, "std": 0.0, "min": 5.0, "max": 5.0, "n": 1}
    assert sample_stats([None]) is None and sample_stats([]) is None
    latency = sample_stats([10.0, 20.0, 30.0, 40.0, 50.0], percentiles=(50, 95), spread=False, suffix="_ms")
    assert list(latency) == ["p50_ms", "p95_ms", "mean_ms", "n"]
    assert latency["p50_ms"] == 30.0 and latency["p95_ms"] == pytest.approx(48.0) and latency["n"] == 5


class _ConstantModel:
    """Every input gets the same embedding: a collapsed model must score 0, not 1."""

    class config:  # noqa: N801 - mimics LameModel.config
        embed_dim = 4
        default_mode = "latent"

    def encode(self, images=None, texts=None, instruction=None, batch_size=32, mode=None):
        n = len(images if images is not None else texts)
        return np.tile(np.array([[1.0, 0, 0, 0]], np.float32), (n, 1))


def _image(_ref: str) -> Image.Image:
    return Image.new("RGB", (16, 16))


def test_constant_model_scores_zero_and_duplicate_positive_merges():
    q = EmbedInput("inst", "q")
    pos, neg = EmbedInput("", "pos"), EmbedInput("", "neg")
    task = CandidateTask("t", "vqa", "image", [q, q], [[pos, neg], [pos, pos]], _image)
    result = evaluate_task(_ConstantModel(), task)
    # Row 1: tie with a distinct negative -> miss. Row 2: the only "negative" is the positive itself
    # (merged), so the positive is alone -> hit.
    assert result["hit@1"] == 0.5 and result["n"] == 2 and result["n_embedded"] == 3


def test_corpus_task_counts_unjudged_queries():
    docs = [EmbedInput("", f"d{i}") for i in range(3)]
    task = CorpusTask(
        "c",
        "retrieval",
        "visdoc",
        ["q1", "q2"],
        [EmbedInput("", "q1"), EmbedInput("", "q2")],
        ["d0", "d1", "d2"],
        docs,
        {"q1": {"d2": 1}},
        _image,
        metric="ndcg@5",
    )
    result = evaluate_task(_ConstantModel(), task)
    # All scores tie: pessimistic order puts d2 (relevant) last, rank 3 -> 1/log2(4) = 0.5.
    assert result["ndcg@5"] == pytest.approx(0.5) and result["hit@1"] == 0.0 and result["recall@5"] == 1.0
    assert result["n"] == 1 and result["n_unjudged"] == 1 and result["score"] == result["ndcg@5"]


def test_summarize_groups_and_meta_means():
    tasks = {
        "a": {"score": 0.2, "meta_task": "classification", "group": "image", "metric": "hit@1", "n": 1},
        "b": {"score": 0.4, "meta_task": "classification", "group": "image", "metric": "hit@1", "n": 1},
        "c": {"score": 0.9, "meta_task": "retrieval", "group": "visdoc", "metric": "ndcg@5", "n": 1},
    }
    summary = summarize_tasks(tasks)
    assert summary["overall"] == pytest.approx(0.5)
    assert summary["meta_tasks"] == {"classification": pytest.approx(0.3), "retrieval": pytest.approx(0.9)}
    assert summary["groups"]["image"]["overall"] == pytest.approx(0.3)
    assert "visdoc:" in format_table({**summary, "tasks": tasks})


# ---- Shapes through the harness --------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_shapes_layout_and_determinism(micro_model):
    result = evaluate_shapes(micro_model, limit=16, batch_size=16)
    again = evaluate_shapes(micro_model, limit=16, batch_size=16)
    assert result == again
    assert set(result) >= {"overall", "tasks", "meta_tasks", "mode"}
    assert set(result["meta_tasks"]) <= {"classification", "vqa", "retrieval", "grounding"}
    for name, task in result["tasks"].items():
        assert 0.0 <= task["hit@1"] <= 1.0 and task["n"] >= 1, name
    assert result["overall"] == pytest.approx(np.mean([t["hit@1"] for t in result["tasks"].values()]))
    assert sum(t["n"] for t in result["tasks"].values()) == 16
    one = evaluate_shapes(micro_model, limit=16, tasks=["count"])
    assert list(one["tasks"]) == ["count"] and one["tasks"]["count"] == result["tasks"]["count"]


@pytest.mark.slow
def test_eval_resumes_after_sigkill_with_identical_json(micro_model, tmp_path):
    model_dir = tmp_path / "model"
    micro_model.save_pretrained(model_dir)
    killed_out, clean_out = tmp_path / "killed" / "results.json", tmp_path / "clean" / "results.json"
    args = ["--benchmark", "shapes", "--limit", "12", "--batch-size", "8", "--no-progress"]
    # A real SIGKILL, at a known point: the child kills itself when the third task starts.
    script = textwrap.dedent(
        f"""
        import os, signal
        import lame_tools.evaluate.harness as ev
        from lame_tools.cli import main
        calls = []
        original = ev.evaluate_task
        def evaluate_task(*a, **k):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*a, **k)
        ev.evaluate_task = evaluate_task
        main(["eval", "--model", {str(model_dir)!r}, "--out", {str(killed_out)!r}, *{args!r}])
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    child = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert not killed_out.exists()
    finished = sorted(p.name for p in (killed_out.parent / "results.json.tasks").glob("*.json"))
    assert len(finished) == 2

    logs: list[str] = []
    run_benchmark(model_dir, "shapes", killed_out, limit=12, batch_size=8, show_progress_bar=False, log=logs.append)
    assert sum("skipped" in line for line in logs) == 2
    run_benchmark(model_dir, "shapes", clean_out, limit=12, batch_size=8, show_progress_bar=False, log=lambda _: None)
    assert killed_out.read_bytes() == clean_out.read_bytes()
    summary = json.loads(clean_out.read_text())
    assert len(summary["tasks"]) >= 5 and summary["overall"] is not None

    # A different configuration (here: the mode) is not mistaken for finished work.
    logs.clear()
    run_benchmark(
        model_dir,
        "shapes",
        killed_out,
        tasks=["count"],
        limit=12,
        batch_size=8,
        mode="discriminative",
        show_progress_bar=False,
        log=logs.append,
    )
    assert len(logs) == 1 and "skipped" not in logs[0]


def test_adapters_run_through_the_same_harness(micro_model):
    # Baselines (UME-R1, VLM2Vec-V2) come as EmbeddingAdapters; a LaME model wrapped in one must
    # score exactly as the model itself in the same mode.
    from lame_tools.adapters import LameAdapter
    from lame_tools.data.formats import shapes_tasks

    task = next(s for s in shapes_tasks(0, "test", 12) if s.name == "count").load()
    direct = evaluate_task(micro_model, task, mode="discriminative", batch_size=8)
    wrapped = evaluate_task(LameAdapter(micro_model, "discriminative"), task, batch_size=8)
    assert wrapped == direct


def test_eval_throughput_reports_the_scores_of_the_timed_run(micro_model, tmp_path):
    from lame_tools.timing.throughput import bench_eval_throughput, format_throughput_table

    model_dir = tmp_path / "model"
    micro_model.save_pretrained(model_dir)
    report = bench_eval_throughput({"micro": model_dir}, limit=6, batch_size=8, log=lambda _: None)
    entry = report["models"]["micro"]
    reference = evaluate_shapes(micro_model, limit=6, batch_size=8)
    assert entry["queries"] == 6 == sum(t["n"] for t in entry["tasks"].values())
    assert entry["overall"] == reference["overall"] and entry["mode"] == reference["mode"]
    assert entry["queries_per_s"] == pytest.approx(entry["queries"] / entry["seconds"])
    table = format_throughput_table(report).splitlines()
    assert table[0].startswith("| model | mode | CLS | QA | RET | GD | overall |")
    assert table[2].startswith(f"| micro | {entry['mode']} |")
    assert table[2].split(" | ")[-2] == f"{100 * entry['overall']:.1f}"


def test_balanced_shapes_eval_carries_per_query_scores_and_intervals(micro_model):
    from lame_tools.data.shapes import SUBTASKS
    from lame_tools.evaluate import evaluate_shapes
    from lame_tools.evaluate.compare import compare_results

    result = evaluate_shapes(micro_model, split="validation", per_subtask=6, batch_size=16)
    assert set(result["tasks"]) == set(SUBTASKS) and result["per_subtask"] == 6
    for task in result["tasks"].values():
        assert len(task["per_query"]) == task["n"] == 6 and set(task["per_query"]) <= {0.0, 1.0}
        assert task["score"] == pytest.approx(sum(task["per_query"]) / 6)
        low, high = task["interval"]
        assert low <= task["score"] <= high
    groups = result["tasks"]["shape_of"]["query_groups"]
    assert sum(g["n"] for g in groups.values()) == 6 and set(groups) == {"seen"}  # validation: no held-out pairs
    low, high = result["intervals"]["overall"]
    assert low <= result["overall"] <= high
    same = compare_results(result, result)
    assert same["overall"]["difference"]["estimate"] == 0.0 and same["overall"]["p_mcnemar"] == 1.0
    better = json.loads(json.dumps(result))
    better["tasks"]["count"]["per_query"] = [1.0] * 6
    gain = 1 - result["tasks"]["count"]["score"]
    report = compare_results(better, result)
    assert report["tasks"]["count"]["difference"]["estimate"] == pytest.approx(gain)
    assert report["overall"]["difference"]["estimate"] == pytest.approx(gain / len(SUBTASKS))


def test_a_rendering_style_changes_the_images_not_the_queries(micro_model):
    from lame_tools.data.formats import shapes_tasks
    from lame_tools.errors import InputError

    plain = next(s for s in shapes_tasks(0, "test", per_subtask=3) if s.name == "count").load()
    styled = next(s for s in shapes_tasks(0, "test", per_subtask=3, style="pastel") if s.name == "count").load()
    assert [q.text for q in plain.queries] == [q.text for q in styled.queries]
    ref = plain.queries[0].images[0]
    assert plain.load_image(ref).tobytes() != styled.load_image(ref).tobytes()
    with pytest.raises(InputError, match="Unknown rendering style"):
        shapes_tasks(0, "test", per_subtask=3, style="sepia")
