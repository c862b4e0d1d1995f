"""The live race for the app: the latent lane against the explicit-CoT lane (and the discriminative and
sequential-latent lanes) on the same inputs, as a generator of events, every number a wall-clock
reading of a lane that really ran (`run_lane`, the same code as the offline benchmark).

Protocol (what makes the live figure agree with `bench race`): every timed run happens in one worker
thread, one run at a time; between runs the worker waits until the consumer has asked for the next
event, so whatever the consumer does with an event (a UI redraw, a figure, JSON) never overlaps a
timed run. The only events produced while a run is timed are the CoT `token` snapshots of the one
streamed run, at most one per `poll_s`; their count is recorded (`ui_updates`). Each lane runs
`warmup` untimed times, then `repeats` timed rounds in rotating order (A B C D, B C D A, ...).

`race()` yields dicts; every event has "event" and "t_ms" (ms since the race started):
    {"event": "start", "lanes": [names], "batch_size": int, "prompt_tokens": [per row],
     "max_new_tokens": int, "hardware": {...}, "lanes_info": {lane: {...}}, "repeats": int,
     "warmup": int, "protocol": {...}, "other_work": [what else ran, from the caller]}
    {"event": "lane_start", "lane": name}                     -- before the lane's first timed run
    {"event": "run_done", "lane": name, "round": int, "total_ms": float, "ms_per_item": float,
     "tokens": int (row 0), "ui_updates": int (events yielded while this run was timed)}
    {"event": "token", "lane": "cot", "elapsed_ms": float (since the streamed run began),
     "tokens": int (row 0 so far), "text": str, "tokens_per_s": float,
     "slowdown": float (elapsed_ms / latent lane ms)}         -- at most one per poll_s, streamed run only
    {"event": "lane_done", "lane": name, "elapsed_ms": float (median run, batch), "ms_per_item": float
     (median), "runs_ms": [every timed run's total ms], "spread_ms": {min, max, p90}, "stages_ms":
     {median per stage}, "tokens": int (row 0 of the streamed run; 0 for one-pass lanes),
     "tokens_per_row": [int], "text": str | None (the streamed run's rationale, CoT only),
     "tokens_per_s": float | None, "embedding_dim": int, "embedding": [row 0's embedding]}
    {"event": "done", "elapsed_ms": {lane: median}, "ms_per_item": {lane: median}, "runs_ms": {...},
     "slowdown": float (cot / latent medians), "latent_vs_discriminative": float | None,
     "sequential_vs_latent": float | None, "cot_tokens": float (mean per row), "text": str,
     "repeats": int, "other_work": [...]}

Deprecated alias: "token" and "done" events also carry "speedup", with the same value as "slowdown"
(CoT time over latent time; the old name stays so readers of recorded race JSON keep working).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from lame_tools.adapters import EmbeddingAdapter, as_adapter
from lame_tools.constants import SEQUENTIAL_MODE
from lame_tools.timing.harness import LaneRun, hardware_info, run_lane

Stamp = Callable[[dict[str, Any]], dict[str, Any]]
LANE_ORDER = ("latent", "discriminative", SEQUENTIAL_MODE, "cot")


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
    repeats: int = 3,
    sequential: Any = None,
    poll_s: float = 0.25,
    other_work: list[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Race the lanes on the same inputs, yielding the events of the module docstring.

    Args:
        latent / cot / discriminative / sequential: a `LameModel`, a LaME folder, or an
            `EmbeddingAdapter`; a LaME model runs in the lane's mode. latent / cot None: the shipped
            model; discriminative / sequential None: no such lane.
        images / texts / instruction: the inputs (aligned lists, as `LameModel.encode`); all None:
            one Shapes test query.
        max_new_tokens: the CoT cap (default: the CoT model's own).
        warmup: untimed runs of each lane (CoT capped at 2 new tokens); repeats: timed rounds.
        poll_s: the least time between two `token` snapshots of the streamed CoT run.
        other_work: what else was running in the process (the caller knows; recorded as given).

    Closing the generator early stops the CoT generation at its next step and ends the worker.
    """
    t0 = time.perf_counter()

    def stamp(event: dict[str, Any]) -> dict[str, Any]:
        event["t_ms"] = (time.perf_counter() - t0) * 1000.0
        return event

    lanes = race_lanes(latent, cot, discriminative, sequential)
    if images is None and texts is None:
        from lame_tools.timing.bench import race_inputs

        images, texts, instruction = (x[:1] for x in race_inputs(1))
    inputs = (images, texts, instruction)
    cap = max_new_tokens or lanes["cot"].max_new_tokens
    repeats = max(1, int(repeats))
    yield stamp(_start_event(lanes, inputs, cap, warmup, repeats, list(other_work or [])))
    worker = _RaceWorker(lanes, inputs, cap, warmup, repeats)
    runs: dict[str, list[LaneRun]] = {name: [] for name in lanes}
    streamed: LaneRun | None = None
    try:
        worker.start()
        for kind, payload in worker.events(poll_s):
            if kind == "lane_start":
                yield stamp({"event": "lane_start", "lane": payload})
            elif kind == "token":
                yield stamp(_token_event(lanes["cot"], payload, runs))
            else:
                name, round_, run, ui_updates = payload
                runs[name].append(run)
                if name == "cot" and streamed is None:
                    streamed = run
                yield stamp({"event": "run_done", "lane": name, "round": round_, "total_ms": run.total_ms,
                             "ms_per_item": run.total_ms / run.batch_size, "tokens": run.generated_tokens[0],
                             "ui_updates": ui_updates})
    finally:
        worker.close()
    text = lanes["cot"].decode(streamed.generated_ids[0]) if streamed and streamed.generated_ids else ""
    for name in lanes:
        yield stamp(_lane_done_event(name, runs[name], streamed if name == "cot" else None, text))
    yield stamp(_done_event(runs, text, repeats, list(other_work or [])))


def race_lanes(latent: Any, cot: Any, discriminative: Any, sequential: Any = None) -> dict[str, EmbeddingAdapter]:
    """The race's lanes (latent, [discriminative], [sequential], cot), each an adapter in its lane's
    mode (shipped models by default for latent and cot)."""
    from lame_tools import SHIPPED_MODELS

    given = {"latent": latent or SHIPPED_MODELS["latent"], "discriminative": discriminative,
             SEQUENTIAL_MODE: sequential, "cot": cot or SHIPPED_MODELS["cot"]}
    return {name: as_adapter(given[name], name, name) for name in LANE_ORDER if given[name] is not None}


class _RaceWorker:
    """The thread that runs every warm-up and timed run, in lockstep with the consumer: after each
    timed run it waits until the consumer asks for more (`events`), so consumer work never overlaps
    a timed run, except the bounded `token` snapshots of the streamed CoT run."""

    def __init__(self, lanes: dict[str, EmbeddingAdapter], inputs: tuple, cap: int, warmup: int, repeats: int) -> None:
        self.lanes, self.inputs, self.cap, self.warmup, self.repeats = lanes, inputs, cap, warmup, repeats
        self.queue: queue.Queue = queue.Queue()
        self.resume = threading.Event()
        self.stop = threading.Event()
        self.tokens: list[tuple[int, float]] = []  # the streamed run's row-0 tokens and their times
        self.streaming_since: float | None = None
        self.ui_updates = 0  # token snapshots yielded while the current run was timed
        self.thread = threading.Thread(target=self._work, name="race-lanes", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.resume.set()
        self.thread.join()

    def _run(self, name: str, stream: bool) -> LaneRun:
        adapter = self.lanes[name]
        if not stream:
            return run_lane(adapter, *self.inputs, max_new_tokens=self.cap if adapter.generative else None,
                            stop_event=self.stop if adapter.generative else None)
        self.streaming_since = time.perf_counter()
        run = run_lane(adapter, *self.inputs, max_new_tokens=self.cap, stop_event=self.stop,
                       on_token=lambda ids, now: self.tokens.append((ids[0], now)))
        self.streaming_since = None
        return run

    def _work(self) -> None:
        try:
            with torch.no_grad():
                for _ in range(self.warmup):
                    for adapter in self.lanes.values():
                        run_lane(adapter, *self.inputs, max_new_tokens=2 if adapter.generative else None)
                names, started, streamed = list(self.lanes), set(), False
                for round_ in range(self.repeats):
                    for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                        if self.stop.is_set():
                            return
                        if name not in started:
                            started.add(name)
                            self._handoff(("lane_start", name))
                        stream = name == "cot" and not streamed
                        streamed = streamed or stream
                        self.ui_updates = 0
                        run = self._run(name, stream)
                        self._handoff(("run", (name, round_, run, self.ui_updates)))
            self.queue.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            self.queue.put(("error", exc))

    def _handoff(self, item: tuple[str, Any]) -> None:
        """Give the consumer one event and wait until it asks for the next."""
        self.resume.clear()
        self.queue.put(item)
        while not self.resume.wait(0.05):
            if self.stop.is_set():  # closed by the consumer (it will not come back)
                return

    def events(self, poll_s: float) -> Iterator[tuple[str, Any]]:
        """The worker's events; the worker goes on only once the consumer comes back for the next one.
        While the streamed run is timed: a `token` snapshot (row-0 tokens so far, the run's start) at
        most every `poll_s`, when new tokens came (the worker does not wait for these)."""
        shown = 0
        while True:
            try:
                kind, payload = self.queue.get(timeout=poll_s)
            except queue.Empty:
                since = self.streaming_since
                if since is not None and len(self.tokens) > shown:
                    shown = len(self.tokens)
                    self.ui_updates += 1
                    yield "token", (list(self.tokens[:shown]), since)
                continue
            if kind == "error":
                raise payload
            if kind == "end":
                return
            yield kind, payload
            self.resume.set()


def _start_event(lanes: dict[str, EmbeddingAdapter], inputs: tuple, cap: int, warmup: int, repeats: int,
                 other_work: list[str]) -> dict[str, Any]:
    cot_lane = lanes["cot"]
    prepared = cot_lane.prepare(*inputs)
    info = {name: a.describe() for name, a in lanes.items()}
    return {
        "event": "start",
        "lanes": list(lanes),
        "batch_size": prepared.batch_size,
        "prompt_tokens": prepared.prompt_lengths,
        "max_new_tokens": cap,
        "hardware": hardware_info(cot_lane.device),
        "lanes_info": info,
        "repeats": repeats,
        "warmup": warmup,
        "protocol": {"torch_threads": torch.get_num_threads(), "batch_size": prepared.batch_size,
                     "dtype": ", ".join(sorted({i["dtype"] for i in info.values()})), "warmup": warmup,
                     "repeats": repeats, "order": "rotating", "cot_read": info["cot"].get("cot_read", "")},
        "other_work": other_work,
    }


def _token_event(cot_lane: EmbeddingAdapter, payload: tuple, runs: dict[str, list[LaneRun]]) -> dict[str, Any]:
    """A snapshot of the streamed CoT run: row 0's text so far (up to its stop token)."""
    tokens, since = payload
    stops = stop_ids(cot_lane)
    row0 = []
    for token, _ in tokens:
        if token in stops:
            break
        row0.append(token)
    lane_ms = (tokens[-1][1] - since) * 1000.0
    latent = [r.total_ms / r.batch_size for r in runs.get("latent", [])]
    slowdown = lane_ms / float(np.median(latent)) if latent else float("nan")
    return {"event": "token", "lane": "cot", "elapsed_ms": lane_ms, "tokens": len(row0),
            "text": cot_lane.decode(row0), "tokens_per_s": len(row0) / max(lane_ms, 1e-9) * 1000.0,
            "slowdown": slowdown, "speedup": slowdown}


def _lane_done_event(name: str, runs: list[LaneRun], streamed: LaneRun | None, text: str) -> dict[str, Any]:
    """The `lane_done` event of a lane: the median of its timed runs, every run, the spread."""
    totals = [r.total_ms for r in runs]
    median = float(np.median(totals))
    shown = streamed or runs[0]
    generated = streamed is not None
    gen_ms = shown.stages_ms.get("prefill", 0.0) + shown.stages_ms.get("decode", 0.0)
    tokens_per_s = (sum(shown.generated_tokens) / gen_ms * 1000.0 if gen_ms else None) if generated else None
    stages = {s: float(np.median([r.stages_ms.get(s, 0.0) for r in runs])) for s in shown.stages_ms}
    return {
        "event": "lane_done", "lane": name, "elapsed_ms": median, "ms_per_item": median / shown.batch_size,
        "runs_ms": totals, "spread_ms": {"min": min(totals), "max": max(totals), "p90": float(np.percentile(totals, 90))},
        "stages_ms": stages, "tokens": shown.generated_tokens[0] if generated else 0,
        "tokens_per_row": shown.generated_tokens, "text": text if generated else None, "tokens_per_s": tokens_per_s,
        "embedding_dim": int(shown.embeddings.shape[-1]), "embedding": shown.embeddings[0].tolist(),
    }


def _done_event(runs: dict[str, list[LaneRun]], text: str, repeats: int, other_work: list[str]) -> dict[str, Any]:
    per_item = {name: float(np.median([r.total_ms / r.batch_size for r in lane])) for name, lane in runs.items()}
    elapsed = {name: float(np.median([r.total_ms for r in lane])) for name, lane in runs.items()}

    def ratio(a: str, b: str) -> float | None:
        return per_item[a] / per_item[b] if a in per_item and b in per_item else None

    slowdown = ratio("cot", "latent")
    return {
        "event": "done", "elapsed_ms": elapsed, "ms_per_item": per_item, "slowdown": slowdown, "speedup": slowdown,
        "runs_ms": {name: [r.total_ms for r in lane] for name, lane in runs.items()},
        "latent_vs_discriminative": ratio("latent", "discriminative"),
        "sequential_vs_latent": ratio(SEQUENTIAL_MODE, "latent"),
        "cot_tokens": float(np.mean([t for r in runs["cot"] for t in r.generated_tokens])), "text": text,
        "repeats": repeats, "other_work": other_work,
    }


def stop_ids(adapter: EmbeddingAdapter) -> set[int]:
    """Token ids that end a rationale (row 0's streamed text stops there; later steps are padding)."""
    ids = getattr(adapter, "stop_token_ids", None)
    if ids is not None:
        return set(ids)
    processor = adapter.model.processor
    return {processor.embed_token_id, processor.eos_token_id, processor.pad_id}
