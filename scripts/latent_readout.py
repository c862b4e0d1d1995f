"""Do a LaME model's reason tokens hold the answer, and does the embedding get it right when they do?

    OMP_NUM_THREADS=1 .venv/bin/python scripts/latent_readout.py --model DIR --reference DIR/eval_test.json \
        --out readout.json [--per-subtask 100] [--subtasks count_attribute relation_two_step]

For a model with a latent decoder trained to reconstruct the target's text (`decoder_target=target`,
every see-* preset), this reads each query's K reason states out with the decoder
(`lame_tools.probe.readout_items`, greedy) on the balanced split the reference eval JSON was made on
(its split, seed and queries: the first `--per-subtask` of each subtask, default all), and scores the
read-out against the query's target text (exact match after lower-casing and spacing punctuation as
the word-level tokenizer decodes it: `lame_tools.evaluate.rationales.normalize`). With `--target
rationale` (a decoder trained with `decoder_target=rationale`) the read-out is a rationale: it is
scored field by field against the scene graph (`score_task_rationales`; per subtask "fields" holds
each field's mean and interval, as `summarize_rationales` writes them) and counts as right when its answer step is the gold answer. Per subtask, for the reasoning and perception subtasks pooled
and overall, it reports:

    readout      the share of queries whose read-out is the target text (`wilson_share`: n, count,
                 share, Wilson 95% interval; null where no query falls in the group)
    hit          the embedding's Hit@1 on the same queries (from the reference eval JSON)
    hit_if_right / hit_if_wrong
                 Hit@1 among the queries whose read-out is right / wrong (Wilson intervals)

and, with `--target rationale` on the relational subtasks (relation_two_step, relation_attribute,
refer), `relation_reading`: which relation the read-out's look step names for each true relation
(`confusion`), the share naming the right axis (`axis`: left / right or above / below) and, of
those, the right direction (`direction_if_axis`; 50% is a coin flip between the two),
so a reader can see whether what the tokens hold and what the embedding retrieves go together. The
read-out is what the decoder makes of the states, a lower bound on what they hold. Text-to-image
queries (no text target) are left out. Writes one JSON with every query's read-out and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools import load_model  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.data.shapes import PERCEPTION_SUBTASKS, REASONING_SUBTASKS, balanced_examples  # noqa: E402
from lame_tools.errors import InputError, LameError  # noqa: E402
from lame_tools.evaluate.rationales import (  # noqa: E402
    normalize,
    parse_rationale,
    score_task_rationales,
    summarize_rationales,
)
from lame_tools.intervals import wilson_share  # noqa: E402
from lame_tools.probe import readout_items  # noqa: E402


def share(flags: Sequence[bool]) -> dict | None:
    """The share of true flags as the reports write it (`wilson_share`); None when there are none."""
    return wilson_share(int(sum(flags)), len(flags)) if flags else None


AXES = {"left": "horizontal", "right": "horizontal", "above": "vertical", "below": "vertical"}


def read_relation(text: str) -> str | None:
    """The relation a read-out rationale's first look step names ("then look left : ..."), or None."""
    step = parse_rationale(text).first("look")
    return step.head if step else None


def relation_reading(truths: Sequence[str], reads: Sequence[str | None]) -> dict:
    """For queries with a true relation: how often each relation is read for it (None: no look step),
    the share whose read relation lies on the true one's axis, and among those the share naming the
    true direction."""
    confusion: dict[str, dict[str, int]] = {}
    for truth, read in zip(truths, reads):
        row = confusion.setdefault(truth, {})
        row[str(read)] = row.get(str(read), 0) + 1
    on_axis = [read == truth for truth, read in zip(truths, reads) if AXES.get(str(read)) == AXES[truth]]
    return {"confusion": {t: dict(sorted(r.items())) for t, r in sorted(confusion.items())},
            "axis": share([AXES.get(str(read)) == AXES[truth] for truth, read in zip(truths, reads)]),
            "direction_if_axis": share(on_axis)}


def block(right: Sequence[bool], hits: Sequence[bool]) -> dict:
    """The numbers of one subtask or pool (see the module docstring)."""
    return {
        "readout": share(right),
        "hit": share(hits),
        "hit_if_right": share([h for r, h in zip(right, hits) if r]),
        "hit_if_wrong": share([h for r, h in zip(right, hits) if not r]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--reference", type=Path, required=True,
                        help="the model's eval JSON on the balanced split (python -m lame_tools eval --out)")
    parser.add_argument("--per-subtask", type=int, default=None,
                        help="read out the first N queries of each subtask (default: all of the split's)")
    parser.add_argument("--subtasks", nargs="+", default=None, help="default: every subtask with a text target")
    parser.add_argument("--target", choices=("target", "rationale"), default="target",
                        help="what the decoder was trained to reconstruct (the run's decoder_target)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: 24, or 64 for rationales")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        reference = json.loads(args.reference.read_text())
        model = load_model(args.model, device="cpu")
        if model.decoder is None:
            raise InputError(f"{args.model} has no latent decoder, so there is nothing to read out.")
        split, seed = reference["split"], reference["seed"]
        tasks = reference["tasks"]
        size = len(next(iter(tasks.values()))["per_query"])
        wanted = args.subtasks or [t for t in tasks if t != "t2i"]
        unknown = [t for t in wanted if t not in tasks]
        if unknown:
            raise InputError(f"The reference has no subtask {unknown[0]!r}; it has {', '.join(tasks)}.")
        n = min(args.per_subtask or size, size)
        examples = [e for _, e in balanced_examples(seed, split, n, tuple(wanted))]
    except (OSError, KeyError, ValueError, LameError) as error:
        print(f"latent_readout: {error}", file=sys.stderr)
        return 2
    max_new_tokens = args.max_new_tokens or (64 if args.target == "rationale" else 24)
    started = time.perf_counter()
    per_subtask: dict[str, dict] = {}
    queries: dict[str, list[dict]] = {}
    for subtask in wanted:
        chosen = [e for e in examples if e.subtask == subtask]
        if any(e.target_has_image for e in chosen):
            print(f"latent_readout: skipping {subtask} (image targets)", file=sys.stderr)
            continue
        texts: list[str] = []
        for start in range(0, len(chosen), args.batch_size):
            batch = chosen[start : start + args.batch_size]
            texts += readout_items(model, [e.query_item() for e in batch], max_new_tokens).texts
        hits = [bool(h) for h in tasks[subtask]["per_query"][: len(chosen)]]
        if args.target == "rationale":
            rationales = score_task_rationales(texts, chosen)
            right = [v == 1.0 for v in rationales["fields"]["answer"]]
            per_subtask[subtask] = block(right, hits)
            per_subtask[subtask]["fields"] = summarize_rationales({subtask: {"rationales": rationales}})["overall"]["fields"]
        else:
            right = [normalize(t) == normalize(e.target_text) for t, e in zip(texts, chosen)]
            per_subtask[subtask] = block(right, hits)
        queries[subtask] = [{"readout": t, "target": e.target_text, "right": r, "hit": h}
                            for t, e, r, h in zip(texts, chosen, right, hits)]
        related = [(row, e) for row, e in zip(queries[subtask], chosen) if e.relation in AXES]
        if args.target == "rationale" and related:
            for row, e in related:
                row["relation"], row["read_relation"] = e.relation, read_relation(row["readout"])
            per_subtask[subtask]["relation_reading"] = relation_reading(
                [row["relation"] for row, _ in related], [row["read_relation"] for row, _ in related])
    pools = {"reasoning": [t for t in per_subtask if t in REASONING_SUBTASKS],
             "perception": [t for t in per_subtask if t in PERCEPTION_SUBTASKS],
             "overall": list(per_subtask)}
    pooled = {name: block([q["right"] for t in members for q in queries[t]],
                          [q["hit"] for t in members for q in queries[t]])
              for name, members in pools.items() if members}
    result = {"model": str(args.model), "reference": str(args.reference), "target": args.target,
              "split": split, "seed": seed,
              "per_subtask_n": n, "seconds": round(time.perf_counter() - started, 1),
              "subtasks": per_subtask, "pools": pooled, "queries": queries}
    atomic_write_json(args.out, result)

    def cell(stats: dict) -> str:
        if stats is None:
            return "-"
        low, high = stats["interval"]
        return f"{100 * stats['share']:.1f} [{100 * low:.1f}, {100 * high:.1f}] (n={stats['n']})"

    print("| subtask | read-out = target | Hit@1 | Hit@1, read-out right | Hit@1, read-out wrong |")
    print("|---|---|---|---|---|")
    for name, stats in list(per_subtask.items()) + [(f"<{k}>", v) for k, v in pooled.items()]:
        print(f"| {name} | {cell(stats['readout'])} | {cell(stats['hit'])} | {cell(stats['hit_if_right'])} "
              f"| {cell(stats['hit_if_wrong'])} |")
    for name, stats in per_subtask.items():
        reading = stats.get("relation_reading")
        if reading:
            print(f"{name}: relation read on the right axis {cell(reading['axis'])}, of those in the right "
                  f"direction {cell(reading['direction_if_axis'])}; read per true relation {reading['confusion']}")
    print(f"wrote {args.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
