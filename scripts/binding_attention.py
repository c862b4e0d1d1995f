"""Does the model look at the object the question names? For colour_of / shape_of queries of the
balanced split, the attention of `[EMBED]` and of each reason token (each layer and head) on the
visual token whose cell holds the named object's centre, against the tokens of the scene's other
objects: how often the named
object gets the most of it (chance: one over the number of objects) and its share of the attention
on all the objects' tokens. With `--reference` (the model's `eval` JSON) both are also given
separately for the queries the model answers right and wrong.

A head that finds the named object while the answer is wrong points at the read-out; no head that
finds it points at the look-up (binding).

    .venv/bin/python scripts/binding_attention.py assets/models/discriminative-shapes --split test \
        --reference assets/results/eval_balanced_discriminative-shapes_discriminative.json \
        --out assets/results/binding_attention_discriminative-shapes.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.render import render  # noqa: E402
from lame_tools.data.shapes import BALANCED_SIZES, balanced_examples  # noqa: E402
from lame_tools.intervals import wilson_interval  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402
from lame_tools.probe.attention import reason_attention_items  # noqa: E402

SUBTASKS = ("colour_of", "shape_of")


def centre_cell(obj, grid: tuple[int, int]) -> tuple[int, int]:
    """(row, column) of the merged-grid cell that holds the object's centre."""
    rows, cols = grid
    return min(rows - 1, int(obj.y * rows)), min(cols - 1, int(obj.x * cols))


def object_attention(image_attention: np.ndarray, scene, answer) -> tuple[np.ndarray, int]:
    """Attention [layer, head, token, objects] of each probed token on each object's centre cell
    (cells shared by two objects count for each), and the index of the named object."""
    grid = image_attention.shape[-2:]
    cells = [centre_cell(o, grid) for o in scene.objects]
    return np.stack([image_attention[..., r, c] for r, c in cells], -1), scene.objects.index(answer)


def measure(model, subtask: str, split: str, per_subtask: int, batch_size: int = 16) -> list[dict]:
    """One row per query: attention [layer, head, token, objects], the named object's index; and the
    probed tokens' names."""
    examples = [e for _, e in balanced_examples(0, split, per_subtask, subtasks=(subtask,))]
    rows, tokens = [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        items = model.make_items([render(e.scene) for e in chunk], [e.query_text for e in chunk],
                                 [e.instruction for e in chunk])
        for offset, (example, att) in enumerate(zip(chunk, reason_attention_items(model, items))):
            tokens = att.query_tokens
            mass, named = object_attention(att.image_attention, example.scene, example.answer_object)
            rows.append({"index": start + offset, "objects": len(example.scene.objects), "mass": mass,
                         "named": named})
    return rows, tokens


def _rate(count: int, n: int) -> dict:
    interval = wilson_interval(count, n)
    return {"n": n, "rate": count / n if n else None, "interval": [interval.low, interval.high]}


def _top_rate(entry: dict) -> float:
    return entry["all"]["top"]["rate"]


def summarize(rows: list[dict], hits: list[float] | None, tokens: list[str]) -> dict:
    """Per layer, head and probed token: the named object's top rate (with chance) and mean share,
    over queries of two objects or more; by the model's hit when `hits` (per query, the eval's order)
    is given. "best" is the best head of `[EMBED]` (the last token), "best_any" of any token."""
    rows = [r for r in rows if r["objects"] > 1]
    layers, heads = rows[0]["mass"].shape[:2]
    groups = {"all": rows}
    if hits is not None:
        groups["right"] = [r for r in rows if hits[r["index"]] == 1.0]
        groups["wrong"] = [r for r in rows if hits[r["index"]] == 0.0]
    chance = float(np.mean([1 / r["objects"] for r in rows]))
    out = {"queries": len(rows), "chance_top": chance, "heads": []}
    for layer in range(layers):
        for head in range(heads):
            for q, token in enumerate(tokens):
                entry = {"layer": layer, "head": head, "token": token}
                for name, group in groups.items():
                    if not group:
                        continue
                    mass = [r["mass"][layer, head, q] for r in group]
                    top = sum(int(np.argmax(m) == r["named"]) for m, r in zip(mass, group))
                    share = [m[r["named"]] / max(m.sum(), 1e-12) for m, r in zip(mass, group)]
                    entry[name] = {"top": _rate(top, len(group)), "share": float(np.mean(share))}
                out["heads"].append(entry)
    out["best"] = max((e for e in out["heads"] if e["token"] == tokens[-1]), key=_top_rate)
    out["best_any"] = max(out["heads"], key=_top_rate)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-subtask", type=int, default=None, help="default: the balanced split's size")
    parser.add_argument("--reference", type=Path, default=None, help="the model's eval JSON: split by right / wrong")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    per_subtask = args.per_subtask or BALANCED_SIZES[args.split]
    model = LameModel.from_pretrained(args.model).eval()
    reference = json.loads(args.reference.read_text()) if args.reference else None
    report = {"model": str(args.model), "split": args.split, "per_subtask": per_subtask,
              "mode": model.config.default_mode, "subtasks": {}}
    for subtask in SUBTASKS:
        hits = reference["tasks"][subtask]["per_query"] if reference else None
        if hits is not None and len(hits) != per_subtask:
            print(f"{args.reference} scores {len(hits)} {subtask} queries, not {per_subtask}: use the same split size",
                  file=sys.stderr)
            return 1
        rows, tokens = measure(model, subtask, args.split, per_subtask)
        block = summarize(rows, hits, tokens)
        report["subtasks"][subtask] = block
        best = block["best"]
        split = "".join(f", {g} {100 * best[g]['top']['rate']:.0f}%" for g in ("right", "wrong") if g in best)
        print(f"{subtask}: {block['queries']} queries of 2+ objects; best [EMBED] head L{best['layer']}H{best['head']} puts the "
              f"most on the named object in {100 * best['all']['top']['rate']:.0f}% (chance "
              f"{100 * block['chance_top']:.0f}%{split}), share {best['all']['share']:.2f}", flush=True)
        if (any_ := block["best_any"]) is not best:
            print(f"  best of any token: {any_['token']} L{any_['layer']}H{any_['head']} "
                  f"{100 * any_['all']['top']['rate']:.0f}%, share {any_['all']['share']:.2f}", flush=True)
    report["checked_against"] = str(args.reference) if reference else None
    atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
