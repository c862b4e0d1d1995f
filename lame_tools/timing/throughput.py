"""Evaluation throughput: queries per second of the Shapes evaluation for each model, with its scores.

The command line is `python -m lame_tools eval-throughput` (in `lame_tools.cli.eval`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lame_tools.data.shapes import TASK_KINDS
from lame_tools.evaluate import META_ABBREVIATIONS, evaluate_shapes
from lame_tools.timing import hardware_info, synchronize


def bench_eval_throughput(
    models: Mapping[str, Path],
    split: str = "test",
    seed: int = 0,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    mode: str | None = None,
    log: Any = print,
) -> dict:
    """Evaluation throughput on a Shapes split: queries per second (and distinct inputs embedded per
    second) for each model folder, after a small warm-up run; the scores come with it.

    Returns:
        {"hardware", "split", "limit", "batch_size", "models": {name: {"queries_per_s", "inputs_per_s",
         "seconds", "queries", "inputs", "mode", "overall", "meta_tasks", "tasks"}}}
    """
    from lame_tools.model import LameModel

    report: dict[str, Any] = {"split": split, "seed": seed, "limit": limit, "batch_size": batch_size, "models": {}}
    for name, folder in models.items():
        model = LameModel.from_pretrained(folder, device=device)
        evaluate_shapes(model, split, mode, seed, limit=8, batch_size=batch_size)  # warm-up
        synchronize(model.device)
        start = time.perf_counter()
        result = evaluate_shapes(model, split, mode, seed, limit, batch_size)
        synchronize(model.device)
        seconds = time.perf_counter() - start
        queries = sum(t["n"] for t in result["tasks"].values())
        inputs = sum(t["n_embedded"] for t in result["tasks"].values())
        report["models"][name] = {
            "folder": str(folder),
            "mode": result["mode"],
            "seconds": seconds,
            "queries": queries,
            "inputs": inputs,
            "queries_per_s": queries / seconds,
            "inputs_per_s": inputs / seconds,
            "overall": result["overall"],
            "meta_tasks": result["meta_tasks"],
            "tasks": {k: {"hit@1": v["hit@1"], "n": v["n"]} for k, v in result["tasks"].items()},
        }
        log(
            f"{name}: {queries} queries in {seconds:.1f} s = {queries / seconds:.1f} queries/s "
            f"({result['mode']} mode, overall Hit@1 {100 * result['overall']:.1f})"
        )
        report["hardware"] = hardware_info(model.device)
    return report


def format_throughput_table(report: dict) -> str:
    """A markdown table of a throughput report: per meta-task Hit@1, overall, and queries/s."""
    metas = TASK_KINDS  # the Shapes meta-tasks
    lines = [
        "| model | mode | " + " | ".join(META_ABBREVIATIONS[m] for m in metas) + " | overall | queries/s |",
        "|---|---|" + "---|" * (len(metas) + 2),
    ]
    for name, r in report["models"].items():
        cells = " | ".join(f"{100 * r['meta_tasks'][m]:.1f}" if m in r["meta_tasks"] else "-" for m in metas)
        lines.append(f"| {name} | {r['mode']} | {cells} | {100 * r['overall']:.1f} | {r['queries_per_s']:.1f} |")
    return "\n".join(lines)
