"""Summaries of evaluation results: means per meta-task and group, the per-task table, and the
summary statistics of a sample (scores over seeds, latencies over requests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

META_ABBREVIATIONS = {
    "classification": "CLS",
    "vqa": "QA",
    "retrieval": "RET",
    "grounding": "GD",
    "moment_retrieval": "MRET",
    "vidore_v1": "VDRv1",
    "vidore_v2": "VDRv2",
    "visrag": "VR",
    "ood": "OOD",
    "knowledge": "Knowledge",
    "theorem": "Theorem",
    "contradiction": "Contradiction",
}
META_ORDER = tuple(META_ABBREVIATIONS)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _block(results: list[dict]) -> dict:
    metas = sorted({r["meta_task"] for r in results}, key=lambda m: (META_ORDER.index(m) if m in META_ORDER else 99, m))
    return {
        "overall": _mean([r["score"] for r in results]),
        "meta_tasks": {m: _mean([r["score"] for r in results if r["meta_task"] == m]) for m in metas},
    }


def summarize_tasks(task_results: Mapping[str, dict]) -> dict:
    """`overall` (mean score over tasks), `meta_tasks` (mean per meta-task) and, when the tasks span
    several groups (MMEB-v2's image / video / visdoc), `groups` {group: {"overall", "meta_tasks"}}.
    Tasks without a score are left out."""
    scored = {name: r for name, r in task_results.items() if r.get("score") is not None}
    summary = _block(list(scored.values()))
    groups = sorted({r["group"] for r in scored.values()})
    if len(groups) > 1:
        summary["groups"] = {g: _block([r for r in scored.values() if r["group"] == g]) for g in groups}
    return summary


def _percent(value: float | None) -> str:
    """A score in percent with one decimal, five wide; "  -  " for a missing one."""
    return "  -  " if value is None else f"{100 * value:5.1f}"


def format_table(results: dict) -> str:
    """The per-task table, then per-meta-task means (per group where there are several) and overall."""
    lines = [f"{'task':<24} {'meta-task':<15} {'metric':<8} {'n':>6} {'score':>6}"]
    for name, r in results["tasks"].items():
        lines.append(f"{name:<24} {r['meta_task']:<15} {r['metric']:<8} {r['n']:>6} {_percent(r['score']):>6}")
    blocks = [(g, b) for g, b in results.get("groups", {}).items()] or [("", results)]
    for group, b in blocks:
        cells = " | ".join(f"{META_ABBREVIATIONS.get(m, m)} {_percent(v)}" for m, v in b["meta_tasks"].items())
        lines.append(f"{(group + ': ') if group else ''}{cells} | overall {_percent(b['overall'])}")
    if results.get("groups"):
        lines.append(f"all: overall {_percent(results['overall'])}")
    return "\n".join(lines)


def sample_stats(
    values: Iterable[float | None], percentiles: Sequence[float] = (), spread: bool = True, suffix: str = ""
) -> dict | None:
    """Summary statistics of a sample, None values left out; None when nothing is left.

    Keys, in order: `p<q>` for each of `percentiles`, `mean`, then (with `spread`) `std` (the
    sample standard deviation, ddof 1; 0.0 for one value), `min`, `max`, and last `n`. `suffix`
    is appended to every key but `n` (e.g. "_ms": `p50_ms`, `mean_ms`).
    """
    kept = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if kept.size == 0:
        return None
    stats = {f"p{q:g}{suffix}": float(np.percentile(kept, q)) for q in percentiles}
    stats[f"mean{suffix}"] = float(kept.mean())
    if spread:
        stats[f"std{suffix}"] = float(kept.std(ddof=1)) if kept.size > 1 else 0.0
        stats[f"min{suffix}"] = float(kept.min())
        stats[f"max{suffix}"] = float(kept.max())
    stats["n"] = int(kept.size)
    return stats
