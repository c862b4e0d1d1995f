"""The offline benchmarks: the race of the lanes on the same inputs, `encode()` against a bare backbone
forward, and the check that the live `race()` generator measures what the offline race measures.

- `bench_race(lanes, n, batch_sizes)`: the lanes on the same inputs, warm-up, rotating alternation,
  per-item and per-batch median / p90, CoT tokens, the latent/discriminative ratio beside its
  physical floor (L+K+1)/(L+1); `python -m lame_tools bench race` prints it and writes JSON.
- `bench_encode(model)`: `python -m lame_tools bench encode`.
- `generator_agreement(lanes)`: `race()` against `run_lane` on the same inputs.

Benchmarks return JSON-ready dicts; tests never assert on their timings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lame_tools.adapters import EmbeddingAdapter
from lame_tools.constants import ONE_PASS_MODES, SEQUENTIAL_MODE
from lame_tools.timing.harness import LaneRun, hardware_info, run_lane, summarize, time_alternating
from lame_tools.timing.race import race
from lame_tools.timing.report import lane_headline


def race_inputs(n: int, seed: int = 0, split: str = "test") -> tuple[list[Any], list[str | None], list[str]]:
    """The first `n` query sides of a Shapes split: (images or None, texts or None, instructions).
    A mix of all four meta-tasks, images and text-only queries, so prompt lengths vary."""
    from lame_tools.data.shapes import make_example

    items = [make_example(seed, split, i).query_item() for i in range(n)]
    return [item.image for item in items], [item.text for item in items], [item.instruction for item in items]


def physical_floor(prompt_tokens: float, k: int) -> float:
    """The latent/discriminative cost ratio from the extra tokens alone: (L + K + 1) / (L + 1)."""
    return (prompt_tokens + k + 1) / (prompt_tokens + 1)


def _generation_summary(runs: list[LaneRun]) -> dict[str, Any]:
    """What a generative lane adds to its summary: tokens, decode steps and speed, the time without the read."""
    tokens = [t for r in runs for t in r.generated_tokens]
    generate_ms = [r.stages_ms["prefill"] + r.stages_ms["decode"] for r in runs]
    return {
        "generated_tokens": summarize(tokens),
        "decode_steps": summarize([r.decode_steps for r in runs]),
        "decode_ms_per_step": float(np.median([r.stages_ms["decode"] / max(r.decode_steps - 1, 1) for r in runs])),
        "tokens_per_s": float(sum(tokens) / (sum(generate_ms) / 1000.0)) if sum(generate_ms) else 0.0,
        # without the embedding read after generation: the floor for any CoT implementation that
        # reads its embedding token from the KV cache instead of a re-read pass
        "median_without_read": float(np.median([(r.total_ms - r.stages_ms["read"]) / r.batch_size for r in runs])),
    }


def _lane_summary(runs: list[LaneRun], batch_size: int) -> dict[str, Any]:
    item_ms = [r.total_ms / r.batch_size for r in runs]
    batch_ms = [r.total_ms for r in runs]
    item = summarize(item_ms)
    stages = sorted({s for r in runs for s in r.stages_ms})
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
        summary.update(_generation_summary(runs))
    return summary


def _compare(lanes: dict[str, dict[str, Any]], k: int) -> dict[str, Any]:
    """CoT / one-pass ratios (the `speedup_*` keys of the report) and the latent/discriminative ratio
    beside its physical floor."""
    out: dict[str, Any] = {}
    if "cot" in lanes and "latent" in lanes:
        out["speedup_cot_vs_latent"] = lanes["cot"]["median"] / lanes["latent"]["median"]
        out["cot_tokens_mean"] = lanes["cot"].get("generated_tokens", {}).get("mean", 0.0)
        if "median_without_read" in lanes["cot"]:
            out["speedup_cot_without_read_vs_latent"] = lanes["cot"]["median_without_read"] / lanes["latent"]["median"]
    if SEQUENTIAL_MODE in lanes and "latent" in lanes:
        out["sequential_vs_latent"] = lanes[SEQUENTIAL_MODE]["median"] / lanes["latent"]["median"]
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


def _race_batch_size(
    lanes: dict[str, EmbeddingAdapter],
    inputs: tuple[list, list, list],
    bs: int,
    warmup: int,
    min_rounds: int,
    max_new_tokens: int | None,
    log: Callable[[str], None] | None,
) -> dict[str, list[LaneRun]]:
    """All timed runs of every lane at one batch size (see `bench_race` for the protocol)."""
    n = len(inputs[0])
    batches = list(range(0, n - bs + 1, bs))
    starts = batches * -(-max(min_rounds, 1) // len(batches))

    def batch(start: int) -> tuple[list, list, list]:
        return tuple(x[start : start + bs] for x in inputs)

    for _ in range(warmup):
        for adapter in lanes.values():
            run_lane(adapter, *batch(0), max_new_tokens=max_new_tokens)
    runs: dict[str, list[LaneRun]] = {name: [] for name in lanes}
    names = list(lanes)
    for r, start in enumerate(starts):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name].append(run_lane(lanes[name], *batch(start), max_new_tokens=max_new_tokens))
        if log and (r + 1) % max(1, len(starts) // 5) == 0:
            log(f"batch {bs}: {r + 1}/{len(starts)} rounds")
    return runs


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
    inputs = race_inputs(n, seed)
    device = next(iter(lanes.values())).device
    k = max((a.num_reason_tokens for a in lanes.values()), default=0)
    results = []
    for bs in batch_sizes:
        bs_eff = min(bs, n)
        runs = _race_batch_size(lanes, inputs, bs_eff, warmup, min_rounds, max_new_tokens, log)
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
        "lanes": {name: lane_headline(name, results) for name in lanes},
        "dtype": ", ".join(sorted({a.describe()["dtype"] for a in lanes.values()})),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "load_average": list(os.getloadavg()),  # 1, 5, 15 min: a busy machine inflates every lane
        "cot_read": next((a.describe().get("cot_read") for a in lanes.values() if a.generative), None),
        "unit": "ms per item (batch time / batch size)",
    }


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
                          max_new_tokens=max_new_tokens, warmup=0, repeats=1, sequential=lanes.get(SEQUENTIAL_MODE)):
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
    """Items/s of `encode()` (decode + pre-processing + forward + pooling) against the same backbone
    forward alone (`LameModel.backbone_forward`) on the pre-processed tensors, per batch size; their
    ratio is our overhead."""
    from lame_tools.data.shapes import make_example, render

    mode = mode or model.config.default_mode
    if mode not in ONE_PASS_MODES:
        raise ValueError("bench encode measures the one-pass modes; the race benchmark times cot")
    examples = [make_example(0, "test", i) for i in range(max(batch_sizes))]
    images = [render(e.scene) for e in examples]
    texts = [e.query_text or None for e in examples]
    instruction = examples[0].instruction
    results = []
    for bs in batch_sizes:
        batch = model.prepare(model.make_items(images[:bs], texts[:bs], instruction), mode)

        @torch.no_grad()
        def bare(batch=batch) -> None:
            # the forward `encode` runs (reason-row embeddings, 3-D positions, `embed_reads`' mask), alone
            model.backbone_forward(batch)

        def full(bs=bs) -> None:
            model.encode(images=images[:bs], texts=texts[:bs], instruction=instruction, batch_size=bs, mode=mode)

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
