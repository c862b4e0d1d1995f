"""Paired comparisons of two evaluation results on the same queries (the eval JSON of two models).

Each task's per-query scores of model A and model B are paired query by query: the difference of
their means with a 95% bootstrap interval and McNemar's exact p-value (0/1 scores); the overall and
per-meta-task differences, and those of the Shapes perception and reasoning subtasks pooled, use the
stratified bootstrap (queries resampled within their task, the same indices for both models). A claim that one model beats another needs the interval above 0.
Where a task's queries fall into groups (`per_query_group`: colour_of / shape_of queries about a
held-out or a seen colour-shape pair), the difference within each group too (`groups`, keyed
"task/group"); one result carrying the labels is enough (the same queries in the same order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lame_tools.data.tasks import PERCEPTION_SUBTASKS, REASONING_SUBTASKS
from lame_tools.errors import InputError
from lame_tools.intervals import format_points, paired_comparison

# Shapes subtask pools compared as one (stratified by subtask) when both results hold all of them
POOLS = {"perception": PERCEPTION_SUBTASKS, "reasoning": REASONING_SUBTASKS}


def _per_query(result: Mapping[str, Any], which: str) -> dict[str, list[float]]:
    tasks = result.get("tasks", {})
    found = {name: r["per_query"] for name, r in tasks.items() if r.get("per_query")}
    if not found:
        raise InputError(f"The {which} result has no per-query scores; evaluate it again with this version.")
    return found


def query_group_labels(results: Sequence[Mapping[str, Any]], name: str) -> list[str] | None:
    """The per-query group labels of task `name` from whichever of `results` carries them (results
    written before the labels were stored have none); None when none does.

    Raises:
        InputError: two results label the task's queries differently (not the same queries).
    """
    found = [r["tasks"][name]["per_query_group"] for r in results
             if r.get("tasks", {}).get(name, {}).get("per_query_group")]
    if any(labels != found[0] for labels in found[1:]):
        raise InputError(f"Task {name!r} groups its queries differently in two results: not the same queries.")
    return found[0] if found else None


def compare_results(a: Mapping[str, Any], b: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """A minus B per task, per meta-task and overall (tasks present in both with the same queries).

    Raises:
        InputError: no shared tasks, or a task whose query counts differ (not the same queries).
    """
    qa, qb = _per_query(a, "first"), _per_query(b, "second")
    shared = [name for name in qa if name in qb]
    if not shared:
        raise InputError("The two results share no task with per-query scores.")
    for name in shared:
        if len(qa[name]) != len(qb[name]):
            raise InputError(f"Task {name!r} has {len(qa[name])} queries in one result and {len(qb[name])} in the other.")
    metas: dict[str, list[str]] = {}
    for name in shared:
        metas.setdefault(a["tasks"][name]["meta_task"], []).append(name)

    def compare(names: list[str]) -> dict[str, Any]:
        return paired_comparison({n: qa[n] for n in names}, {n: qb[n] for n in names}, seed=seed).to_dict()

    report = {
        "a": {k: a.get(k) for k in ("model", "mode", "split", "seed")},
        "b": {k: b.get(k) for k in ("model", "mode", "split", "seed")},
        "overall": compare(shared),
        "meta_tasks": {meta: compare(names) for meta, names in metas.items()},
        "tasks": {name: compare([name]) for name in shared},
    }
    pools = {pool: compare(list(names)) for pool, names in POOLS.items() if set(names) <= set(shared)}
    if pools:
        report["pools"] = pools
    groups = {}
    for name in shared:
        labels = query_group_labels([a, b], name)
        if labels is None:
            continue
        if len(labels) != len(qa[name]):
            raise InputError(f"Task {name!r} has {len(labels)} group labels for {len(qa[name])} queries.")
        for group in sorted(set(labels)):
            keep = [i for i, g in enumerate(labels) if g == group]
            groups[f"{name}/{group}"] = paired_comparison(
                {name: [qa[name][i] for i in keep]}, {name: [qb[name][i] for i in keep]}, seed=seed).to_dict()
    if groups:
        report["groups"] = groups
    return report


def format_comparison(report: Mapping[str, Any]) -> str:
    """One line per task, meta-task and overall: difference in points, its interval, McNemar's p."""

    def line(label: str, c: Mapping[str, Any]) -> str:
        d = c["difference"]
        p = "   -  " if c["p_mcnemar"] is None else f"{c['p_mcnemar']:.4f}"
        verdict = "A better" if d["low"] > 0 else "B better" if d["high"] < 0 else "no difference"
        return (f"{label:<24} {format_points(d['estimate'], d['low'], d['high'], width=6)}"
                f"  p={p}  n={d['n']:<5} {verdict}")

    lines = [f"{'A - B (points)':<24} {'diff':>6} {'95% interval':>17}"]
    lines += [line(name, c) for name, c in report["tasks"].items()]
    lines += [line(f"[{meta}]", c) for meta, c in report["meta_tasks"].items()]
    lines += [line(f"<{pool}>", c) for pool, c in report.get("pools", {}).items()]
    lines += [line(f"  {group}", c) for group, c in report.get("groups", {}).items()]
    lines.append(line("overall", report["overall"]))
    return "\n".join(lines)
