"""The live race for the app: the latent lane against the explicit-CoT lane on the same inputs, as a
generator of events, every number a wall-clock reading of a lane that really ran (`run_lane`).

`race()` yields dicts; every event has "event" and "t_ms" (ms since the race started):
    {"event": "start", "lanes": [names in run order], "batch_size": int,
     "prompt_tokens": [per row], "max_new_tokens": int, "hardware": {...},
     "lanes_info": {lane: {...}}}
    {"event": "lane_start", "lane": name}
    {"event": "token", "lane": "cot", "elapsed_ms": float (since the CoT lane began),
     "tokens": int (row 0's generated tokens so far), "text": str (row 0's rationale so far),
     "tokens_per_s": float, "slowdown": float (elapsed_ms / latent lane ms: how many latent
     embeddings fit in the time so far)}      -- one per decoding step
    {"event": "lane_done", "lane": name, "elapsed_ms": float (whole lane, batch),
     "ms_per_item": float, "stages_ms": {...}, "tokens": int (row 0; 0 for one-pass),
     "tokens_per_row": [int], "text": str | None (row 0's rationale, CoT only),
     "tokens_per_s": float | None, "embedding_dim": int}
    {"event": "done", "elapsed_ms": {lane: float}, "ms_per_item": {lane: float},
     "slowdown": float (cot / latent ms per item), "latent_vs_discriminative": float | None,
     "cot_tokens": float (mean per row), "text": str (row 0's rationale)}

Deprecated alias: "token" and "done" events also carry "speedup", with the same value as
"slowdown" (the ratio is CoT time over latent time, how many times slower CoT is; the old name
stays so readers of recorded race JSON keep working).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from lame_tools.adapters import EmbeddingAdapter, as_adapter
from lame_tools.timing.harness import LaneRun, hardware_info, run_lane

Stamp = Callable[[dict[str, Any]], dict[str, Any]]


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

    Yields the events of the module docstring, in that order (one `lane_start` / `lane_done` pair per
    lane, one `token` per CoT decoding step).

    Closing the generator early stops the CoT generation at its next step.
    """
    t0 = time.perf_counter()

    def stamp(event: dict[str, Any]) -> dict[str, Any]:
        event["t_ms"] = (time.perf_counter() - t0) * 1000.0
        return event

    lanes = _race_lanes(latent, cot, discriminative)
    if images is None and texts is None:
        from lame_tools.timing.bench import race_inputs

        images, texts, instruction = (x[:1] for x in race_inputs(1))
    inputs = (images, texts, instruction)
    cap = max_new_tokens or lanes["cot"].max_new_tokens
    yield stamp(_start_event(lanes, inputs, cap))
    for _ in range(warmup):
        for adapter in lanes.values():
            run_lane(adapter, *inputs, max_new_tokens=2 if adapter.generative else None)
    per_item: dict[str, float] = {}
    elapsed: dict[str, float] = {}
    for name, adapter in lanes.items():
        if not adapter.generative:
            yield stamp({"event": "lane_start", "lane": name})
            run = run_lane(adapter, *inputs)
            elapsed[name], per_item[name] = run.total_ms, run.total_ms / run.batch_size
            yield stamp(_lane_done_event(name, run, None))
    yield stamp({"event": "lane_start", "lane": "cot"})
    run = yield from _stream_cot(lanes["cot"], inputs, cap, elapsed["latent"], stamp)
    elapsed["cot"], per_item["cot"] = run.total_ms, run.total_ms / run.batch_size
    text = lanes["cot"].decode(run.generated_ids[0]) if run.generated_ids else ""
    yield stamp(_lane_done_event("cot", run, text))
    slowdown = per_item["cot"] / per_item["latent"]
    yield stamp({
        "event": "done", "elapsed_ms": elapsed, "ms_per_item": per_item, "slowdown": slowdown, "speedup": slowdown,
        "latent_vs_discriminative": per_item["latent"] / per_item["discriminative"] if "discriminative" in per_item else None,
        "cot_tokens": float(np.mean(run.generated_tokens)), "text": text,
    })


def _race_lanes(latent: Any, cot: Any, discriminative: Any) -> dict[str, EmbeddingAdapter]:
    """The race's lanes in run order, each an adapter in its lane's mode (shipped models by default)."""
    from lame_tools import SHIPPED_MODELS

    lanes: dict[str, EmbeddingAdapter] = {"latent": as_adapter(latent or SHIPPED_MODELS["latent"], "latent", "latent")}
    if discriminative is not None:
        lanes["discriminative"] = as_adapter(discriminative, "discriminative", "discriminative")
    lanes["cot"] = as_adapter(cot or SHIPPED_MODELS["cot"], "cot", "cot")
    return lanes


def _start_event(lanes: dict[str, EmbeddingAdapter], inputs: tuple, cap: int) -> dict[str, Any]:
    cot_lane = lanes["cot"]
    prepared = cot_lane.prepare(*inputs)
    return {
        "event": "start",
        "lanes": list(lanes),
        "batch_size": prepared.batch_size,
        "prompt_tokens": prepared.prompt_lengths,
        "max_new_tokens": cap,
        "hardware": hardware_info(cot_lane.device),
        "lanes_info": {name: a.describe() for name, a in lanes.items()},
    }


def _lane_done_event(name: str, run: LaneRun, text: str | None) -> dict[str, Any]:
    """The `lane_done` event of a finished lane (`text`: the CoT lane's row-0 rationale, else None)."""
    generated = text is not None
    gen_ms = run.stages_ms.get("prefill", 0.0) + run.stages_ms.get("decode", 0.0)
    tokens_per_s = (sum(run.generated_tokens) / gen_ms * 1000.0 if gen_ms else None) if generated else None
    return {
        "event": "lane_done", "lane": name, "elapsed_ms": run.total_ms, "ms_per_item": run.total_ms / run.batch_size,
        "stages_ms": run.stages_ms, "tokens": run.generated_tokens[0] if generated else 0,
        "tokens_per_row": run.generated_tokens, "text": text, "tokens_per_s": tokens_per_s,
        "embedding_dim": int(run.embeddings.shape[-1]),
    }


def _stream_cot(
    cot_lane: EmbeddingAdapter, inputs: tuple, cap: int, latent_ms: float, stamp: Stamp
) -> Iterator[dict[str, Any]]:
    """Run the CoT lane in a worker thread and yield one `token` event per decoding step of row 0;
    returns (as the generator's value) the lane's `LaneRun`. Closing stops the generation."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    lane_start = time.perf_counter()

    def on_token(tokens: list[int], now: float) -> None:
        events.put(("token", tokens[0], now))

    def work() -> None:
        try:
            run = run_lane(cot_lane, *inputs, max_new_tokens=cap, on_token=on_token, stop_event=stop)
            events.put(("done", run, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            events.put(("error", exc, None))

    worker = threading.Thread(target=work, name="race-cot", daemon=True)
    worker.start()
    stops = stop_ids(cot_lane)
    row0: list[int] = []
    row0_done = False
    try:
        while True:
            kind, payload, now = events.get()
            if kind == "error":
                raise payload
            if kind == "done":
                return payload
            if row0_done or payload in stops:
                row0_done = True
                continue
            row0.append(payload)
            lane_ms = (now - lane_start) * 1000.0
            slowdown = lane_ms / latent_ms
            yield stamp({
                "event": "token", "lane": "cot", "elapsed_ms": lane_ms, "tokens": len(row0),
                "text": cot_lane.decode(row0), "tokens_per_s": len(row0) / max(lane_ms, 1e-9) * 1000.0,
                "slowdown": slowdown, "speedup": slowdown,
            })
    finally:
        stop.set()
        worker.join()


def stop_ids(adapter: EmbeddingAdapter) -> set[int]:
    """Token ids that end a rationale (row 0's streamed text stops there; later steps are padding)."""
    ids = getattr(adapter, "stop_token_ids", None)
    if ids is not None:
        return set(ids)
    processor = adapter.model.processor
    return {processor.embed_token_id, processor.eos_token_id, processor.pad_id}
