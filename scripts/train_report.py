"""Markdown tables of the training matrix (from scripts/train_matrix.py's aggregate JSON): the three
shipped presets per meta-task and overall (mean ± sample std over seeds), the K ablation and the
decoder (lambda) ablation.

    python scripts/train_report.py assets/results/training_matrix.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lame_tools.evaluate import sample_stats  # noqa: E402

META = ("classification", "vqa", "retrieval", "grounding")
TASKS = ("count", "colour_of", "shape_of", "relation_two_step", "i2t", "t2i", "refer")


def cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    text = f"{100 * entry['mean']:.1f}"
    if entry["n"] > 1:
        text += f" ± {100 * entry['std']:.1f}"
    return text


def runs_of(data: dict, preset: str, seeds: set[int] | None = None) -> dict[int, dict]:
    out = {}
    for name, run in data["runs"].items():
        base, _, seed = name.rpartition("-s")
        if base == preset and (seeds is None or int(seed) in seeds):
            out[int(seed)] = run
    return dict(sorted(out.items()))


def table(data: dict, rows: list[tuple[str, str]], columns: str = "meta", seeds: set[int] | None = None) -> str:
    keys = META if columns == "meta" else TASKS
    lines = ["| model | seeds | " + " | ".join(keys) + " | overall |", "|" + "---|" * (len(keys) + 3)]
    for label, preset in rows:
        runs = runs_of(data, preset, seeds)
        field = "meta_tasks" if columns == "meta" else "tasks"
        values = [cell(sample_stats([r[field].get(k) for r in runs.values()])) for k in keys]
        overall = cell(sample_stats([r["overall"] for r in runs.values()]))
        label_seeds = ",".join(str(s) for s in runs) or "-"
        lines.append(f"| {label} | {label_seeds} | " + " | ".join(values) + f" | {overall} |")
    return "\n".join(lines)


def ablation_seeds(data: dict, presets: list[str]) -> set[int]:
    """Seeds for which every ablation preset finished (so all rows compare the same seeds)."""
    sets = [set(runs_of(data, p)) for p in presets]
    return set.intersection(*sets) if sets else set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("matrix", nargs="?", default="assets/results/training_matrix.json",
                        help="scripts/train_matrix.py's aggregate JSON")
    path = Path(parser.parse_args().matrix)
    if not path.is_file():
        parser.error(f"{path} is not a file: pass the aggregate JSON that scripts/train_matrix.py writes")
    data = json.loads(path.read_text())
    main_rows = [("LaME (K=8, decoder)", "lame"), ("discriminative (K=0)", "discriminative"), ("explicit CoT", "cot")]
    print("Held-out test split, Hit@1 (%), mean ± std over seeds:\n")
    print(table(data, main_rows))
    print("\nPer subtask:\n")
    print(table(data, main_rows, columns="tasks"))
    k_rows = [(f"K={k}", "discriminative" if k == 0 else ("lame" if k == 8 else f"lame-k{k}")) for k in (0, 1, 2, 4, 8, 16)]
    seeds = ablation_seeds(data, ["discriminative", "lame-k1", "lame-k2", "lame-k4", "lame", "lame-k16"]) or None
    print(f"\nK ablation (decoder on; K=0 is the discriminative run), seeds {sorted(seeds) if seeds else 'all'}:\n")
    print(table(data, k_rows, seeds=seeds))
    seeds = ablation_seeds(data, ["lame", "lame-nodecoder"]) or None
    print(f"\nDecoder (lambda) ablation at K=8, seeds {sorted(seeds) if seeds else 'all'}:\n")
    print(table(data, [("decoder off (lambda = 0)", "lame-nodecoder"), ("decoder on (lambda = 0.5)", "lame")], seeds=seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
