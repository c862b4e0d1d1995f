"""`RaceBoard`: what the Race tab shows, updated from `lame_tools.timing.race` events.

It only reads the events' measured numbers (never invents or interpolates one) and keeps the state
the tab draws: per-lane elapsed ms and whether each lane is done, the CoT text so far, and three
short texts (latent lane, live numbers, hardware). `recorded_races` reads the race benchmarks
recorded as JSON (`python -m lame_tools bench race`) and `recorded_markdown` lists them, labelled
as recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def slowdown(event: dict[str, Any]) -> float:
    """The CoT lane's time over the latent lane's in a race event: `slowdown`, or the older `speedup`
    key of the same value (JSON recorded before `slowdown` existed)."""
    return float(event["slowdown"] if "slowdown" in event else event["speedup"])


@dataclass
class RaceBoard:
    elapsed_ms: dict[str, float] = field(default_factory=dict)
    done: dict[str, bool] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cot_text: str = ""
    latent: str = ""
    numbers: str = ""
    hardware: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def update(self, event: dict[str, Any]) -> None:
        """Apply one event of the schema documented in `lame_tools.timing.race`."""
        self.events.append(event)
        kind = event["event"]
        if kind == "start":
            hw = event["hardware"]
            where = hw.get("gpu") or hw.get("cpu", "CPU")
            self.hardware = (
                f"Measured live on **{where}** ({hw.get('device')}, torch {hw.get('torch')}, "
                f"{hw.get('torch_threads')} threads); prompt {event['prompt_tokens'][0]} tokens, "
                f"CoT cap {event['max_new_tokens']} tokens. Lanes run one after another."
            )
            for lane in event["lanes"]:
                self.elapsed_ms[lane], self.done[lane] = 0.0, False
        elif kind == "lane_done":
            lane = event["lane"]
            self.elapsed_ms[lane], self.done[lane] = event["elapsed_ms"], True
            if lane == "latent":
                self.latent = f"**latent lane done**: one pass, {event['elapsed_ms']:.1f} ms, {event['embedding_dim']}-d embedding."
            if lane == "cot":
                self.cot_text, self.tokens["cot"] = event["text"] or "", event["tokens"]
        elif kind == "token":
            self.elapsed_ms["cot"], self.tokens["cot"], self.cot_text = event["elapsed_ms"], event["tokens"], event["text"]
            self.numbers = (
                f"CoT: {event['tokens']} tokens in {event['elapsed_ms']:.1f} ms ({event['tokens_per_s']:.0f} tokens/s): "
                f"{slowdown(event):.1f}x the latent lane so far."
            )
        elif kind == "done":
            ms = event["ms_per_item"]
            self.numbers = (
                f"**CoT {ms['cot']:.1f} ms vs latent {ms['latent']:.1f} ms: {slowdown(event):.1f}x slower**, "
                f"{event['cot_tokens']:.0f} rationale tokens."
            )
            if event.get("latent_vs_discriminative"):
                self.numbers += f" Latent / discriminative (K=0): {event['latent_vs_discriminative']:.2f}x."
            self.finished = True


def recorded_markdown(records: list[dict[str, Any]]) -> str:
    """Recorded race benchmarks, labelled as recorded (card or CPU, dtype, date), and whether a GPU one exists."""
    lines = []
    if records:
        lines += [
            "**Recorded (not live) race benchmarks** (`python -m lame_tools bench race`, many inputs, median per item):",
            "",
            "| hardware | dtype | date | batch | ms per item |",
            "|---|---|---|---|---|",
        ]
        for r in records:
            lanes = ", ".join(f"{lane} {ms:.1f}" for lane, ms in r["ms_per_item"].items())
            where = r["card"] + (f" ({r['threads']} threads)" if r.get("threads") else "")
            lines.append(f"| {where} | {r['dtype']} | {r['date']} | {r.get('batch_size') or ''} | {lanes} |")
        lines.append("")
    if not any(not r["card"].startswith("CPU") for r in records):
        lines.append(
            "*No recorded GPU benchmark is shipped in `assets/benchmarks/`, so no GPU number is shown. "
            "`scripts/gpu_check.sh` records one on a CUDA machine.*"
        )
    return "\n".join(lines)


def recorded_summary(record: Any, source: str) -> dict[str, Any] | None:
    """Card (or CPU), dtype, date and per-lane median ms of a recorded race benchmark, or None if it is not one."""
    if not isinstance(record, dict) or record.get("benchmark", "race") != "race":
        return None
    hardware = record.get("hardware") or {}
    lanes = record.get("lanes") or {}
    if not isinstance(hardware, dict) or not isinstance(lanes, dict):
        return None
    card = hardware.get("gpu") or (f"CPU: {hardware['cpu']}" if hardware.get("cpu") else None)
    if not card:
        return None
    per_lane, batch = {}, None
    for name, lane in lanes.items():
        if isinstance(lane, dict) and isinstance(lane.get("median"), (int, float)):
            per_lane[name] = float(lane["median"])
            batch = lane.get("batch_size", batch)
    if not per_lane:
        return None
    return {
        "file": source,
        "card": card,
        "dtype": record.get("dtype") or hardware.get("dtype") or "",
        "date": record.get("date") or record.get("recorded_at") or hardware.get("date") or "",
        "model": record.get("model") or record.get("name") or "",
        "ms_per_item": per_lane,
        "batch_size": batch,
        "threads": hardware.get("torch_threads"),
    }


def recorded_races(report: Any, source: str, depth: int = 0) -> list[dict[str, Any]]:
    """Every race record in a JSON document: the document itself, or lists / dicts of records."""
    summary = recorded_summary(report, source)
    if summary is not None:
        return [summary]
    if depth >= 2:
        return []
    children = report if isinstance(report, list) else list(report.values()) if isinstance(report, dict) else []
    return [s for child in children if isinstance(child, (dict, list)) for s in recorded_races(child, source, depth + 1)]


def recorded_benchmarks(folder: str | Path) -> list[dict[str, Any]]:
    """The race records of every `*.json` in `folder` (unreadable files are skipped), by file name."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        found.extend(recorded_races(report, path.name))
    return found
