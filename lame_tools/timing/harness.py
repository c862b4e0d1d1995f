"""The latency harness: one timed run of one lane, split into stages, and the pieces it is made of.

- `run_lane(adapter, ...)`: one batch through one lane (an `EmbeddingAdapter`: a LaME mode, UME-R1,
  a last-token embedder), timed per stage (pre-processing, prefill, decode steps, pooling / re-read)
  with the device synchronised at each boundary; no hooks, attention as loaded (sdpa).
- `Stopwatch` (device-synchronised laps), `StepStreamer` (a transformers streamer that timestamps
  each decoding step), `StopOnEvent` (a stopping criterion that abandons generation).
- `time_alternating` (callables timed in turns), `summarize` (median / p90 / mean / min),
  `hardware_info` (what the numbers were measured on).
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from lame_tools.adapters import EmbeddingAdapter


def summarize(samples: list[float]) -> dict[str, float]:
    """median, p90, mean, min of a list of durations (any unit), plus the count."""
    array = np.asarray(samples, dtype=np.float64)
    return {
        "median": float(np.median(array)),
        "p90": float(np.percentile(array, 90)),
        "mean": float(array.mean()),
        "min": float(array.min()),
        "n": int(array.size),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hardware_info(device: torch.device | None = None) -> dict[str, Any]:
    """What the numbers were measured on: CPU model and threads, or GPU name, plus library versions."""
    import transformers

    device = device or torch.device("cpu")
    info: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_model(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_alternating(
    lanes: dict[str, Callable[[], Any]], rounds: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Run each lane `warmup` times, then `rounds` rounds of A, B, C, ... (alternating); ms per call."""
    for _ in range(warmup):
        for fn in lanes.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in lanes}
    for _ in range(rounds):
        for name, fn in lanes.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1000.0)
    return samples


# ---- one timed run of one lane, split into stages ------------------------------------------------


class Stopwatch:
    """Wall-clock laps, synchronised with the device before each reading (CUDA kernels are async)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        synchronize(device)
        self.start = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> float:
        synchronize(self.device)
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self.last) * 1000.0
        self.last = now
        return now


class StepStreamer(BaseStreamer):
    """A transformers streamer that only timestamps: when `generate()` hands over the prompt and each
    new token (one `put` per decoding step, all rows at once). `on_token(tokens, now)` is called with
    the step's token ids (one per row) if given; keep it cheap, it runs on the timed path.

    `generate()` already waits for the device each step (its stop check reads a flag), so taking the
    tokens to the host here adds no extra synchronisation.
    """

    def __init__(self, on_token: Callable[[list[int], float], None] | None = None) -> None:
        self.on_token = on_token
        self.prompt_time: float | None = None
        self.token_times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        now = time.perf_counter()
        if self.prompt_time is None:
            self.prompt_time = now
            return
        self.token_times.append(now)
        if self.on_token is not None:
            self.on_token(value.reshape(-1).tolist(), now)

    def end(self) -> None:
        pass


class StopOnEvent(StoppingCriteria):
    """Stop generation when a threading.Event is set (a race abandoned by its consumer)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass
class LaneRun:
    """One timed run of one lane over one batch.

    stages_ms (per batch): one-pass lanes `preprocess` (decode inputs, build the batch, move it),
    `prefill` (the one forward pass, vision tower included), `pool`; generative lanes `preprocess`,
    `vision_and_setup` (generate() before it hands the prompt to the streamer: its setup and, for
    Qwen2-VL, the vision tower), `prefill` (the prompt pass and the first token), `decode` (all
    later steps), `generate_tail`, `read` (the embedding read after generation: LaME's re-read pass,
    or nearly nothing for UME-R1, which kept the state). The stages add up to `total_ms`.
    """

    total_ms: float
    stages_ms: dict[str, float]
    batch_size: int
    prompt_lengths: list[int]
    row_lengths: list[int]
    generated_tokens: list[int]
    decode_steps: int
    embeddings: torch.Tensor
    generated_ids: list[list[int]] | None = None


def run_lane(
    adapter: EmbeddingAdapter,
    images: list[Any] | None,
    texts: list[str | None] | None,
    instruction: Any,
    *,
    max_new_tokens: int | None = None,
    on_token: Callable[[list[int], float], None] | None = None,
    stop_event: threading.Event | None = None,
) -> LaneRun:
    """Embed one batch with one adapter and time each stage (no hooks; attention as loaded)."""
    with torch.no_grad():
        watch = Stopwatch(adapter.device)
        prepared = adapter.prepare(images, texts, instruction)
        watch.lap("preprocess")
        generated: list[list[int]] | None = None
        steps = 0
        if not adapter.generative:
            hidden = adapter.forward(prepared)
            watch.lap("prefill")
            embeddings = adapter.pool(prepared, hidden).float().cpu()
            watch.lap("pool")
        else:
            streamer = StepStreamer(on_token)
            criteria = StoppingCriteriaList([StopOnEvent(stop_event)]) if stop_event is not None else None
            generate_start = watch.last
            generated = adapter.generate(prepared, max_new_tokens, streamer, criteria)
            generate_end = watch.lap("generate")
            del watch.stages["generate"]
            prompt_time = streamer.prompt_time or generate_start
            times = streamer.token_times or [prompt_time]
            watch.stages["vision_and_setup"] = (prompt_time - generate_start) * 1000.0
            watch.stages["prefill"] = (times[0] - prompt_time) * 1000.0
            watch.stages["decode"] = (times[-1] - times[0]) * 1000.0
            watch.stages["generate_tail"] = (generate_end - times[-1]) * 1000.0
            steps = len(streamer.token_times)
            embeddings = adapter.read(prepared, generated).float().cpu()
            watch.lap("read")
        total = (watch.last - watch.start) * 1000.0
    return LaneRun(
        total_ms=total,
        stages_ms=dict(watch.stages),
        batch_size=prepared.batch_size,
        prompt_lengths=prepared.prompt_lengths,
        row_lengths=prepared.row_lengths,
        generated_tokens=[len(g) for g in generated] if generated is not None else [0] * prepared.batch_size,
        decode_steps=steps,
        embeddings=embeddings,
        generated_ids=generated,
    )
