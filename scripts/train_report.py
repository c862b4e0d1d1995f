"""Markdown tables of the training matrix (from scripts/train_matrix.py's aggregate JSON): the three
shipped presets per meta-task and overall (mean ± sample std over seeds), the K ablation and the
decoder (lambda) ablation.

    python scripts/train_report.py assets/results/training_matrix.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

META = ("classification", "vqa", "retrieval", "grounding")
TASKS = ("count", "colour_of", "shape_of", "relation_two_step", "i2t", "t2i", "refer")


def cell(stats: dict | None) -> str:
    if not stats:
        return "-"
    text = f"{100 * stats['mean']:.1f}"
    if stats.get("n", 1) > 1:
        text += f" ± {100 * stats['std']:.1f}"
    return text


def table(data: dict, rows: list[tuple[str, str]], columns: str = "meta") -> str:
    presets = data["presets"]
    keys = META if columns == "meta" else TASKS
    head = "| model | seeds | " + " | ".join(keys) + " | overall |"
    lines = [head, "|" + "---|" * (len(keys) + 3)]
    for label, preset in rows:
        entry = presets.get(preset)
        if entry is None:
            lines.append(f"| {label} | 0 | " + " | ".join("-" for _ in keys) + " | - |")
            continue
        source = entry["meta_tasks"] if columns == "meta" else entry["tasks"]
        seeds = ",".join(r.rsplit("-s", 1)[1] for r in entry["runs"])
        lines.append(f"| {label} | {seeds} | " + " | ".join(cell(source.get(k)) for k in keys)
                     + f" | {cell(entry['overall'])} |")
    return "\n".join(lines)


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "assets/results/training_matrix.json")
    data = json.loads(path.read_text())
    main_rows = [("LaME (K=8, decoder)", "lame"), ("discriminative (K=0)", "discriminative"), ("explicit CoT", "cot")]
    print("Held-out test split, Hit@1 (%), mean ± std over seeds:\n")
    print(table(data, main_rows))
    print("\nPer subtask:\n")
    print(table(data, main_rows, columns="tasks"))
    k_rows = [(f"K={k}", "discriminative" if k == 0 else ("lame" if k == 8 else f"lame-k{k}")) for k in (0, 1, 2, 4, 8, 16)]
    print("\nK ablation (decoder on, lambda as in `lame`; K=0 is the discriminative run):\n")
    print(table(data, k_rows))
    print("\nDecoder (lambda) ablation at K=8:\n")
    print(table(data, [("decoder off (lambda=0)", "lame-nodecoder"), ("decoder on", "lame")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
