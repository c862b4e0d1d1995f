"""One-pass vs explicit-CoT cost of the three shipped models on held-out test queries: ms per query
(median, p90) and tokens generated per query, on this machine. A benchmark: prints and writes JSON.

    python scripts/train_cost.py --n 32 --batch-size 8 --out assets/results/train_cost.json

The three lanes take turns (`lame_tools.timing.time_alternating`), each embedding the same queries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import numpy as np
    import torch

    from lame_tools import SHIPPED_MODELS
    from lame_tools.atomic import atomic_write_json
    from lame_tools.data.shapes import make_example, render
    from lame_tools.model import LameModel
    from lame_tools.timing import hardware_info, summarize, time_alternating

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="assets/results/train_cost.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    examples = [make_example(0, "test", i) for i in range(args.n)]
    images = [render(e.scene) if e.query_has_image else None for e in examples]
    texts = [e.query_text or None for e in examples]
    instructions = [e.instruction for e in examples]
    models = {mode: LameModel.from_pretrained(SHIPPED_MODELS[mode], device="cpu") for mode in ("latent", "discriminative", "cot")}

    def lane(mode: str):
        model = models[mode]
        return lambda: model.encode(images=images, texts=texts, instruction=instructions, batch_size=args.batch_size, mode=mode)

    samples = time_alternating({m: lane(m) for m in models}, args.rounds, 1, torch.device("cpu"))
    cot = models["cot"]
    with torch.no_grad():
        items = cot.make_items(images, texts, instructions)
        lengths = [len(r) for i in range(0, len(items), args.batch_size)
                   for r in cot.generate_rationales(items[i : i + args.batch_size])]
    result = {"hardware": hardware_info(), "threads": args.threads, "queries": args.n, "batch_size": args.batch_size,
              "modes": {}}
    for mode, times in samples.items():
        per_query = [t / args.n for t in times]
        result["modes"][mode] = {"ms_per_query": summarize(per_query),
                                 "model": str(SHIPPED_MODELS[mode].relative_to(ROOT))}
    result["modes"]["cot"]["generated_tokens_per_query"] = float(np.mean(lengths))
    base = result["modes"]["latent"]["ms_per_query"]["median"]
    for mode in result["modes"]:
        result["modes"][mode]["relative_to_latent"] = result["modes"][mode]["ms_per_query"]["median"] / base
    atomic_write_json(args.out, result)
    for mode, entry in result["modes"].items():
        print(f"{mode:<15} {entry['ms_per_query']['median']:8.2f} ms/query  x{entry['relative_to_latent']:.2f}")
    print(f"cot generates {result['modes']['cot']['generated_tokens_per_query']:.1f} tokens per query; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
