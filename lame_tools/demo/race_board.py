"""`RaceBoard`: what the Race tab shows, updated from `lame_tools.timing.race` events.

It only reads the events' measured numbers (never invents or interpolates one) and keeps the state
the tab draws: per-lane elapsed ms and whether each lane is done, the CoT text so far, and three
short texts (latent lane, live numbers, hardware).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
                f"{event['speedup']:.1f}x the latent lane so far."
            )
        elif kind == "done":
            ms = event["ms_per_item"]
            self.numbers = (
                f"**CoT {ms['cot']:.1f} ms vs latent {ms['latent']:.1f} ms: {event['speedup']:.1f}x slower**, "
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
