"""Evaluation: retrieval metrics and the harness that runs Shapes, MMEB-v2 and MRMR through one code path.

- `metrics`: Hit@k, Recall@k, nDCG@k per query (BEIR / pytrec_eval definitions, edge cases decided
  explicitly: unjudged queries, duplicate ids).
- `harness`: embedding each distinct input once, scoring a task (pessimistic ties), the Shapes
  evaluation and resumable benchmark runs (`run_benchmark`, the `eval` verb).
- `sources`: the benchmarks, as tasks known by name before they are read.
- `report`: means per meta-task and group, the results table, summary statistics of a sample.
- `rationales`: a CoT rationale parsed into its steps and scored field by field against the scene
  graph (objects, anchor, relation, filtered list, count, answer, well-formed); cot-mode runs report it.

The evaluation's throughput (queries per second) is measured by `lame_tools.timing.throughput`.
"""

from __future__ import annotations

from lame_tools.evaluate.harness import (
    BASELINE_LANES,
    embed_inputs,
    evaluate_shapes,
    evaluate_task,
    finished_task,
    model_mode,
    run_benchmark,
    task_file,
)
from lame_tools.evaluate.metrics import METRICS, hit_at_k, mean_or_none, metric, ndcg_at_k, parse_metric, recall_at_k
from lame_tools.evaluate.rationales import FIELDS as RATIONALE_FIELDS
from lame_tools.evaluate.rationales import parse_rationale, score_rationale, summarize_rationales
from lame_tools.evaluate.report import META_ABBREVIATIONS, META_ORDER, format_table, sample_stats, summarize_tasks
from lame_tools.evaluate.sources import BENCHMARKS, benchmark_sources, select_tasks

__all__ = [
    "BASELINE_LANES",
    "BENCHMARKS",
    "METRICS",
    "RATIONALE_FIELDS",
    "META_ABBREVIATIONS",
    "META_ORDER",
    "benchmark_sources",
    "embed_inputs",
    "evaluate_shapes",
    "evaluate_task",
    "finished_task",
    "format_table",
    "hit_at_k",
    "mean_or_none",
    "metric",
    "model_mode",
    "ndcg_at_k",
    "parse_metric",
    "parse_rationale",
    "recall_at_k",
    "run_benchmark",
    "sample_stats",
    "score_rationale",
    "select_tasks",
    "summarize_rationales",
    "summarize_tasks",
    "task_file",
]
