"""Markdown tables of Hit@1 with 95% intervals from eval JSONs (the balanced split), for the README.

    .venv/bin/python scripts/results_table.py assets/results/eval_balanced_lame-shapes_latent.json ... [--labels A B ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cell(score: float, interval: list[float] | None) -> str:
    if not interval:
        return f"{100 * score:.1f}"
    return f"{100 * score:.1f} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="+", default=None)
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in args.results]
    labels = args.labels or [Path(p).stem for p in args.results]
    tasks = list(results[0]["tasks"])
    print("| model | " + " | ".join(tasks) + " | overall |")
    print("|---" * (len(tasks) + 2) + "|")
    for label, r in zip(labels, results):
        cells = [cell(r["tasks"][t]["score"], r["tasks"][t].get("interval")) for t in tasks]
        overall = cell(r["overall"], r.get("intervals", {}).get("overall"))
        print(f"| {label} | " + " | ".join(cells) + f" | {overall} |")
    print()
    print("| model | " + " | ".join(f"{t} held-out / seen" for t in ("colour_of", "shape_of")) + " |")
    print("|---|---|---|")
    for label, r in zip(labels, results):
        parts = []
        for t in ("colour_of", "shape_of"):
            groups = r["tasks"].get(t, {}).get("query_groups", {})
            parts.append(" / ".join(f"{100 * groups[g]['score']:.1f} (n={groups[g]['n']})" for g in ("held_out", "seen")
                                    if g in groups) or "-")
        print(f"| {label} | " + " | ".join(parts) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
