"""What the benchmarks print: the race table, the encode table, and each lane's headline numbers."""

from __future__ import annotations

from typing import Any


def lane_headline(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """{median, p90} ms per item at the first batch size, and the same per batch size."""
    by_size = {str(r["batch_size"]): {"median": r["lanes"][name]["median"], "p90": r["lanes"][name]["p90"]}
               for r in results}
    first = str(results[0]["batch_size"])
    return {**by_size[first], "batch_size": int(first), "by_batch_size": by_size}


def _race_notes(result: dict[str, Any]) -> list[str]:
    """The comparisons of one batch size: CoT / latent, latent / discriminative beside its floor."""
    notes = []
    if "speedup_cot_vs_latent" in result:
        notes.append(f"cot/latent {result['speedup_cot_vs_latent']:.1f}x at {result['cot_tokens_mean']:.1f} cot tokens")
    if "sequential_vs_latent" in result:
        notes.append(f"sequential/latent {result['sequential_vs_latent']:.2f}x")
    if "latent_vs_discriminative" in result:
        notes.append(
            f"latent/discriminative {result['latent_vs_discriminative']:.3f} "
            f"(floor (L+K+1)/(L+1) = {result['physical_floor']:.3f}, "
            f"padded {result['physical_floor_padded']:.3f}, K={result['K']})"
        )
    return notes


def format_race_table(report: dict[str, Any]) -> str:
    """The race report as a plain-text table (one row per batch size and lane)."""
    hw = report["hardware"]
    where = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('torch_threads')} threads)"
    load = report.get("load_average")
    busy = f"; load average {load[0]:.2f}" if load else ""
    read = f"; CoT reads [EMBED] by {report['cot_read']}" if report.get("cot_read") else ""
    lines = [f"race on {where}; torch {hw.get('torch')}, transformers {hw.get('transformers')}{busy}{read}",
             f"{'batch':>5}  {'lane':<15} {'ms/item':>9} {'p90':>9} {'items/s':>9} {'cot tok':>8}  stages (ms per batch, median)"]
    for r in report["results"]:
        for name, lane in r["lanes"].items():
            tokens = lane.get("generated_tokens", {}).get("mean")
            stages = ", ".join(f"{s} {v:.1f}" for s, v in lane["stages_ms"].items() if v >= 0.05)
            lines.append(
                f"{r['batch_size']:>5}  {name:<15} {lane['median']:>9.2f} {lane['p90']:>9.2f} "
                f"{lane['items_per_s']:>9.1f} {'' if tokens is None else f'{tokens:.1f}':>8}  {stages}"
            )
        notes = _race_notes(r)
        if notes:
            lines.append("       " + "; ".join(notes))
    agreement = report.get("generator_agreement")
    if agreement:
        parts = [f"{lane} {v['ratio']:.2f}" for lane, v in agreement["lanes"].items()]
        lines.append(f"race() generator / offline median at batch 1 ({agreement['items']} items): " + ", ".join(parts))
    return "\n".join(lines)


def format_encode_table(report: dict[str, Any]) -> str:
    """The encode report (`bench_encode`) as a plain-text table, one row per batch size."""
    lines = [
        f"encode benchmark ({report['mode']} mode) on {report['hardware']['cpu']} / {report['hardware']['device']}",
        f"{'batch':>5}  {'encode it/s':>12}  {'backbone it/s':>13}  {'ratio':>6}  {'encode p90 ms':>13}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['batch_size']:>5}  {r['encode_items_per_s']:>12.1f}  {r['backbone_items_per_s']:>13.1f}  "
            f"{r['overhead_ratio']:>6.2f}  {r['encode_ms']['p90']:>13.2f}"
        )
    return "\n".join(lines)
