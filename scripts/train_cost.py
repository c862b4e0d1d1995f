"""One-pass vs explicit-CoT cost of the three shipped models on held-out test queries: ms per query
(median, p90) and tokens generated per query, on this machine. A benchmark: prints and writes JSON.

    python scripts/train_cost.py --n 32 --batch-size 8 --out assets/results/train_cost.json

The race benchmark (`lame_tools.timing.bench_race`) at one batch size: each model in the mode it was
trained for, on the same Shapes test queries, the lanes taking turns batch by batch; `--rounds`
passes over the queries are timed after one warm-up batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import torch

    from lame_tools import SHIPPED_MODELS
    from lame_tools.adapters import load_lane
    from lame_tools.atomic import atomic_write_json
    from lame_tools.constants import MODES
    from lame_tools.timing import bench_race, hardware_info

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the n queries")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="assets/results/train_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lanes = {mode: load_lane(mode, SHIPPED_MODELS[mode], "lame", device="cpu") for mode in MODES}
    batch_size = min(args.batch_size, args.n)
    report = bench_race(lanes, n=args.n, batch_sizes=(batch_size,), warmup=1,
                        min_rounds=args.rounds * (args.n // batch_size))
    measured = report["results"][0]["lanes"]
    result = {"hardware": hardware_info(), "threads": args.threads, "queries": args.n, "batch_size": batch_size,
              "modes": {}}
    for mode in MODES:
        result["modes"][mode] = {"ms_per_query": measured[mode]["item_ms"],
                                 "model": str(SHIPPED_MODELS[mode].relative_to(ROOT)),
                                 "relative_to_latent": measured[mode]["median"] / measured["latent"]["median"]}
    result["modes"]["cot"]["generated_tokens_per_query"] = measured["cot"]["generated_tokens"]["mean"]
    atomic_write_json(args.out, result)
    for mode, entry in result["modes"].items():
        print(f"{mode:<15} {entry['ms_per_query']['median']:8.2f} ms/query  x{entry['relative_to_latent']:.2f}")
    print(f"cot generates {result['modes']['cot']['generated_tokens_per_query']:.1f} tokens per query; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
