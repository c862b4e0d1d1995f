"""Similarity attribution on the shipped model: completeness, the share through the reason tokens,
the deletion check and the time per attribution, over Shapes test queries with an image and a text
target. Writes assets/benchmarks/attribution.json (and the example figure with --figure).

    OMP_NUM_THREADS=1 python scripts/bench_attribution.py [--n 40] [--steps 32] [--figure]

Times are wall-clock on this machine under its current load (printed and saved with the load
average): re-record them on a quiet machine. Completeness, shares and drops do not depend on load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools import load_model  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.shapes import make_example  # noqa: E402
from lame_tools.evaluate.report import sample_stats  # noqa: E402
from lame_tools.probe import attribute, deletion_check  # noqa: E402
from lame_tools.timing.harness import summarize  # noqa: E402

EXAMPLE = 4  # "how many objects are there ?" -> "three": the README's example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="test examples scanned (those with image query + text target)")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--figure", action="store_true", help="also write the README's example figure")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "benchmarks" / "attribution.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = load_model(device="cpu")
    load_before = os.getloadavg()
    rows, seconds = [], []
    for index in range(args.n):
        example = make_example(0, "test", index)
        if not example.query_has_image or example.target_has_image:
            continue
        query, item = example.query_item(), example.target_item()
        start = time.perf_counter()
        result = attribute(model, query, item, steps=args.steps)
        seconds.append(time.perf_counter() - start)
        check = deletion_check(model, query, item, result)
        rows.append({
            "example": index, "task": example.task, "cosine": result.score,
            "completeness_error": abs(result.query.total - (result.score - result.query_baseline_score)),
            "reason_share": result.flow.reason_share, "top_drop": check.top_drop, "random_drop": check.random_drop,
            "faithful": check.faithful,
        })
        if args.figure and index == EXAMPLE:
            from lame_tools import viz

            viz.export_figure(result.plot(), ROOT / "assets" / "probe" / "attribution-example", ["png"])
            atomic_write_json(ROOT / "assets" / "probe" / "attribution-example.json",
                              {"example": index, "query": example.query_text, "target": example.target_text, **rows[-1]})
    report = {
        "model": "assets/models/lame-shapes", "steps": args.steps, "queries": len(rows),
        "faithful_share": float(np.mean([r["faithful"] for r in rows])),
        "top_drop": sample_stats([r["top_drop"] for r in rows]),
        "random_drop": sample_stats([r["random_drop"] for r in rows]),
        "reason_share": sample_stats([r["reason_share"] for r in rows]),
        "completeness_error_max": float(max(r["completeness_error"] for r in rows)),
        "attribute_seconds": summarize(seconds),
        "hardware": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                     "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rows": rows,
    }
    atomic_write_json(args.out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
