"""Timing: the measurement harness (warm-up, alternating rounds, median / p90, hardware) and benchmarks.

Benchmarks print a table and write JSON; tests never assert on their timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lame_tools.atomic import atomic_write_json


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
    from lame_tools.cli import add_model_argument

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
