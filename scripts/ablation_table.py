"""One Markdown row per ablated model (a K ablation, a decoder ablation) from recorded JSON only.

Each row reads a one-seed `scripts/seed_compare.py --a MODEL --b ONE_PASS --c COT` file (the model
against the one pass of its seed, and against half of CoT's gain) and, where given, the model's
`scripts/causal_use.py` file. Columns: the model's test score, its paired reasoning and overall gain
over the one pass (95% intervals), two subtasks, its share of CoT's reasoning gain with its margin to
half, and what swapping or hiding all K tokens costs the reasoning pool.

    .venv/bin/python scripts/ablation_table.py \
        "K = 16=assets/results/seeds/compare_A_vs_B_vs_C.json:assets/results/see5/causal_use_test_A.json" \
        "K = 8=..." [--subtasks count_attribute relation_two_step] [--out table.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.intervals import format_points  # noqa: E402


def points(difference: dict) -> str:
    """A paired difference as '+1.2 [-0.3, +2.8]' points."""
    return format_points(difference["estimate"], difference["low"], difference["high"])


def causal_cell(causal: dict | None, how: str) -> str:
    condition = (causal or {}).get("conditions", {}).get(how)
    if not condition:
        return "-"
    pool = condition["reasoning"]
    low, high = pool["interval"]
    return format_points(pool["difference"], low, high)


def row(label: str, compare: dict, causal: dict | None, subtasks: list[str]) -> dict:
    """The numbers of one row, as fractions (the table prints points)."""
    reasoning = compare["pools"]["reasoning"]["difference"]
    margin = compare["gain_share_by_queries"]["reasoning"]
    share = compare["gain_share_by_queries"]["share"]
    # margin = gain_a - share x gain_c, so gain_c = (gain_a - margin) / share
    gain_c = (reasoning["estimate"] - margin["estimate"]) / share
    test = next(iter(compare["seeds"]["a"].values()))
    return {
        "label": label,
        "test": test,
        "reasoning": reasoning,
        "overall": compare["overall"]["difference"],
        "subtasks": {name: compare["tasks"][name]["difference"] for name in subtasks},
        "cot_gain": gain_c,
        "share_of_cot": reasoning["estimate"] / gain_c if gain_c else None,
        "margin_to_share": margin,
        "share": share,
        "swap": causal_cell(causal, "swap"),
        "mask": causal_cell(causal, "mask"),
    }


def markdown(rows: list[dict], subtasks: list[str]) -> str:
    head = ["model", "test", "reasoning vs one pass", *subtasks, "overall vs one pass", "share of CoT's gain",
            "margin to half", "swap all K (reasoning)", "hide all K (reasoning)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        share = "-" if r["share_of_cot"] is None else f"{100 * r['share_of_cot']:.0f}%"
        cells = [r["label"], f"{100 * r['test']:.1f}", points(r["reasoning"]),
                 *(points(r["subtasks"][name]) for name in subtasks), points(r["overall"]), share,
                 points(r["margin_to_share"]), r["swap"], r["mask"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="+", help="LABEL=SEED_COMPARE_JSON[:CAUSAL_USE_JSON]")
    parser.add_argument("--subtasks", nargs="*", default=["count_attribute", "relation_two_step"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for spec in args.rows:
        label, sep, paths = spec.rpartition("=")  # labels may hold "=" (K = 16), paths do not
        if not sep or not paths:
            parser.error(f"{spec!r} is not LABEL=SEED_COMPARE_JSON[:CAUSAL_USE_JSON]")
        compare_path, _, causal_path = paths.partition(":")
        compare = json.loads(Path(compare_path).read_text())
        if "gain_share_by_queries" not in compare:
            parser.error(f"{compare_path} has no CoT column: make it with seed_compare.py --c")
        causal = json.loads(Path(causal_path).read_text()) if causal_path else None
        rows.append({**row(label, compare, causal, args.subtasks), "compare": compare_path, "causal_use": causal_path})
    table = markdown(rows, args.subtasks)
    print(table)
    if args.out:
        atomic_write_json(args.out, {"rows": rows, "markdown": table})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
