"""Where colour_of / shape_of go wrong: for each query of the balanced split, the model's top
candidate, sorted into right, wrong with another object's attribute of the same scene (a binding
error: the model saw the colours but not which object wears which), and wrong with an attribute
no object of the scene has (a seeing error); by the number of objects in the scene, with Wilson 95%
intervals; and by how near the closest other object's centre is (fraction of the canvas width), to
tell a resolution limit (objects sharing a visual token's cell) from a binding one. For count: the
confusion of the true count and the model's top candidate, and whether the scene head's own count
(the merged cells it labels with a shape, not "none") was right, to tell a head that misses objects
from a language model that miscounts what the head saw. For the relational subtasks (relation_two_step,
relation_attribute, refer): whether a wrong answer names the anchor (the object the question names),
another object of the scene, or nothing in it; by relation and by the number of objects.

    .venv/bin/python scripts/binding_errors.py assets/models/discriminative-shapes --split test \
        --reference assets/results/eval_balanced_discriminative-shapes_discriminative.json \
        --out assets/results/binding_discriminative-shapes.json

`--reference` (an `eval` JSON of the same model, split and mode) checks that the per-query hits
computed here are the evaluation's, query by query; the script stops if they are not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.render import render  # noqa: E402
from lame_tools.data.scene import relation_holds  # noqa: E402
from lame_tools.data.shapes import BALANCED_SIZES, TARGET_INSTRUCTION, balanced_examples  # noqa: E402
from lame_tools.data.tasks import RELATIONAL_SUBTASKS as RELATIONAL  # noqa: E402
from lame_tools.data.tasks import relational_answer  # noqa: E402
from lame_tools.intervals import wilson_share  # noqa: E402
from lame_tools.model import LameModel  # noqa: E402
from lame_tools.ranking import top_k_pessimistic  # noqa: E402
from lame_tools.scene_head import head_counts  # noqa: E402

ATTRIBUTE = {"colour_of": "colour", "shape_of": "shape"}
OUTCOMES = ("right", "another_object", "not_in_scene")
# the anchor's answer is counted as the anchor's even where another object shares it
RELATION_OUTCOMES = ("right", "anchor", "another_object", "not_in_scene")
# nearest other object's centre, as a fraction of the canvas width: within a `fine` token's cell
# (a quarter of the canvas), within two, farther
NEAREST_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, float("inf")))


def nearest_other(scene, answer) -> float | None:
    """Distance from the answer object's centre to the closest other object's (None: it is alone)."""
    distances = [float(np.hypot(o.x - answer.x, o.y - answer.y)) for o in scene.objects if o is not answer]
    return min(distances) if distances else None


def top_candidates(model, examples, mode: str | None) -> list[str]:
    """Each query's top text candidate, ranked as the evaluation harness ranks (`_score_candidate_task`):
    duplicates merged, the positive first, ties broken against it."""
    queries = model.encode(images=[render(e.scene) for e in examples], texts=[e.query_text for e in examples],
                           instruction=[e.instruction for e in examples], mode=mode)
    pool = sorted({c for e in examples for c in e.candidates})
    keys = model.encode(texts=pool, instruction=TARGET_INSTRUCTION)
    position = {c: i for i, c in enumerate(pool)}
    tops = []
    for query, example in zip(queries, examples):
        distinct = list(dict.fromkeys(example.candidates))
        gains = np.zeros(len(distinct))
        gains[0] = 1.0
        tops.append(distinct[int(top_k_pessimistic(keys[[position[c] for c in distinct]] @ query, gains, 1)[0])])
    return tops


def classify(model, subtask: str, split: str, per_subtask: int, mode: str | None) -> list[dict]:
    """One row per query: the answer, the model's top candidate, the outcome, the scene's object count."""
    examples = [e for _, e in balanced_examples(0, split, per_subtask, subtasks=(subtask,))]
    attribute = ATTRIBUTE[subtask]
    rows = []
    for top, example in zip(top_candidates(model, examples, mode), examples):
        others = {getattr(o, attribute) for o in example.scene.objects if o is not example.answer_object}
        outcome = "right" if top == example.target_text else "another_object" if top in others else "not_in_scene"
        rows.append({"answer": example.target_text, "top": top, "outcome": outcome,
                     "objects": len(example.scene.objects), "held_out": example.held_out_pair,
                     "nearest": nearest_other(example.scene, example.answer_object)})
    return rows


def classify_relation(model, subtask: str, split: str, per_subtask: int, mode: str | None,
                      examples: list | None = None) -> list[dict]:
    """One row per relational query: the answer, the top candidate, the outcome (right, the anchor's,
    another object's, in no object of the scene), the relation and the scene's object count.
    `examples`: the split's queries of `subtask` when the caller has them already."""
    examples = examples or [e for _, e in balanced_examples(0, split, per_subtask, subtasks=(subtask,))]
    name = partial(relational_answer, subtask)
    rows = []
    for top, example in zip(top_candidates(model, examples, mode), examples):
        others = {name(o) for o in example.scene.objects if o is not example.answer_object and o is not example.anchor}
        outcome = ("right" if top == example.target_text else "anchor" if top == name(example.anchor)
                   else "another_object" if top in others else "not_in_scene")
        rows.append({"answer": example.target_text, "top": top, "outcome": outcome, "relation": example.relation,
                     "objects": len(example.scene.objects),
                     "nearest": nearest_other(example.scene, example.answer_object)})
    return rows


def relation_baselines(subtask: str, examples, cells: int = 4) -> dict:
    """What a reader without spatial relations gets: "exclusion" names a random object other than
    the anchor; "cell_oracle" picks at random among the other objects whose cell (on a `cells` x
    `cells` grid of the image, the merged visual tokens' at 112 px) stands in the asked relation to
    the anchor's (all the others where none does). Expected Hit@1, as a share."""
    def centre(o):
        return replace(o, x=(min(int(o.x * cells), cells - 1) + 0.5) / cells,
                       y=(min(int(o.y * cells), cells - 1) + 0.5) / cells)

    exclusion = oracle = 0.0
    for example in examples:
        others = [o for o in example.scene.objects if o is not example.anchor]
        anchor = centre(example.anchor)
        placed = [o for o in others if relation_holds(centre(o), example.relation, anchor)] or others
        exclusion += sum(relational_answer(subtask, o) == example.target_text for o in others) / len(others)
        oracle += sum(relational_answer(subtask, o) == example.target_text for o in placed) / len(placed)
    return {"exclusion": exclusion / len(examples), "cell_oracle": oracle / len(examples), "cells": cells}


def classify_count(model, split: str, per_subtask: int, mode: str | None) -> list[dict]:
    """One row per count query: the answer, the top candidate, the objects, the scene head's count."""
    examples = [e for _, e in balanced_examples(0, split, per_subtask, subtasks=("count",))]
    heads = (head_counts(model, [render(e.scene) for e in examples]) if model.scene_head is not None
             else [None] * len(examples))
    return [{"answer": e.target_text, "top": top, "outcome": "right" if top == e.target_text else "wrong",
             "objects": len(e.scene.objects), "head_count": head}
            for top, e, head in zip(top_candidates(model, examples, mode), examples, heads)]


def summarize_count(rows: list[dict]) -> dict:
    """Right overall, by objects, and by whether the scene head counted right; the confusion."""
    right = [r for r in rows if r["outcome"] == "right"]
    wrong = [r for r in rows if r["outcome"] != "right"]
    block = {"right": wilson_share(len(right), len(rows)),
             "by_objects": {str(n): wilson_share(sum(r["outcome"] == "right" for r in rows if r["objects"] == n),
                                                 sum(r["objects"] == n for r in rows))
                            for n in sorted({r["objects"] for r in rows})},
             "confusion": [{"answer": a, "top": t, "n": n}
                           for (a, t), n in sorted(Counter((r["answer"], r["top"]) for r in rows).items())]}
    if rows and rows[0]["head_count"] is not None:
        head_right = [r for r in rows if r["head_count"] == r["objects"]]
        head_wrong = [r for r in rows if r["head_count"] != r["objects"]]
        def share(hits: int, n: int) -> dict | None:
            return wilson_share(hits, n) if n else None

        block["head_count_right"] = share(len(head_right), len(rows))
        block["right_where_head_right"] = share(sum(r["outcome"] == "right" for r in head_right), len(head_right))
        block["right_where_head_wrong"] = share(sum(r["outcome"] == "right" for r in head_wrong), len(head_wrong))
        block["errors_where_head_wrong"] = share(sum(r["head_count"] != r["objects"] for r in wrong), len(wrong))
    return block


def _right_by(rows: list[dict], key: str) -> dict:
    return {str(v): wilson_share(sum(r["outcome"] == "right" for r in rows if r[key] == v), sum(r[key] == v for r in rows))
            for v in sorted({r[key] for r in rows})}


def summarize(rows: list[dict], outcomes: tuple[str, ...] = OUTCOMES) -> dict:
    counts = Counter(r["outcome"] for r in rows)
    wrong = len(rows) - counts["right"]
    block = {o: wilson_share(counts[o], len(rows)) for o in outcomes}
    block["binding_share_of_errors"] = wilson_share(counts["another_object"], wrong) if wrong else None
    if "anchor" in outcomes:
        block["anchor_share_of_errors"] = wilson_share(counts["anchor"], wrong) if wrong else None
    block["by_objects"] = _right_by(rows, "objects")
    if rows and "relation" in rows[0]:
        block["by_relation"] = _right_by(rows, "relation")
    block["by_nearest"] = {}
    for low, high in NEAREST_BINS:
        inside = [r for r in rows if r["nearest"] is not None and low <= r["nearest"] < high]
        if inside:
            block["by_nearest"][f"{low:g}-{high:g}"] = wilson_share(sum(r["outcome"] == "right" for r in inside), len(inside))
    return block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-subtask", type=int, default=None, help="default: the balanced split's size")
    parser.add_argument("--mode", default=None, help="latent / discriminative / cot / sequential (default: the model's)")
    parser.add_argument("--reference", type=Path, default=None, help="an eval JSON to check the hits against")
    parser.add_argument("--subtasks", default="colour_of,shape_of,count",
                        help="any of colour_of, shape_of, count, relation_two_step, relation_attribute, refer")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    per_subtask = args.per_subtask or BALANCED_SIZES[args.split]
    model = LameModel.from_pretrained(args.model).eval()
    reference = json.loads(args.reference.read_text()) if args.reference else None
    report = {"model": str(args.model), "split": args.split, "per_subtask": per_subtask, "mode": args.mode,
              "subtasks": {}}
    subtasks = args.subtasks.split(",")
    unknown = [t for t in subtasks if t != "count" and t not in ATTRIBUTE and t not in RELATIONAL]
    if unknown:
        parser.error(f"unknown subtask {unknown[0]!r}; expected any of count, {', '.join([*ATTRIBUTE, *RELATIONAL])}")
    for subtask in subtasks:
        asked = ([e for _, e in balanced_examples(0, args.split, per_subtask, subtasks=(subtask,))]
                 if subtask in RELATIONAL else None)
        classifier = (classify_count if subtask == "count" else partial(classify_relation, subtask=subtask, examples=asked)
                      if subtask in RELATIONAL else partial(classify, subtask=subtask))
        rows = classifier(model, split=args.split, per_subtask=per_subtask, mode=args.mode)
        if reference is not None:
            expected = reference["tasks"][subtask]["per_query"]
            got = [float(r["outcome"] == "right") for r in rows]
            if got != expected:
                differ = sum(a != b for a, b in zip(got, expected))
                print(f"{subtask}: {differ} of {len(got)} hits differ from {args.reference}", file=sys.stderr)
                return 1
        if subtask == "count":
            report["subtasks"][subtask] = block = summarize_count(rows)
            if "head_count_right" not in block:
                print(f"count: right {100 * block['right']['share']:.1f} (no scene head)", flush=True)
                continue
            shown = {k: "-" if block[k] is None else f"{100 * block[k]['share']:.1f}"
                     for k in ("head_count_right", "right_where_head_right", "right_where_head_wrong",
                               "errors_where_head_wrong")}
            print(f"count: right {100 * block['right']['share']:.1f}; head count right {shown['head_count_right']}; "
                  f"right where the head was right {shown['right_where_head_right']}, where wrong "
                  f"{shown['right_where_head_wrong']}; errors with a wrong head count "
                  f"{shown['errors_where_head_wrong']}", flush=True)
            continue
        if subtask in RELATIONAL:
            report["subtasks"][subtask] = block = summarize(rows, RELATION_OUTCOMES)
            block["baselines"] = relation_baselines(subtask, asked)
            shares = ", ".join(f"{o.replace('_', ' ')} {100 * block[o]['share']:.1f}" for o in RELATION_OUTCOMES)
            by = "  ".join(f"{n} obj {100 * b['share']:.0f}% (n={b['n']})" for n, b in block["by_objects"].items())
            rel = "  ".join(f"{k} {100 * b['share']:.0f}%" for k, b in block["by_relation"].items())
            base = block["baselines"]
            print(f"{subtask}: {shares} | {by} | {rel} | without relations: naming a non-anchor object "
                  f"{100 * base['exclusion']:.1f}, knowing each object's cell {100 * base['cell_oracle']:.1f}",
                  flush=True)
            continue
        report["subtasks"][subtask] = block = summarize(rows)
        by = "  ".join(f"{n} obj {100 * b['share']:.0f}% (n={b['n']})" for n, b in block["by_objects"].items())
        near = "  ".join(f"{k} {100 * b['share']:.0f}% (n={b['n']})" for k, b in block["by_nearest"].items())
        print(f"{subtask}: right {100 * block['right']['share']:.1f}, another object's "
              f"{100 * block['another_object']['share']:.1f}, not in the scene "
              f"{100 * block['not_in_scene']['share']:.1f} | {by} | nearest other object {near}", flush=True)
    report["checked_against"] = str(args.reference) if reference is not None else None
    atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
