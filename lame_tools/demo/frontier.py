"""The cost/quality frontier: Hit@1 on the Shapes test split (with its 95% interval) against ms per query,
one point per model and mode, from recorded JSON only (nothing is measured here).

- quality: `python -m lame_tools eval --balanced` reports (`assets/results/eval_*.json`): `overall` and
  `intervals.overall` (a stratified bootstrap over the queries), keyed by model folder name and mode;
- cost: a `bench race` report with `lane_sources` (which folder each lane ran): the lane's batch-1
  median ms per query, keyed the same way; its hardware, threads and date label the chart.

`frontier_points` joins the two; `frontier_figure` draws them (plotly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

MODE_COLOURS = {"latent": "#e63946", "discriminative": "#457b9d", "cot": "#2a9d8f", "sequential": "#f4a261"}


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def eval_points(folder: str | Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(model folder name, mode) -> Hit@1 and its interval, from every Shapes eval report in `folder`."""
    found = {}
    for path in sorted(Path(folder).glob("eval_*.json")):
        report = _read(path)
        if not isinstance(report, dict) or report.get("benchmark") != "shapes" or "overall" not in report:
            continue
        low, high = (report.get("intervals") or {}).get("overall") or (report["overall"], report["overall"])
        key = (Path(str(report.get("model", ""))).name, str(report.get("mode") or ""))
        found[key] = {"hit1": float(report["overall"]), "low": float(low), "high": float(high), "eval_file": path.name,
                      "split": report.get("split"), "per_subtask": report.get("per_subtask")}
    return found


def cost_points(folder: str | Path) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """(model folder name, mode) -> batch-1 median ms per query from the newest race report in `folder`
    that says which folder each lane ran, and that report's label (hardware, threads, date, load)."""
    best: tuple[str, dict] | None = None
    for path in sorted(Path(folder).glob("*.json")):
        report = _read(path)
        if isinstance(report, dict) and report.get("benchmark") == "race" and report.get("lane_sources"):
            if best is None or str(report.get("created", "")) >= str(best[1].get("created", "")):
                best = (path.name, report)
    if best is None:
        return {}, {}
    name, report = best
    found = {}
    for lane, source in report["lane_sources"].items():
        info, timing = report["lanes_info"].get(lane, {}), report["lanes"].get(lane, {})
        one = (timing.get("by_batch_size") or {}).get("1")
        if one:
            key = (Path(str(source)).name, str(info.get("mode") or lane))
            found[key] = {"ms": float(one["median"]), "ms_p90": float(one["p90"]), "lane": lane,
                          "trained_for_mode": info.get("trained_for_mode", True), "cot_read": info.get("cot_read")}
    hw = report.get("hardware") or {}
    label = {"hardware": hw.get("gpu") or hw.get("cpu") or "", "threads": hw.get("torch_threads"),
             "date": report.get("date", ""), "load_average": report.get("load_average"), "bench_file": name,
             "dtype": report.get("dtype", "")}
    return found, label


def frontier_points(results: str | Path, benchmarks: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The points that have both a recorded quality and a recorded cost, cheapest first, and the label."""
    quality = eval_points(results)
    cost, label = cost_points(benchmarks)
    points = [{"model": model, "mode": mode, **quality[(model, mode)], **cost[(model, mode)]}
              for model, mode in sorted(set(quality) & set(cost))]
    return sorted(points, key=lambda p: p["ms"]), label


def point_name(point: dict[str, Any]) -> str:
    name = f"{point['model']} · {point['mode']}"
    return name + (" (not trained for it)" if not point.get("trained_for_mode", True) else "")


def frontier_figure(points: list[dict[str, Any]], label: dict[str, Any]) -> go.Figure:
    """Hit@1 (95% interval as error bars) against ms per query (log axis), one marker per model and mode."""
    fig = go.Figure()
    for i, point in enumerate(points):
        # neighbours (cheapest first, in pairs) label apart: the higher of the two above, the other below
        other = points[i - 1] if i % 2 else points[i + 1] if i + 1 < len(points) else None
        vertical = "top" if other is None or point["hit1"] >= other["hit1"] else "bottom"
        fig.add_trace(go.Scatter(
            x=[point["ms"]], y=[100 * point["hit1"]], mode="markers+text", name=point_name(point),
            text=[point_name(point)],
            textposition=f"{vertical} {'left' if i == len(points) - 1 else 'right'}",
            marker={"size": 12, "color": MODE_COLOURS.get(point["mode"], "#6c757d")},
            error_y={"type": "data", "symmetric": False, "array": [100 * (point["high"] - point["hit1"])],
                     "arrayminus": [100 * (point["hit1"] - point["low"])]},
            hovertemplate=f"{point_name(point)}<br>%{{x:.1f}} ms/query<br>Hit@1 %{{y:.1f}}%<extra></extra>",
        ))
    where = label.get("hardware", "")
    threads = f", {label['threads']} threads" if label.get("threads") else ""
    load = label.get("load_average")
    busy = f", load {load[0]:.1f}" if load else ""
    # 1-2-5 ticks labelled in full (plotly's default log ticks label 20 and 30 as "2" and "3")
    ticks = [m * 10**e for e in range(-2, 6) for m in (1, 2, 5)]
    fig.update_xaxes(title="ms per query (batch 1, median; log scale)", type="log", tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks])
    fig.update_yaxes(title="Hit@1 on the Shapes test split (%), 95% interval")
    fig.update_layout(
        title=f"Cost / quality: {where}{threads}{busy}, {label.get('date', '')}" if points else "No recorded frontier",
        height=460, margin={"l": 10, "r": 10, "t": 50, "b": 10}, showlegend=False,
    )
    return fig


def frontier_markdown(points: list[dict[str, Any]], label: dict[str, Any]) -> str:
    """The frontier's points as a table, with where the numbers come from."""
    if not points:
        return "*No recorded frontier: record `eval_*.json` in assets/results and a race with lane sources.*"
    lines = ["| model · mode | ms / query | Hit@1 (95% interval) |", "|---|---|---|"]
    for p in points:
        lines.append(f"| {point_name(p)} | {p['ms']:.1f} | {100 * p['hit1']:.1f} "
                     f"({100 * p['low']:.1f}-{100 * p['high']:.1f}) |")
    lines.append("")
    lines.append(f"Recorded: cost from `{label['bench_file']}` ({label['hardware']}, {label.get('threads')} threads, "
                 f"{label.get('date')}), quality from `assets/results/eval_*.json` (balanced Shapes test split).")
    return "\n".join(lines)
