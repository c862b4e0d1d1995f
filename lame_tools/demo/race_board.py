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


LANE_NAMES = {"latent": "latent", "discriminative": "discriminative (K=0)", "sequential": "sequential latent",
              "cot": "CoT"}
DISAGREE = 0.15  # a live lane more than this far from the recorded median gets a note


@dataclass
class RaceBoard:
    elapsed_ms: dict[str, float] = field(default_factory=dict)
    done: dict[str, bool] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    runs_ms: dict[str, list[float]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    cot_text: str = ""
    latent: str = ""
    numbers: str = ""
    hardware: str = ""
    card: str = ""
    other_work: list[str] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    lanes_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False

    def update(self, event: dict[str, Any]) -> None:
        """Apply one event of the schema documented in `lame_tools.timing.race`."""
        self.events.append(event)
        kind = event["event"]
        if kind == "start":
            self._start(event)
        elif kind == "run_done":
            lane = event["lane"]
            self.runs_ms.setdefault(lane, []).append(event["total_ms"])
            self.elapsed_ms[lane] = float(sorted(self.runs_ms[lane])[(len(self.runs_ms[lane]) - 1) // 2])
        elif kind == "lane_done":
            lane = event["lane"]
            self.elapsed_ms[lane], self.done[lane] = event["elapsed_ms"], True
            self.runs_ms[lane] = list(event.get("runs_ms") or [event["elapsed_ms"]])
            if lane == "latent":
                self.latent = (f"**latent lane done**: one pass, {event['elapsed_ms']:.1f} ms "
                               f"(median of {len(self.runs_ms[lane])}), {event['embedding_dim']}-d embedding.")
            if lane == "cot":
                self.cot_text, self.tokens["cot"] = event["text"] or "", event["tokens"]
        elif kind == "token":
            self.elapsed_ms["cot"], self.tokens["cot"], self.cot_text = event["elapsed_ms"], event["tokens"], event["text"]
            self.numbers = (f"CoT: {event['tokens']} tokens in {event['elapsed_ms']:.1f} ms "
                            f"({event['tokens_per_s']:.0f} tokens/s): {slowdown(event):.1f}x the latent lane so far "
                            "(first timed run).")
        elif kind == "done":
            self._done(event)

    def _start(self, event: dict[str, Any]) -> None:
        hw, self.protocol = event["hardware"], event.get("protocol") or {}
        self.other_work, self.lanes_info = list(event.get("other_work") or []), event.get("lanes_info") or {}
        where = hw.get("gpu") or hw.get("cpu", "CPU")
        self.card = hw.get("gpu") or f"CPU: {hw.get('cpu')}"  # as `recorded_summary` names hardware
        repeats = event.get("repeats", 1)
        self.hardware = (
            f"Measured live on **{where}** ({hw.get('device')}, torch {hw.get('torch')}, "
            f"{hw.get('torch_threads')} threads, batch {event['batch_size']}, {self.protocol.get('dtype', '')}); "
            f"prompt {event['prompt_tokens'][0]} tokens, CoT cap {event['max_new_tokens']} tokens. "
            f"Each lane ran {event.get('warmup', 0)} warm-up + {repeats} timed runs, one at a time, in rotating "
            f"order; the CoT text is from its first timed run (CoT reads [EMBED] by "
            f"{self.protocol.get('cot_read') or 're-read'}). " + self.other_work_text()
        )
        for lane in event["lanes"]:
            self.elapsed_ms[lane], self.done[lane] = 0.0, False

    def other_work_text(self) -> str:
        if not self.other_work:
            return "Nothing else ran in the app meanwhile."
        return "**Disturbed**: also running meanwhile: " + "; ".join(self.other_work) + "."

    def _done(self, event: dict[str, Any]) -> None:
        ms = event["ms_per_item"]
        self.numbers = (
            f"**CoT {ms['cot']:.1f} ms vs latent {ms['latent']:.1f} ms: {slowdown(event):.1f}x slower**, "
            f"{event['cot_tokens']:.0f} rationale tokens (medians of {event.get('repeats', 1)} runs)."
        )
        if event.get("latent_vs_discriminative"):
            self.numbers += f" Latent / discriminative (K=0): {event['latent_vs_discriminative']:.2f}x."
        if event.get("sequential_vs_latent"):
            self.numbers += f" Sequential latent / latent: {event['sequential_vs_latent']:.2f}x."
        self.finished = True

    def lane_lines(self) -> str:
        """Per lane: median ms, the spread of its runs, and its top result from the corpus (right or wrong)."""
        lines = []
        for lane, runs in self.runs_ms.items():
            if not runs:
                continue
            line = f"- **{LANE_NAMES.get(lane, lane)}**: {self.elapsed_ms.get(lane, 0.0):.1f} ms"
            if len(runs) > 1:
                line += f" (median of {len(runs)}, {min(runs):.1f}-{max(runs):.1f})"
            answer = self.answers.get(lane)
            if answer:
                verdict = {True: " (right)", False: " (wrong)"}.get(answer.get("right"), "")
                line += f", top result '{answer['text']}'{verdict}"
            if lane == "sequential" and not self.lanes_info.get(lane, {}).get("trained_for_mode", True):
                line += "; this model was not trained for sequential steps"
            lines.append(line)
        return "\n".join(lines)

    def recorded_note(self, records: list[dict[str, Any]]) -> str:
        """A visible note for each live lane more than 15% from the recorded median of the same protocol."""
        threads = self.protocol.get("torch_threads")
        same = [r for r in records if r.get("threads") == threads and (r.get("batch_size") or 1) == 1
                and r["card"] == self.card]
        if not same or not self.finished:
            return ""
        recorded, notes = same[-1], []
        for lane, ms in self.elapsed_ms.items():
            ref = recorded["ms_per_item"].get(lane)
            if ref and abs(ms / ref - 1.0) > DISAGREE:
                notes.append(f"{lane} {ms:.1f} ms live vs {ref:.1f} ms recorded ({ms / ref:.2f}x)")
        if not notes:
            return f"Live medians within 15% of the recorded `{recorded['file']}` ({threads} threads, batch 1)."
        cause = "other work was running" if self.other_work else "the machine is busier (or quieter) than when it was recorded"
        return (f"**Differs from the recorded `{recorded['file']}` ({threads} threads, batch 1)**: " + "; ".join(notes)
                + f". Likely cause: {cause}; a first race after start-up also runs colder.")


def recorded_markdown(records: list[dict[str, Any]]) -> str:
    """Recorded race benchmarks, labelled as recorded (card or CPU, dtype, date), and whether a GPU one exists."""
    lines = []
    if records:
        lines += [
            "**Recorded (not live) race benchmarks** (`python -m lame_tools bench race`, many inputs, median per item):",
            "",
            "| hardware | threads | dtype | date | batch | ms per item |",
            "|---|---|---|---|---|---|",
        ]
        for r in records:
            lanes = ", ".join(f"{lane} {ms:.1f}" for lane, ms in r["ms_per_item"].items())
            lines.append(f"| {r['card']} | {r.get('threads') or ''} | {r['dtype']} | {r['date']} | "
                         f"{r.get('batch_size') or ''} | {lanes} |")
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


# ---- what else runs in the app, and whether a lane's answer is right ---------------------------

# The app's background threads, by the names `DemoService.prepare_in_background` and `MapActions.start_map`
# give them.
BACKGROUND_THREADS = {"prepare-corpus": "start-up work (warm-up, corpus embedding)", "umap-": "a UMAP map fit"}


def background_work() -> list[str]:
    """What the app's background threads are doing now (empty when none runs)."""
    import threading

    found = []
    for thread in threading.enumerate():
        for prefix, what in BACKGROUND_THREADS.items():
            if thread.is_alive() and thread.name.startswith(prefix):
                found.append(what + (f" ({thread.name[len(prefix):]} mode)" if prefix.endswith("-") else ""))
    return found


def wait_for_background(timeout_s: float, poll_s: float = 0.1) -> tuple[list[str], list[str], float]:
    """Wait at most `timeout_s` until no background thread runs.

    Returns:
        (what ran when the wait began, what still runs at its end, seconds waited).
    """
    import time

    started = time.perf_counter()
    first = running = background_work()
    while running and time.perf_counter() - started < timeout_s:
        time.sleep(poll_s)
        running = background_work()
    return first, running, time.perf_counter() - started


def known_answer(examples: list[dict[str, Any]], image: Any, text: str | None, instruction: str,
                 instructions: dict[str, str]) -> str | None:
    """The answer of the corpus example this query is (same text, task and image pixels), else None."""
    import numpy as np
    from PIL import Image

    pixels = None if image is None else np.asarray(image.convert("RGB"))
    for example in examples:
        if (example["text"] or None) != (text or None) or instructions.get(example["task"]) != instruction:
            continue
        if (example["image"] is None) != (pixels is None):
            continue
        if pixels is not None:
            with Image.open(example["image"]) as shown:
                other = np.asarray(shown.convert("RGB"))
            if other.shape != pixels.shape or not np.array_equal(other, pixels):
                continue
        return example["answer"]
    return None
