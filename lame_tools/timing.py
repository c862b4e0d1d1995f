"""Timing: the latency harness, the race benchmark and the live race generator.

- `run_lane(adapter, ...)`: one batch through one lane (an `EmbeddingAdapter`: a LaME mode, UME-R1,
  a last-token embedder), timed per stage (pre-processing, prefill, decode steps, pooling / re-read)
  with the device synchronised at each boundary; no hooks, attention as loaded (sdpa).
- `bench_race(lanes, n, batch_sizes)`: the lanes on the same inputs, warm-up, rotating alternation,
  per-item and per-batch median / p90, CoT tokens, the latent/discriminative ratio beside its
  physical floor (L+K+1)/(L+1); `python -m lame_tools bench race` prints it and writes JSON.
- `race(...)`: a generator for the app that yields events while the lanes really run.
- `bench_encode`: `encode()` against a bare backbone forward (`python -m lame_tools bench encode`).

Benchmarks print a table and write JSON; tests never assert on their timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from lame_tools.adapters import EmbeddingAdapter, as_adapter
from lame_tools.atomic import atomic_write_json
from lame_tools.errors import InputError


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


class _Stopwatch:
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


class _StopOnEvent(StoppingCriteria):
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
        watch = _Stopwatch(adapter.device)
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
            criteria = StoppingCriteriaList([_StopOnEvent(stop_event)]) if stop_event is not None else None
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


# ---- the offline race benchmark ------------------------------------------------------------------

LANE_ORDER = ("latent", "discriminative", "cot")


def race_inputs(n: int, seed: int = 0, split: str = "test") -> tuple[list[Any], list[str | None], list[str]]:
    """The first `n` query sides of a Shapes split: (images or None, texts or None, instructions).
    A mix of all four meta-tasks, images and text-only queries, so prompt lengths vary."""
    from lame_tools.data.shapes import make_example, render

    examples = [make_example(seed, split, i) for i in range(n)]
    images = [render(e.scene) if e.query_has_image else None for e in examples]
    texts = [e.query_text or None for e in examples]
    return images, texts, [e.instruction for e in examples]


def physical_floor(prompt_tokens: float, k: int) -> float:
    """The latent/discriminative cost ratio from the extra tokens alone: (L + K + 1) / (L + 1)."""
    return (prompt_tokens + k + 1) / (prompt_tokens + 1)


def _lane_summary(runs: list[LaneRun], batch_size: int) -> dict[str, Any]:
    item_ms = [r.total_ms / r.batch_size for r in runs]
    batch_ms = [r.total_ms for r in runs]
    item = summarize(item_ms)
    stages = sorted({s for r in runs for s in r.stages_ms})
    tokens = [t for r in runs for t in r.generated_tokens]
    summary: dict[str, Any] = {
        "median": item["median"],
        "p90": item["p90"],
        "item_ms": item,
        "batch_ms": summarize(batch_ms),
        "items_per_s": batch_size / float(np.median(batch_ms)) * 1000.0,
        "stages_ms": {s: float(np.median([r.stages_ms.get(s, 0.0) for r in runs])) for s in stages},
        "prompt_tokens_mean": float(np.mean([x for r in runs for x in r.prompt_lengths])),
        "row_tokens_mean": float(np.mean([x for r in runs for x in r.row_lengths])),
        "padded_prompt_tokens_mean": float(np.mean([max(r.prompt_lengths) for r in runs])),
        "batches": len(runs),
        "item_ms_samples": [round(x, 4) for x in item_ms],  # in input order (batch i = inputs i*bs ...)
    }
    if any(r.decode_steps for r in runs):
        generate_ms = [r.stages_ms["prefill"] + r.stages_ms["decode"] for r in runs]
        summary["generated_tokens"] = summarize(tokens)
        summary["decode_steps"] = summarize([r.decode_steps for r in runs])
        summary["decode_ms_per_step"] = float(
            np.median([r.stages_ms["decode"] / max(r.decode_steps - 1, 1) for r in runs])
        )
        summary["tokens_per_s"] = float(sum(tokens) / (sum(generate_ms) / 1000.0)) if sum(generate_ms) else 0.0
        # without the embedding read after generation: the floor for any CoT implementation that
        # reads its embedding token from the KV cache instead of a re-read pass
        summary["median_without_read"] = float(np.median([(r.total_ms - r.stages_ms["read"]) / r.batch_size for r in runs]))
    return summary


def _compare(lanes: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    """Speedups and the latent/discriminative ratio beside its physical floor."""
    out: dict[str, Any] = {}
    if "cot" in lanes and "latent" in lanes:
        out["speedup_cot_vs_latent"] = lanes["cot"]["median"] / lanes["latent"]["median"]
        out["cot_tokens_mean"] = lanes["cot"].get("generated_tokens", {}).get("mean", 0.0)
        if "median_without_read" in lanes["cot"]:
            out["speedup_cot_without_read_vs_latent"] = lanes["cot"]["median_without_read"] / lanes["latent"]["median"]
    if "cot" in lanes and "discriminative" in lanes:
        out["speedup_cot_vs_discriminative"] = lanes["cot"]["median"] / lanes["discriminative"]["median"]
    if "latent" in lanes and "discriminative" in lanes:
        ratio = lanes["latent"]["median"] / lanes["discriminative"]["median"]
        forward_ratio = lanes["latent"]["stages_ms"]["prefill"] / lanes["discriminative"]["stages_ms"]["prefill"]
        floor = physical_floor(lanes["discriminative"]["prompt_tokens_mean"], k)
        floor_padded = physical_floor(lanes["discriminative"]["padded_prompt_tokens_mean"], k)
        out.update(
            {
                "latent_vs_discriminative": ratio,
                "latent_vs_discriminative_prefill_only": forward_ratio,
                "physical_floor": floor,
                "physical_floor_padded": floor_padded,
                "K": k,
                "ratio_over_floor": ratio / floor_padded,
                "within_5pct_of_floor": bool(ratio <= 1.05 * floor_padded),
            }
        )
    return out


def bench_race(
    lanes: dict[str, EmbeddingAdapter],
    n: int = 200,
    batch_sizes: tuple[int, ...] = (1, 32),
    warmup: int = 1,
    max_new_tokens: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    min_rounds: int = 1,
) -> dict[str, Any]:
    """Time the lanes on the same `n` Shapes queries at each batch size.

    Protocol: `warmup` untimed runs of every lane on the first batch, then one round per batch of
    inputs in which every lane runs once; the lane order rotates each round (A B C, B C A, ...) so no
    lane always runs first or right after another. Only full batches are timed (n // batch_size);
    the batches are cycled until there are at least `min_rounds` rounds (large batches are few).
    Per-item ms = batch ms / batch size; median and p90 over the rounds.

    Returns:
        JSON-ready dict: hardware, lane descriptions, per batch size the per-lane summaries
        (median / p90 ms per item, stages, CoT tokens) and the comparisons, plus `lanes`:
        {lane: {median, p90 (ms per item at the first batch size), batch_size,
        by_batch_size: {size: {median, p90}}}}.
    """
    images, texts, instructions = race_inputs(n, seed)
    device = next(iter(lanes.values())).device
    k = max((a.num_reason_tokens for a in lanes.values()), default=0)
    results = []
    for bs in batch_sizes:
        bs_eff = min(bs, n)
        batches = list(range(0, n - bs_eff + 1, bs_eff))
        starts = batches * -(-max(min_rounds, 1) // len(batches))

        def batch(start: int, size: int = bs_eff) -> tuple[list, list, list]:
            return images[start : start + size], texts[start : start + size], instructions[start : start + size]

        for _ in range(warmup):
            for adapter in lanes.values():
                run_lane(adapter, *batch(0), max_new_tokens=max_new_tokens)
        runs: dict[str, list[LaneRun]] = {name: [] for name in lanes}
        names = list(lanes)
        for r, start in enumerate(starts):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                runs[name].append(run_lane(lanes[name], *batch(start), max_new_tokens=max_new_tokens))
            if log and (r + 1) % max(1, len(starts) // 5) == 0:
                log(f"batch {bs_eff}: {r + 1}/{len(starts)} rounds")
        summaries = {name: _lane_summary(runs[name], bs_eff) for name in lanes}
        results.append({"batch_size": bs_eff, "lanes": summaries, **_compare(summaries, k)})
    return {
        "benchmark": "race",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hardware": hardware_info(device),
        "config": {"n": n, "batch_sizes": list(batch_sizes), "warmup": warmup, "max_new_tokens": max_new_tokens,
                   "min_rounds": min_rounds, "torch_threads": torch.get_num_threads(),
                   "seed": seed, "inputs": "Shapes test split, query side, all four meta-tasks"},
        "lanes_info": {name: a.describe() for name, a in lanes.items()},
        "results": results,
        "lanes": {name: _lane_headline(name, results) for name in lanes},
        "dtype": ", ".join(sorted({a.describe()["dtype"] for a in lanes.values()})),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "unit": "ms per item (batch time / batch size)",
    }


def _lane_headline(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """{median, p90} ms per item at the first batch size, and the same per batch size."""
    by_size = {str(r["batch_size"]): {"median": r["lanes"][name]["median"], "p90": r["lanes"][name]["p90"]}
               for r in results}
    first = str(results[0]["batch_size"])
    return {**by_size[first], "batch_size": int(first), "by_batch_size": by_size}


def format_race_table(report: dict[str, Any]) -> str:
    """The race report as a plain-text table (one row per batch size and lane)."""
    hw = report["hardware"]
    where = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('torch_threads')} threads)"
    lines = [f"race on {where}; torch {hw.get('torch')}, transformers {hw.get('transformers')}",
             f"{'batch':>5}  {'lane':<15} {'ms/item':>9} {'p90':>9} {'items/s':>9} {'cot tok':>8}  stages (ms per batch, median)"]
    for r in report["results"]:
        for name, lane in r["lanes"].items():
            tokens = lane.get("generated_tokens", {}).get("mean")
            stages = ", ".join(f"{s} {v:.1f}" for s, v in lane["stages_ms"].items() if v >= 0.05)
            lines.append(
                f"{r['batch_size']:>5}  {name:<15} {lane['median']:>9.2f} {lane['p90']:>9.2f} "
                f"{lane['items_per_s']:>9.1f} {'' if tokens is None else f'{tokens:.1f}':>8}  {stages}"
            )
        notes = []
        if "speedup_cot_vs_latent" in r:
            notes.append(f"cot/latent {r['speedup_cot_vs_latent']:.1f}x at {r['cot_tokens_mean']:.1f} cot tokens")
        if "latent_vs_discriminative" in r:
            notes.append(
                f"latent/discriminative {r['latent_vs_discriminative']:.3f} "
                f"(floor (L+K+1)/(L+1) = {r['physical_floor']:.3f}, padded {r['physical_floor_padded']:.3f}, K={r['K']})"
            )
        if notes:
            lines.append("       " + "; ".join(notes))
    agreement = report.get("generator_agreement")
    if agreement:
        parts = [f"{lane} {v['ratio']:.2f}" for lane, v in agreement["lanes"].items()]
        lines.append(f"race() generator / offline median at batch 1 ({agreement['items']} items): " + ", ".join(parts))
    return "\n".join(lines)


# ---- the live race generator (for the app) -------------------------------------------------------


def race(
    latent: Any = None,
    cot: Any = None,
    discriminative: Any = None,
    images: list[Any] | None = None,
    texts: list[str | None] | None = None,
    instruction: Any = None,
    *,
    max_new_tokens: int | None = None,
    warmup: int = 1,
) -> Iterator[dict[str, Any]]:
    """Race the latent lane against the explicit-CoT lane on the same inputs, yielding events.

    Really measured, never simulated: every number is a wall-clock reading of the lane that ran
    (`run_lane`, the same code as the offline benchmark). The lanes run one after another, never at
    once, so neither steals the other's cores: first the latent lane (one pass; too short to stream,
    it reports when done), then the discriminative lane if given, then the CoT lane, whose
    generation runs in a worker thread and streams its text token by token while its clock runs.
    `warmup` untimed runs of each lane (CoT capped at 2 new tokens) happen after the `start` event.

    Args:
        latent / cot / discriminative: a `LameModel`, a LaME folder, or an `EmbeddingAdapter`. A
            LaME model runs in the lane's mode. None: the shipped model for that lane (latent, cot);
            discriminative None: no discriminative lane.
        images / texts / instruction: the inputs (aligned lists, as `LameModel.encode`; one
            instruction or one per input); all None: one Shapes test query.
        max_new_tokens: the CoT cap (default: the CoT model's own).
        warmup: untimed runs of each lane before timing.

    Yields dicts; every event has "event" and "t_ms" (ms since the race started):
        {"event": "start", "lanes": [names in run order], "batch_size": int,
         "prompt_tokens": [per row], "max_new_tokens": int, "hardware": {...},
         "lanes_info": {lane: {...}}}
        {"event": "lane_start", "lane": name}
        {"event": "token", "lane": "cot", "elapsed_ms": float (since the CoT lane began),
         "tokens": int (row 0's generated tokens so far), "text": str (row 0's rationale so far),
         "tokens_per_s": float, "speedup": float (elapsed_ms / latent lane ms: how many latent
         embeddings fit in the time so far)}      -- one per decoding step
        {"event": "lane_done", "lane": name, "elapsed_ms": float (whole lane, batch),
         "ms_per_item": float, "stages_ms": {...}, "tokens": int (row 0; 0 for one-pass),
         "tokens_per_row": [int], "text": str | None (row 0's rationale, CoT only),
         "tokens_per_s": float | None, "embedding_dim": int}
        {"event": "done", "elapsed_ms": {lane: float}, "ms_per_item": {lane: float},
         "speedup": float (cot / latent), "latent_vs_discriminative": float | None,
         "cot_tokens": float (mean per row), "text": str (row 0's rationale)}

    Closing the generator early stops the CoT generation at its next step.
    """
    from lame_tools import SHIPPED_MODELS

    t0 = time.perf_counter()

    def stamp(event: dict[str, Any]) -> dict[str, Any]:
        event["t_ms"] = (time.perf_counter() - t0) * 1000.0
        return event

    lanes: dict[str, EmbeddingAdapter] = {"latent": as_adapter(latent or SHIPPED_MODELS["latent"], "latent", "latent")}
    if discriminative is not None:
        lanes["discriminative"] = as_adapter(discriminative, "discriminative", "discriminative")
    lanes["cot"] = as_adapter(cot or SHIPPED_MODELS["cot"], "cot", "cot")
    if images is None and texts is None:
        images, texts, instruction = (x[:1] for x in race_inputs(1))
    cot_lane = lanes["cot"]
    cap = max_new_tokens or cot_lane.max_new_tokens
    prepared = cot_lane.prepare(images, texts, instruction)
    yield stamp({
        "event": "start",
        "lanes": list(lanes),
        "batch_size": prepared.batch_size,
        "prompt_tokens": prepared.prompt_lengths,
        "max_new_tokens": cap,
        "hardware": hardware_info(cot_lane.device),
        "lanes_info": {name: a.describe() for name, a in lanes.items()},
    })
    for _ in range(warmup):
        for adapter in lanes.values():
            run_lane(adapter, images, texts, instruction, max_new_tokens=2 if adapter.generative else None)

    elapsed: dict[str, float] = {}
    per_item: dict[str, float] = {}
    for name, adapter in lanes.items():
        if adapter.generative:
            continue
        yield stamp({"event": "lane_start", "lane": name})
        run = run_lane(adapter, images, texts, instruction)
        elapsed[name], per_item[name] = run.total_ms, run.total_ms / run.batch_size
        yield stamp({
            "event": "lane_done", "lane": name, "elapsed_ms": run.total_ms, "ms_per_item": per_item[name],
            "stages_ms": run.stages_ms, "tokens": 0, "tokens_per_row": run.generated_tokens, "text": None,
            "tokens_per_s": None, "embedding_dim": int(run.embeddings.shape[-1]),
        })

    yield stamp({"event": "lane_start", "lane": "cot"})
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    lane_start = time.perf_counter()

    def on_token(tokens: list[int], now: float) -> None:
        events.put(("token", tokens[0], now))

    def work() -> None:
        try:
            events.put(("done", run_lane(cot_lane, images, texts, instruction, max_new_tokens=cap,
                                         on_token=on_token, stop_event=stop), None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            events.put(("error", exc, None))

    worker = threading.Thread(target=work, name="race-cot", daemon=True)
    worker.start()
    latent_ms = elapsed["latent"]
    stops = _stop_ids(cot_lane)
    row0: list[int] = []
    row0_done = False
    try:
        while True:
            kind, payload, now = events.get()
            if kind == "error":
                raise payload
            if kind == "done":
                run: LaneRun = payload
                break
            if row0_done:
                continue
            if payload in stops:
                row0_done = True
                continue
            row0.append(payload)
            lane_ms = (now - lane_start) * 1000.0
            yield stamp({
                "event": "token", "lane": "cot", "elapsed_ms": lane_ms, "tokens": len(row0),
                "text": cot_lane.decode(row0), "tokens_per_s": len(row0) / max(lane_ms, 1e-9) * 1000.0,
                "speedup": lane_ms / latent_ms,
            })
    finally:
        stop.set()
        worker.join()
    text = cot_lane.decode(run.generated_ids[0]) if run.generated_ids else ""
    gen_ms = run.stages_ms.get("prefill", 0.0) + run.stages_ms.get("decode", 0.0)
    elapsed["cot"], per_item["cot"] = run.total_ms, run.total_ms / run.batch_size
    yield stamp({
        "event": "lane_done", "lane": "cot", "elapsed_ms": run.total_ms, "ms_per_item": per_item["cot"],
        "stages_ms": run.stages_ms, "tokens": run.generated_tokens[0], "tokens_per_row": run.generated_tokens,
        "text": text, "tokens_per_s": sum(run.generated_tokens) / gen_ms * 1000.0 if gen_ms else None,
        "embedding_dim": int(run.embeddings.shape[-1]),
    })
    yield stamp({
        "event": "done", "elapsed_ms": elapsed, "ms_per_item": per_item,
        "speedup": per_item["cot"] / per_item["latent"],
        "latent_vs_discriminative": per_item["latent"] / per_item["discriminative"] if "discriminative" in per_item else None,
        "cot_tokens": float(np.mean(run.generated_tokens)), "text": text,
    })


def _stop_ids(adapter: EmbeddingAdapter) -> set[int]:
    """Token ids that end a rationale (row 0's streamed text stops there; later steps are padding)."""
    ids = getattr(adapter, "stop_token_ids", None)
    if ids is not None:
        return set(ids)
    processor = adapter.model.processor
    return {processor.embed_token_id, processor.eos_token_id, processor.pad_id}


def generator_agreement(lanes: dict[str, EmbeddingAdapter], report: dict[str, Any] | None = None, items: int = 20,
                        max_new_tokens: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Check that `race()` measures what the offline harness measures, on the same inputs.

    For each of the first `items` inputs (batch 1), the offline lanes (`run_lane`, as in
    `bench_race`) and a full `race()` run back to back, so both see the same machine load; the
    per-lane medians are compared (ratio race / offline; within 15% counts as agreement). The
    benchmark's own batch-1 median over the same inputs is reported beside them when `report` is given.
    """
    images, texts, instructions = race_inputs(items, seed)
    race_ms: dict[str, list[float]] = {name: [] for name in lanes}
    offline_ms: dict[str, list[float]] = {name: [] for name in lanes}
    names = list(lanes)
    for i in range(items):
        one = (images[i : i + 1], texts[i : i + 1], instructions[i : i + 1])
        for name in names[i % len(names) :] + names[: i % len(names)]:
            offline_ms[name].append(run_lane(lanes[name], *one, max_new_tokens=max_new_tokens).total_ms)
        for event in race(lanes["latent"], lanes["cot"], lanes.get("discriminative"), *one,
                          max_new_tokens=max_new_tokens, warmup=0):
            if event["event"] == "done":
                for name, ms in event["ms_per_item"].items():
                    race_ms[name].append(ms)
    bench = next((r for r in (report or {}).get("results", []) if r["batch_size"] == 1), None)
    out: dict[str, Any] = {"items": items, "lanes": {}}
    for name in lanes:
        entry = {"race_median_ms": float(np.median(race_ms[name])), "offline_median_ms": float(np.median(offline_ms[name]))}
        entry["ratio"] = entry["race_median_ms"] / entry["offline_median_ms"]
        entry["within_15pct"] = bool(abs(entry["ratio"] - 1.0) <= 0.15)
        if bench is not None:
            entry["bench_median_ms_same_inputs"] = float(np.median(bench["lanes"][name]["item_ms_samples"][:items]))
        out["lanes"][name] = entry
    return out


def bench_encode(model, batch_sizes=(1, 8, 32), rounds: int = 10, warmup: int = 2, mode: str | None = None) -> dict:
    """Items/s of `encode()` (decode + pre-processing + forward + pooling) against a bare backbone
    forward on the same pre-processed tensors, per batch size; their ratio is our overhead."""
    from lame_tools.data.shapes import make_example, render

    mode = mode or model.config.default_mode
    if mode == "cot":
        raise ValueError("bench encode measures the one-pass modes; the race benchmark times cot")
    examples = [make_example(0, "test", i) for i in range(max(batch_sizes))]
    images = [render(e.scene) for e in examples]
    texts = [e.query_text or None for e in examples]
    results = []
    for bs in batch_sizes:
        items = model.make_items(images[:bs], texts[:bs], examples[0].instruction)
        batch = {k: v.to(model.device) for k, v in model.processor(items, model.suffix_ids(mode)).items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.backbone.dtype)

        @torch.no_grad()
        def bare(batch=batch) -> None:
            model.backbone.model(**batch, use_cache=False)

        def full(bs=bs) -> None:
            model.encode(images=images[:bs], texts=texts[:bs], instruction=examples[0].instruction, batch_size=bs, mode=mode)

        samples = time_alternating({"encode": full, "backbone": bare}, rounds, warmup, model.device)
        enc, bb = summarize(samples["encode"]), summarize(samples["backbone"])
        results.append(
            {
                "batch_size": bs,
                "encode_ms": enc,
                "backbone_ms": bb,
                "encode_items_per_s": bs / enc["median"] * 1000.0,
                "backbone_items_per_s": bs / bb["median"] * 1000.0,
                "overhead_ratio": enc["median"] / bb["median"],
                "tokens_per_row": int(batch["input_ids"].shape[1]),
            }
        )
    return {"benchmark": "encode", "mode": mode, "hardware": hardware_info(model.device), "results": results}


def _bench_encode_cli(args: argparse.Namespace) -> int:
    from lame_tools.model import LameModel

    model = LameModel.from_pretrained(args.model, device=args.device)
    report = bench_encode(model, tuple(args.batch_sizes), rounds=args.rounds, warmup=args.warmup, mode=args.mode)
    print(f"encode benchmark ({report['mode']} mode) on {report['hardware']['cpu']} / {report['hardware']['device']}")
    print(f"{'batch':>5}  {'encode it/s':>12}  {'backbone it/s':>13}  {'ratio':>6}  {'encode p90 ms':>13}")
    for r in report["results"]:
        print(
            f"{r['batch_size']:>5}  {r['encode_items_per_s']:>12.1f}  {r['backbone_items_per_s']:>13.1f}  "
            f"{r['overhead_ratio']:>6.2f}  {r['encode_ms']['p90']:>13.2f}"
        )
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.cli.common import add_model_argument

    bench = subparsers.add_parser("bench", help="benchmarks (print a table, write JSON)")
    verbs = bench.add_subparsers(dest="bench_verb", required=True)
    encode = verbs.add_parser("encode", help="encode() vs bare backbone forward, items/s at several batch sizes")
    add_model_argument(encode)
    encode.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    encode.add_argument("--rounds", type=int, default=10)
    encode.add_argument("--warmup", type=int, default=2)
    encode.add_argument("--mode", choices=("latent", "discriminative"), default=None)
    encode.add_argument("--out", type=Path, default=None, help="JSON output file")
    encode.set_defaults(func=_bench_encode_cli)
    _add_race_parser(verbs)


def _bench_race_cli(args: argparse.Namespace) -> int:
    from lame_tools.adapters import load_lane

    if args.threads:
        torch.set_num_threads(args.threads)

    lanes: dict[str, EmbeddingAdapter] = {}
    for lane, path, kind in (
        ("latent", args.lame, args.lame_kind),
        ("discriminative", args.discriminative, args.discriminative_kind),
        ("cot", args.cot, args.cot_kind),
    ):
        if path is None or str(path).lower() == "none":
            continue
        lanes[lane] = load_lane(
            lane, path, kind, device=args.device, allow_hub=args.allow_hub, trust_remote_code=args.trust_remote_code
        )
    if not lanes:
        raise InputError("Give at least one lane (--lame, --discriminative or --cot).")
    report = bench_race(
        lanes, n=args.n, batch_sizes=tuple(args.batch_sizes), warmup=args.warmup, max_new_tokens=args.max_new_tokens,
        log=lambda line: print(line, flush=True), min_rounds=args.min_rounds,
    )
    if args.agreement_items and "latent" in lanes and "cot" in lanes and 1 in args.batch_sizes:
        report["generator_agreement"] = generator_agreement(
            lanes, report, items=min(args.agreement_items, args.n), max_new_tokens=args.max_new_tokens
        )
    print(format_race_table(report))
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _add_race_parser(verbs: argparse._SubParsersAction) -> None:
    from lame_tools import SHIPPED_MODELS
    from lame_tools.adapters import ADAPTER_KINDS

    race_parser = verbs.add_parser(
        "race",
        help="time latent vs explicit-CoT vs discriminative inference on the same inputs",
        description="Each lane is a model folder (or a hub id with --allow-hub) run in the mode of its lane. "
        "Defaults: the three shipped models. Pass 'none' to drop a lane.",
    )
    race_parser.add_argument("--lame", default=str(SHIPPED_MODELS["latent"]), help="latent lane model")
    race_parser.add_argument("--discriminative", default=str(SHIPPED_MODELS["discriminative"]))
    race_parser.add_argument("--cot", default=str(SHIPPED_MODELS["cot"]), help="explicit-CoT lane model")
    for flag, default in (("--lame-kind", "lame"), ("--discriminative-kind", "lame"), ("--cot-kind", "lame")):
        race_parser.add_argument(flag, choices=ADAPTER_KINDS, default=default, help=f"adapter (default {default})")
    race_parser.add_argument("--device", default=None)
    race_parser.add_argument("--threads", type=int, default=None,
                             help="torch CPU threads (1 is steadiest on a shared machine; default: torch's)")
    race_parser.add_argument("--n", type=int, default=200, help="inputs (Shapes test queries)")
    race_parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    race_parser.add_argument("--warmup", type=int, default=1)
    race_parser.add_argument("--min-rounds", type=int, default=20,
                             help="cycle the batches until each batch size has this many rounds (default 20)")
    race_parser.add_argument("--max-new-tokens", type=int, default=None, help="CoT cap (default: the model's)")
    race_parser.add_argument("--agreement-items", type=int, default=20,
                             help="also run the race() generator on this many inputs at batch 1 and compare (0: skip)")
    race_parser.add_argument("--allow-hub", action="store_true", help="allow hub ids (downloads)")
    race_parser.add_argument("--trust-remote-code", action="store_true")
    race_parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    race_parser.set_defaults(func=_bench_race_cli)


def _versus_floor(result: dict[str, Any]) -> str:
    over = result["latent_vs_discriminative"] / result["physical_floor_padded"] - 1.0
    if over <= 0:
        return "at or below the floor (target: within 5% of it)"
    return f"{over * 100:.1f}% above the floor ({'within' if over <= 0.05 else 'outside'} the 5% target)"


def race_markdown(report: dict[str, Any], title: str | None = None) -> str:
    """The race report as a Markdown table (for the README): ms per item, CoT tokens, speedups,
    latent/discriminative beside its floor, one row per batch size and lane."""
    hw = report["hardware"]
    info = report.get("lanes_info", {})
    dtype = {d.get("dtype") for d in info.values()}
    where = hw.get("gpu") or f"{hw.get('cpu')}, torch threads: {hw.get('torch_threads')}"
    lines = [title or f"{where}; {', '.join(sorted(d for d in dtype if d))}; {report.get('created', '')[:10]}", "",
             "| batch | lane | ms / item (median) | p90 | items / s | CoT tokens (mean) | vs latent |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        latent = r["lanes"].get("latent", {}).get("median")
        for name in sorted(r["lanes"], key=lambda lane: LANE_ORDER.index(lane) if lane in LANE_ORDER else 9):
            lane = r["lanes"][name]
            tokens = lane.get("generated_tokens", {}).get("mean")
            ratio = f"{lane['median'] / latent:.2f}x" if latent else ""
            lines.append(f"| {r['batch_size']} | {name} | {lane['median']:.2f} | {lane['p90']:.2f} | "
                         f"{lane['items_per_s']:.1f} | {'' if tokens is None else f'{tokens:.1f}'} | {ratio} |")
    lines.append("")
    for r in report["results"]:
        if "latent_vs_discriminative" in r:
            lines.append(
                f"- batch {r['batch_size']}: latent / discriminative = {r['latent_vs_discriminative']:.3f} "
                f"(prefill only {r['latent_vs_discriminative_prefill_only']:.3f}); physical floor "
                f"(L+K+1)/(L+1) = {r['physical_floor']:.3f} for L = "
                f"{r['lanes']['discriminative']['prompt_tokens_mean']:.1f}, K = {r['K']} "
                f"({r['physical_floor_padded']:.3f} for the padded batch length): {_versus_floor(r)}"
            )
        if "speedup_cot_vs_latent" in r:
            without = r.get("speedup_cot_without_read_vs_latent")
            lines.append(f"- batch {r['batch_size']}: CoT / latent = {r['speedup_cot_vs_latent']:.1f}x "
                         f"at {r['cot_tokens_mean']:.1f} generated CoT tokens per item"
                         + (f" ({without:.1f}x without the re-read pass)" if without else ""))
    return "\n".join(lines)
