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
    When every task kept its per-query scores, `intervals` {"overall": [low, high], "meta_tasks":
    {meta: [low, high]}}: 95% stratified-bootstrap intervals (queries resampled within their task).
    When some task carries scored rationales (cot mode), `rationales`: their field means
    (`lame_tools.evaluate.rationales.summarize_rationales`). Tasks without a score are left out."""
    from lame_tools.evaluate.rationales import summarize_rationales

    scored = {name: r for name, r in task_results.items() if r.get("score") is not None}
    summary = _block(list(scored.values()))
    groups = sorted({r["group"] for r in scored.values()})
    if len(groups) > 1:
        summary["groups"] = {g: _block([r for r in scored.values() if r["group"] == g]) for g in groups}
    if scored and all(r.get("per_query") for r in scored.values()):
        summary["intervals"] = _summary_intervals(scored, summary["meta_tasks"])
    rationales = summarize_rationales(task_results)
    if rationales is not None:
        summary["rationales"] = rationales
    return summary


def _summary_intervals(scored: Mapping[str, dict], metas: Iterable[str]) -> dict:
    from lame_tools.intervals import bootstrap_interval

    def interval(names: list[str]) -> list[float]:
        found = bootstrap_interval({n: scored[n]["per_query"] for n in names})
        return [found.low, found.high]

    return {
        "overall": interval(list(scored)),
        "meta_tasks": {m: interval([n for n, r in scored.items() if r["meta_task"] == m]) for m in metas},
    }


def query_intervals(scores: Sequence[float | None], groups: Sequence[str] | None = None) -> dict:
    """Per-query scores of one task, their 95% interval (Wilson for 0/1 scores) and, with `groups`
    (one name per query), the score, size and interval of each group and each kept query's group
    (`per_query_group`, aligned with `per_query`, so paired comparisons can split by group)."""
    from lame_tools.intervals import score_interval

    kept = [(float(v), g) for v, g in zip(scores, groups or [None] * len(scores)) if v is not None]
    if not kept:
        return {}
    values = [v for v, _ in kept]
    found = score_interval(values)
    out: dict = {"per_query": values, "interval": [found.low, found.high]}
    if groups is not None:
        out["per_query_group"] = [g for _, g in kept]
        out["query_groups"] = {}
        for name in sorted({g for _, g in kept}):
            members = [v for v, g in kept if g == name]
            inner = score_interval(members)
            out["query_groups"][name] = {"score": inner.estimate, "n": inner.n, "interval": [inner.low, inner.high]}
    return out


def _percent(value: float | None) -> str:
    """A score in percent with one decimal, five wide; "  -  " for a missing one."""
    return "  -  " if value is None else f"{100 * value:5.1f}"


def format_table(results: dict) -> str:
    """The per-task table, then per-meta-task means (per group where there are several) and overall;
    in cot mode last one line of rationale field accuracies."""
    lines = [f"{'task':<24} {'meta-task':<15} {'metric':<8} {'n':>6} {'score':>6}"]
    for name, r in results["tasks"].items():
        line = f"{name:<24} {r['meta_task']:<15} {r['metric']:<8} {r['n']:>6} {_percent(r['score']):>6}"
        if r.get("interval"):
            line += f"  [{_percent(r['interval'][0]).strip()}, {_percent(r['interval'][1]).strip()}]"
        for group, g in r.get("query_groups", {}).items():
            line += f"  {group} {_percent(g['score']).strip()} (n={g['n']})"
        lines.append(line)
    blocks = [(g, b) for g, b in results.get("groups", {}).items()] or [("", results)]
    for group, b in blocks:
        cells = " | ".join(f"{META_ABBREVIATIONS.get(m, m)} {_percent(v)}" for m, v in b["meta_tasks"].items())
        lines.append(f"{(group + ': ') if group else ''}{cells} | overall {_percent(b['overall'])}")
    if results.get("intervals"):
        low, high = results["intervals"]["overall"]
        lines.append(f"overall 95% interval (stratified bootstrap): [{_percent(low).strip()}, {_percent(high).strip()}]")
    if results.get("groups"):
        lines.append(f"all: overall {_percent(results['overall'])}")
    if results.get("rationales"):
        from lame_tools.evaluate.rationales import format_rationales

        lines.append(format_rationales(results["rationales"]))
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
