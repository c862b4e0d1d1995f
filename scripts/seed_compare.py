"""Paired comparison of two recipes over several training seeds: each query's Hit@1 averaged over the
seeds of a recipe, then A - B on the same queries (stratified bootstrap; McNemar is left out, the
averaged scores are not 0/1), per subtask, meta-task, the Shapes reasoning / perception pools and
overall; also each seed's overall score. With as many seeds on each side, given in the same order
(A's seed i trained with B's seed i), also each seed's paired difference of the pools and overall,
and the t interval over those per-seed differences: seed noise, which the query bootstrap ignores.
With `--c` (a third recipe's seeds, in the same order: the explicit-CoT model), also what share of
C's gain over B A's gain is, per pool: the ratio of the mean gains, and the t interval over seeds of
(A_i - B_i) - share x (C_i - B_i), the test of "A recovers at least `--share` of C's gain"; and
that margin on the seed means resampled over queries (A against B moved `--share` of the way to C,
query by query), which one seed suffices for, per pool and per subtask; and per subtask A's gain as a
share of C's (where the share comes from).

    .venv/bin/python scripts/seed_compare.py --a lame_s0.json lame_s1.json --b disc_s0.json disc_s1.json \
        [--c cot_s0.json cot_s1.json [--share 0.5]] [--out compare.json]
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
from lame_tools.errors import InputError  # noqa: E402
from lame_tools.evaluate.compare import compare_results, format_comparison, query_group_labels  # noqa: E402
from lame_tools.intervals import format_points, t_interval  # noqa: E402


def seed_mean(results: list[dict]) -> dict:
    """One result whose per-query scores are the mean over `results` (the same queries in each)."""
    tasks = {}
    for name, first in results[0]["tasks"].items():
        rows = [r["tasks"].get(name, {}).get("per_query") for r in results]
        if any(row is None or len(row) != len(rows[0]) for row in rows):
            raise InputError(f"Task {name!r} lacks per-query scores or has other queries in some seed.")
        tasks[name] = {"per_query": np.mean(rows, axis=0).tolist(), "meta_task": first["meta_task"]}
        labels = query_group_labels(results, name)
        if labels is not None:
            tasks[name]["per_query_group"] = labels
    return {"tasks": tasks, "model": [r.get("model") for r in results], "mode": results[0].get("mode"),
            "split": results[0].get("split"), "seed": results[0].get("seed")}


def with_group_labels(results: list[dict]) -> list[dict]:
    """`results` with each task's query-group labels filled in from whichever result carries them
    (results written before the labels were stored borrow another seed's: the same queries)."""
    labels = {name: query_group_labels(results, name) for name in results[0]["tasks"]}
    return [{**r, "tasks": {name: {**t, **({"per_query_group": labels[name]} if labels.get(name) else {})}
                            for name, t in r["tasks"].items()}} for r in results]


def over_seeds(a: list[dict], b: list[dict]) -> dict:
    """Per pool, query group ("shape_of/held_out", where any seed's result labels the queries) and
    overall: each seed's paired difference A_i - B_i and their t interval."""
    labelled = with_group_labels([*a, *b])
    per_seed = [compare_results(x, y) for x, y in zip(labelled[: len(a)], labelled[len(a):])]
    blocks = {**{name: ("pools", name) for name in per_seed[0]["pools"]},
              **{name: ("groups", name) for name in per_seed[0].get("groups", {})}}
    diffs = {name: [r[kind][key]["difference"]["estimate"] for r in per_seed] for name, (kind, key) in blocks.items()}
    diffs["overall"] = [r["overall"]["difference"]["estimate"] for r in per_seed]
    return {name: {"per_seed": d, "t_interval": t_interval(d).to_dict()} for name, d in diffs.items()}


def gain_share(gains_a: dict, gains_c: dict, share: float = 0.5) -> dict:
    """Per pool (and overall), from `over_seeds(A, B)` and `over_seeds(C, B)`: A's and C's per-seed
    gains over B, the ratio of their means, and the t interval of A_i - B_i - share x (C_i - B_i)
    (above 0: A recovers more than `share` of C's gain)."""
    out = {}
    for name, block in gains_a.items():
        if name not in gains_c:  # a query group labelled in A's results but not in C's
            continue
        ga, gc = np.array(block["per_seed"]), np.array(gains_c[name]["per_seed"])
        margin = ga - share * gc
        out[name] = {"gain_a": ga.tolist(), "gain_c": gc.tolist(), "share": share,
                     "ratio_of_means": float(ga.mean() / gc.mean()) if gc.mean() != 0 else None,
                     "margin_per_seed": margin.tolist(), "margin_t_interval": t_interval(margin).to_dict()}
    return out


def blend(b: dict, c: dict, share: float) -> dict:
    """A result whose per-query scores lie `share` of the way from B's to C's (both seed means), so
    that A minus it is, query by query, A - B - share x (C - B): the gain-share margin resampled over
    queries (it needs one seed only)."""
    tasks = {name: {**task, "per_query": ((1 - share) * np.asarray(task["per_query"])
                                          + share * np.asarray(c["tasks"][name]["per_query"])).tolist()}
             for name, task in b["tasks"].items() if name in c["tasks"]}
    return {**b, "tasks": tasks, "model": f"{1 - share:g} x B + {share:g} x C"}


def margin_by_queries(a_mean: dict, b_mean: dict, c_mean: dict, share: float) -> dict:
    """Per pool and overall: A - B - share x (C - B) on the seed means, with the paired bootstrap
    interval over queries (above 0: A recovers more than `share` of C's gain on these queries)."""
    report = compare_results(a_mean, blend(b_mean, c_mean, share))
    out = {name: block["difference"] for name, block in report.get("pools", {}).items()}
    out["overall"] = report["overall"]["difference"]
    return {"share": share, **out, "tasks": {name: block["difference"] for name, block in report["tasks"].items()}}


def share_by_task(a_mean: dict, b_mean: dict, c_mean: dict) -> dict:
    """Per subtask, on the seed means: A's and C's gains over B and A's gain as a share of C's (None
    where C does not gain): where a recipe's share of C's gain comes from."""
    out = {}
    for name, task in b_mean["tasks"].items():
        if name not in a_mean["tasks"] or name not in c_mean["tasks"]:
            continue
        base = float(np.mean(task["per_query"]))
        gain_a = float(np.mean(a_mean["tasks"][name]["per_query"])) - base
        gain_c = float(np.mean(c_mean["tasks"][name]["per_query"])) - base
        out[name] = {"gain_a": gain_a, "gain_c": gain_c, "share": gain_a / gain_c if gain_c > 0 else None}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True, help="eval JSONs of recipe A, one per seed")
    parser.add_argument("--b", nargs="+", type=Path, required=True, help="eval JSONs of recipe B, one per seed")
    parser.add_argument("--c", nargs="+", type=Path, default=None,
                        help="eval JSONs of recipe C (e.g. explicit CoT), one per seed, paired with B's")
    parser.add_argument("--share", type=float, default=0.5, help="the share of C's gain A is tested against")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    a = [json.loads(p.read_text()) for p in args.a]
    b = [json.loads(p.read_text()) for p in args.b]
    c = [json.loads(p.read_text()) for p in args.c] if args.c else None
    if c is not None and not len(a) == len(b) == len(c):
        parser.error(f"--c needs as many seeds as --a and --b (got {len(a)}, {len(b)}, {len(c)}).")
    a_mean, b_mean = seed_mean(a), seed_mean(b)
    report = compare_results(a_mean, b_mean)
    report["seeds"] = {"a": {str(p): r["overall"] for p, r in zip(args.a, a)},
                       "b": {str(p): r["overall"] for p, r in zip(args.b, b)}}
    if len(a) == len(b) > 1:
        report["over_seeds"] = over_seeds(a, b)
    if c is not None:
        c_mean = seed_mean(c)
        report["gain_share_by_queries"] = margin_by_queries(a_mean, b_mean, c_mean, args.share)
        report["share_by_task"] = share_by_task(a_mean, b_mean, c_mean)
        if len(a) > 1:
            report["gain_share"] = gain_share(report["over_seeds"], over_seeds(c, b), args.share)
    print(format_comparison(report))
    for side, scores in report["seeds"].items():
        print(f"{side}: overall per seed " + ", ".join(f"{100 * s:.1f}" for s in scores.values()))
    for name, block in report.get("over_seeds", {}).items():
        ci = block["t_interval"]
        print(f"{name} per seed (A_i - B_i): " + ", ".join(f"{100 * d:+.1f}" for d in block["per_seed"])
              + f"; over seeds {format_points(ci['estimate'], ci['low'], ci['high'])}"
              f" (t, {ci['n'] - 1} df)")
    by_queries = report.get("gain_share_by_queries", {})
    for name, d in by_queries.items():
        if name not in ("share", "tasks"):
            print(f"{name}: A-B minus {by_queries['share']:g} x (C-B) on the seed means, by queries "
                  + format_points(d["estimate"], d["low"], d["high"]))
    for name, row in report.get("share_by_task", {}).items():
        margin = by_queries["tasks"][name]
        print(f"{name}: A {100 * row['gain_a']:+.1f}, C {100 * row['gain_c']:+.1f} over B"
              + ("" if row["share"] is None else f" ({100 * row['share']:.0f}% of C's gain)")
              + f"; A-B minus {by_queries['share']:g} x (C-B) "
              + format_points(margin["estimate"], margin["low"], margin["high"]))
    for name, block in report.get("gain_share", {}).items():
        ci, ratio = block["margin_t_interval"], block["ratio_of_means"]
        print(f"{name}: A's gain over B is {'-' if ratio is None else f'{100 * ratio:.0f}%'} of C's;"
              f" per seed A-B minus {block['share']:g} x (C-B): "
              + ", ".join(f"{100 * d:+.1f}" for d in block["margin_per_seed"])
              + f"; over seeds {format_points(ci['estimate'], ci['low'], ci['high'])}")
    if args.out:
        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
