"""Are the reason tokens causally used? Ablate all K of them on the balanced Shapes split and measure
the paired change in Hit@1.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/causal_use.py --out causal_use.json
    .venv/bin/python scripts/causal_use.py --model DIR --split validation --per-subtask 100 --how zero swap drop

For one LaME model folder (K > 0; a sequential-latent model's K steps with `--how mask` only), on
the balanced split (`shapes.balanced_examples`; default: test, 300 queries per subtask), for every subtask with text candidates (all but t2i), this runs
`lame_tools.probe.ablate(model, examples, tokens="all", how=H)` once per subtask and condition H
(zero, swap, and swap-task, drop or mask when asked; swap takes its donor streams from the next query of
the same subtask, cyclically, so always another scene; swap-task from the query at the same position
of the next text subtask, so another scene and another question: what the tokens hold about the
subtask is swapped too; mask hides the tokens from `[EMBED]` and keeps every position, where drop
shifts `[EMBED]`'s). Per subtask, for the reasoning subtasks pooled
(`REASONING_SUBTASKS`), for the perception subtasks pooled and overall (the mean of the text
subtasks' means) it reports Hit@1 before and after, and the paired difference after - before with its
95% stratified-bootstrap interval and exact McNemar p (`lame_tools.intervals.paired_comparison`).
Per H a verdict: "the reason tokens are used" when the pooled reasoning Hit@1 drops by at least
5 points and the interval of the difference excludes 0; otherwise a sentence saying what was found.

Before ablating, the unablated Hit@1 that `ablate` computes is checked query by query against the
evaluation harness (`python -m lame_tools eval --balanced`): against the recorded eval JSON of the
model (`--reference`; by default `assets/results/eval_balanced_<folder>_<mode>.json` when it was made
for the same folder, split, seed and size), else against `evaluate_shapes` run here. Any query that
differs is named with its likely cause (the positive repeated among the candidates, which the
harness merges and `ablate` ranks behind its copy; or a near tie, float noise of different batching).

Writes one JSON (`--out`) holding every query's Hit@1 (and rank) before and after, per condition, so
the numbers can be re-analysed, and prints a markdown table. Resumable: each (condition, subtask)
result is kept in `--cache` (default `<out>.cache/`), keyed by the model's weights and the split; a
rerun reads what is there. A model with K = 0 gets one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from lame_tools.atomic import atomic_write_json  # noqa: E402
from lame_tools.constants import SEQUENTIAL_MODE  # noqa: E402
from lame_tools.data.shapes import (  # noqa: E402
    BALANCED_SIZES,
    PERCEPTION_SUBTASKS,
    REASONING_SUBTASKS,
    SUBTASKS,
    TARGET_INSTRUCTION,
    Example,
    balanced_examples,
)
from lame_tools.errors import InputError, LameError  # noqa: E402
from lame_tools.fingerprint import model_fingerprint  # noqa: E402
from lame_tools.intervals import format_points, paired_comparison  # noqa: E402
from lame_tools.probe import ablate  # noqa: E402

HOWS = ("zero", "swap", "swap-task", "drop", "mask")
DEFAULT_HOWS = ("zero", "swap")
MIN_DROP = 0.05  # the bar: at least 5 points of pooled reasoning Hit@1
DONORS = ("swap: each query's donor is the next query of the same subtask (cyclic), i.e. another scene; "
          "swap-task: the query at the same position of the next text subtask (cyclic)")
VERSION = 1  # of the cached per-condition files


# ---- numbers ---------------------------------------------------------------------------------------


def paired_block(
    before: Mapping[str, Sequence[float]], after: Mapping[str, Sequence[float]], subtasks: Sequence[str]
) -> dict[str, Any]:
    """Hit@1 before and after over `subtasks` (the mean of their means) and the paired difference
    after - before: stratified bootstrap interval (queries resampled within their subtask) and
    exact McNemar p over the pooled queries. Fractions, not points."""
    b = {s: np.asarray(before[s], dtype=np.float64) for s in subtasks}
    a = {s: np.asarray(after[s], dtype=np.float64) for s in subtasks}
    comparison = paired_comparison(a, b)
    return {
        "subtasks": list(subtasks),
        "n": int(sum(v.size for v in b.values())),
        "hit1_before": float(np.mean([v.mean() for v in b.values()])),
        "hit1_after": float(np.mean([v.mean() for v in a.values()])),
        "difference": comparison.difference.estimate,
        "interval": [comparison.difference.low, comparison.difference.high],
        "p_mcnemar": comparison.p_mcnemar,
        "gained": comparison.a_only,  # right only after the ablation
        "lost": comparison.b_only,  # right only before it
    }


def verdict(
    before: Mapping[str, Sequence[float]],
    after: Mapping[str, Sequence[float]],
    subtasks: Sequence[str] = REASONING_SUBTASKS,
    how: str = "ablating",
    min_drop: float = MIN_DROP,
) -> dict[str, Any]:
    """Whether the reason tokens are used on `subtasks` (default the reasoning ones), from per-query
    Hit@1 (0/1) before and after an ablation, per subtask.

    "used" is True when the pooled Hit@1 drops by at least `min_drop` (fraction) and the 95%
    interval of the paired difference lies below 0. The sentence says what was found either way.
    """
    block = paired_block(before, after, subtasks)
    drop = -block["difference"]
    low, high = block["interval"]
    excludes_zero = high < 0 or low > 0
    used = drop >= min_drop - 1e-9 and high < 0
    found = (
        f"{how} all reason tokens changes pooled reasoning Hit@1 by {format_points(block['difference'], low, high)} points "
        f"(McNemar p = {block['p_mcnemar']:.2g}, "
        f"{block['lost']} queries lost, {block['gained']} gained, n = {block['n']})"
    )
    bar = f"{100 * min_drop:g}"
    if used:
        sentence = f"the reason tokens are used: {found}; a drop of at least {bar} points with the interval excluding 0."
    elif high < 0:
        sentence = f"a real but small effect: {found}; the interval excludes 0 but the drop is under {bar} points."
    elif low > 0:
        sentence = f"the ablation helps: {found}; Hit@1 rises, the tokens cost accuracy here."
    elif drop >= min_drop - 1e-9:
        sentence = f"not shown: {found}; the drop reaches {bar} points but its interval includes 0."
    else:
        sentence = f"no measurable effect: {found}; the interval includes 0."
    return {
        "used": bool(used),
        "drop_points": 100 * drop,
        "interval_points": [100 * low, 100 * high],
        "excludes_zero": bool(excludes_zero),
        "p_mcnemar": block["p_mcnemar"],
        "n": block["n"],
        "min_drop_points": 100 * min_drop,
        "sentence": sentence,
    }


def summarize_condition(
    before: Mapping[str, Sequence[float]], after: Mapping[str, Sequence[float]], how: str
) -> dict[str, Any]:
    """Per subtask, reasoning pooled, perception pooled and overall blocks, and the verdict, of one condition."""
    subtasks = list(before)
    reasoning = [s for s in REASONING_SUBTASKS if s in before]
    perception = [s for s in PERCEPTION_SUBTASKS if s in before]
    out: dict[str, Any] = {"subtasks": {s: paired_block(before, after, [s]) for s in subtasks}}
    if perception:
        out["perception"] = paired_block(before, after, perception)
    if reasoning:
        out["reasoning"] = paired_block(before, after, reasoning)
        out["verdict"] = verdict(before, after, reasoning, how)
    out["overall"] = paired_block(before, after, subtasks)
    return out


# ---- the check against the evaluation harness --------------------------------------------------------


def ablated_mode(model: Any) -> str:
    """The mode whose tokens are ablated: "sequential" for a sequential-latent model (its steps, mask
    only), else "latent"."""
    return SEQUENTIAL_MODE if model.config.default_mode == SEQUENTIAL_MODE else "latent"


def reference_from_file(path: Path, folder: Path | None, split: str, seed: int, per_subtask: int,
                        mode: str = "latent") -> dict | None:
    """Per-query Hit@1 per subtask from an eval JSON made for the same folder (when known), split, seed,
    size and `mode`; None when the file is absent or made for something else."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same_model = folder is None or Path(str(data.get("model", ""))).resolve() == folder.resolve()
    same_run = (data.get("split"), data.get("seed"), data.get("per_subtask"), data.get("mode")) == (
        split, seed, per_subtask, mode)
    if not (same_model and same_run):
        return None
    return {name: task["per_query"] for name, task in data.get("tasks", {}).items() if "per_query" in task}


def reference_from_harness(model: Any, split: str, seed: int, per_subtask: int, subtasks: Sequence[str]) -> dict:
    """Per-query Hit@1 per subtask from the evaluation harness run here (`evaluate_shapes`, in the mode
    that is ablated: `ablated_mode`)."""
    from lame_tools.evaluate.harness import evaluate_shapes

    result = evaluate_shapes(model, split, mode=ablated_mode(model), seed=seed, per_subtask=per_subtask, tasks=list(subtasks))
    return {name: task["per_query"] for name, task in result["tasks"].items()}


def _margin(model: Any, example: Example) -> float:
    """The positive's cosine minus the best other candidate's (the query alone in its batch)."""
    import torch

    with torch.no_grad():
        query = model.forward_items([example.query_item()], ablated_mode(model)).embeddings[0].float().cpu().numpy()
    cands = model.encode(texts=list(example.candidates), instruction=TARGET_INSTRUCTION)
    scores = cands @ query
    return float(scores[0] - np.delete(scores, 0).max())


def check_reference(
    model: Any,
    before: Mapping[str, Sequence[float]],
    examples: Mapping[str, Sequence[Example]],
    reference: Mapping[str, Sequence[float]],
    source: str,
) -> dict[str, Any]:
    """Compare `ablate`'s unablated Hit@1 with the harness's, query by query; name each query that
    differs with its likely cause (the positive repeated among the candidates, or a near tie)."""
    per_subtask, differing = {}, []
    for subtask, hits in before.items():
        ref = reference.get(subtask)
        if ref is None or len(ref) != len(hits):
            per_subtask[subtask] = {"compared": False}
            continue
        ours, theirs = np.asarray(hits, float), np.asarray(ref, float)
        bad = np.flatnonzero(ours != theirs)
        per_subtask[subtask] = {"compared": True, "ablate": float(ours.mean()), "harness": float(theirs.mean()),
                                "n_differ": int(bad.size)}
        for q in bad.tolist():
            example = examples[subtask][q]
            repeated = example.candidates.count(example.candidates[0]) > 1
            differing.append({"subtask": subtask, "query": q, "ablate": float(ours[q]), "harness": float(theirs[q]),
                              "positive_repeated": repeated, "margin": _margin(model, example)})
    compared = [s for s, v in per_subtask.items() if v["compared"]]
    if not compared:
        sentence = f"not checked: {source} holds none of these subtasks at this size."
    elif not differing:
        n = sum(len(before[s]) for s in compared)
        sentence = (f"ablate's unablated Hit@1 equals the harness's ({source}) on all {n} queries of "
                    f"{len(compared)} subtasks.")
    else:
        repeated = sum(d["positive_repeated"] for d in differing)
        near = max(abs(d["margin"]) for d in differing)
        sentence = (f"{len(differing)} queries differ from the harness ({source}): {repeated} have the positive "
                    "repeated among the candidates (the harness merges duplicates, ablate ranks the copy ahead "
                    f"of the positive); the largest |positive - best other| cosine margin among them is "
                    f"{near:.2g} (a margin near 0 is float noise of different batching).")
    return {"source": source, "equal": bool(compared) and not differing, "per_subtask": per_subtask,
            "differing": differing, "sentence": sentence}


# ---- running --------------------------------------------------------------------------------------------


def text_subtasks(indexed: Sequence[tuple[int, Example]]) -> dict[str, list[tuple[int, Example]]]:
    """The (scene index, example) pairs of every subtask whose targets are texts, in SUBTASKS order."""
    grouped: dict[str, list[tuple[int, Example]]] = {}
    for index, example in indexed:
        if example.candidates and not example.target_has_image:
            grouped.setdefault(example.subtask, []).append((index, example))
    return {s: grouped[s] for s in SUBTASKS if s in grouped}


def check_model(model: Any, name: str = "this model") -> None:
    """Raise InputError (one sentence) unless the model has reason tokens to ablate."""
    if model.num_reason_tokens == 0:
        raise InputError(f"{name} has no reason tokens (K = 0), so there is nothing to ablate: causal use of "
                         "reason tokens can only be measured on a LaME model with K > 0.")


def _condition(
    model: Any, examples: list[Example], how: str, cache: Path | None, key: dict, donors: list[Example] | None = None
) -> dict[str, list]:
    """One ablate call (all K tokens, one subtask), read from or written to its cache file; `how` is
    one of HOWS ("swap-task": a swap whose donors are `donors`)."""
    path = None
    if cache is not None:
        path = cache / f"{key['how']}_{key['subtask']}.json"
        if path.exists():
            try:
                stored = json.loads(path.read_text())
            except ValueError:
                stored = {}
            if stored.get("key") == key:
                return stored["result"]
    result = ablate(model, examples, tokens="all", how="swap" if how == "swap-task" else how, donors=donors)
    found = {
        "rank_before": result.rank_before.tolist(),
        "rank_after": result.rank_after[0].tolist(),
        "cosine": [round(float(c), 6) for c in result.cosine[0]],
        "n_candidates": result.n_candidates.tolist(),
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"key": key, "result": found})
    return found


def run_causal_use(
    model: Any,
    split: str = "test",
    per_subtask: int | None = None,
    hows: Sequence[str] = DEFAULT_HOWS,
    seed: int = 0,
    cache: Path | None = None,
    reference: Mapping[str, Sequence[float]] | None = None,
    reference_source: str = "",
    check_against_harness: bool = True,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Ablate all reason tokens of `model` per text subtask of the balanced split and report.

    Args:
        reference: per-query Hit@1 per subtask from the evaluation harness to check the unablated
            Hit@1 against; None: run the harness here when `check_against_harness`, else no check.

    Returns the JSON written by the script: split, model facts, "reference_check" and, per
    condition, "per_query" (scene index, Hit@1 and rank before and after, cosine to the original
    embedding, per subtask) and the summary blocks of `summarize_condition`.
    """
    check_model(model)
    for how in hows:
        if how not in HOWS:
            raise InputError(f"--how must be among {HOWS}, got {how!r}.")
    n = per_subtask if per_subtask is not None else BALANCED_SIZES[split]
    grouped = text_subtasks(balanced_examples(seed, split, n))
    examples = {s: [e for _, e in pairs] for s, pairs in grouped.items()}
    fingerprint = model_fingerprint(model)
    started = time.perf_counter()
    conditions: dict[str, Any] = {}
    before_hits: dict[str, list[float]] | None = None
    order = list(grouped)
    for how in hows:
        per_query: dict[str, Any] = {}
        for position, (subtask, pairs) in enumerate(grouped.items()):
            key = {"version": VERSION, "model": fingerprint, "split": split, "seed": seed, "per_subtask": n,
                   "how": how, "subtask": subtask, "tokens": "all"}
            t0 = time.perf_counter()
            donors = examples[order[(position + 1) % len(order)]] if how == "swap-task" else None
            found = _condition(model, examples[subtask], how, cache, key, donors)
            per_query[subtask] = {
                "scene_index": [i for i, _ in pairs],
                "hit1_before": [float(r == 1) for r in found["rank_before"]],
                "hit1_after": [float(r == 1) for r in found["rank_after"]],
                **found,
            }
            log(f"{how:5s} {subtask:19s} {time.perf_counter() - t0:6.1f} s")
        before = {s: v["hit1_before"] for s, v in per_query.items()}
        after = {s: v["hit1_after"] for s, v in per_query.items()}
        if before_hits is None:
            before_hits = before
        elif before != before_hits:
            raise RuntimeError("the unablated Hit@1 differs between conditions (non-deterministic forward?)")
        conditions[how] = {"per_query": per_query, **summarize_condition(before, after, how)}
    seconds = time.perf_counter() - started
    assert before_hits is not None
    if reference is None and check_against_harness:
        reference = reference_from_harness(model, split, seed, n, list(grouped))
        reference_source = "evaluate_shapes run here"
    check = (check_reference(model, before_hits, examples, reference, reference_source or "the reference")
             if reference is not None else {"equal": None, "sentence": "not checked (no reference)."})
    return {
        "split": split,
        "seed": seed,
        "per_subtask": n,
        "num_reason_tokens": model.num_reason_tokens,
        "model_fingerprint": fingerprint,
        "tokens": "all",
        "hows": list(hows),
        "donors": DONORS,
        "subtasks": list(grouped),
        "reasoning_subtasks": [s for s in REASONING_SUBTASKS if s in grouped],
        "perception_subtasks": [s for s in PERCEPTION_SUBTASKS if s in grouped],
        "overall_is": "the mean of the text subtasks' means (t2i has image targets and no reason-token ablation)",
        "reference_check": check,
        "conditions": conditions,
        "ablation_seconds": seconds,
    }


# ---- table ------------------------------------------------------------------------------------------------


def _points(block: dict) -> str:
    low, high = block["interval"]
    return format_points(block["difference"], low, high)


def _p(value: float | None) -> str:
    return "-" if value is None else (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}")


def format_table(report: dict) -> str:
    """The markdown table (one row per subtask, the pooled blocks, overall; per condition: Hit@1 after,
    the paired difference in points with its 95% interval, McNemar p) and one verdict line per condition."""
    hows = report["hows"]
    head = "| subtask | n | Hit@1 before |" + "".join(f" {h}: after | {h}: after - before [95%] | {h}: p |" for h in hows)
    lines = [head, "|---|---:|---:|" + "---:|---:|---:|" * len(hows)]
    first = report["conditions"][hows[0]]
    rows = [(s, lambda c, s=s: c["subtasks"][s]) for s in report["subtasks"]]
    if "perception" in first:
        rows.append((f"**perception pooled** ({', '.join(report['perception_subtasks'])})", lambda c: c["perception"]))
    if "reasoning" in first:
        rows.append((f"**reasoning pooled** ({', '.join(report['reasoning_subtasks'])})", lambda c: c["reasoning"]))
    rows.append(("**overall** (text subtasks)", lambda c: c["overall"]))
    for name, pick in rows:
        block = pick(first)
        cells = [name, str(block["n"]), f"{100 * block['hit1_before']:.1f}"]
        for h in hows:
            b = pick(report["conditions"][h])
            cells += [f"{100 * b['hit1_after']:.1f}", _points(b), _p(b["p_mcnemar"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for h in hows:
        if "verdict" in report["conditions"][h]:
            lines.append(f"- **{h}**: {report['conditions'][h]['verdict']['sentence']}")
    lines.append(f"- check against the harness: {report['reference_check']['sentence']}")
    return "\n".join(lines)


# ---- command line -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run, write the JSON, print the table; a user error: one line on stderr, status 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="a LaME folder with K > 0")
    parser.add_argument("--split", choices=sorted(BALANCED_SIZES), default="test")
    parser.add_argument("--per-subtask", type=int, default=None, help="default: 300 on test, 100 on validation")
    parser.add_argument("--seed", type=int, default=0, help="Shapes world seed")
    parser.add_argument("--how", nargs="+", choices=HOWS, default=list(DEFAULT_HOWS))
    parser.add_argument("--reference", default="auto",
                        help="eval JSON with per-query scores to check the unablated Hit@1 against; 'auto': the "
                             "recorded assets/results/eval_balanced_<folder>_<mode>.json when it matches, else "
                             "the harness run here; 'harness': always run it; 'none': no check")
    parser.add_argument("--cache", type=Path, default=None, help="per-condition results (default <out>.cache/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import torch

    grad_was_enabled = torch.is_grad_enabled()
    torch.set_grad_enabled(False)  # restored below: main() is also called in-process (tests)
    try:
        started = time.perf_counter()
        model = load_model(args.model, device=args.device)
        check_model(model, str(args.model))
        n = args.per_subtask if args.per_subtask is not None else BALANCED_SIZES[args.split]
        reference, source = None, ""
        if args.reference not in ("auto", "harness", "none"):
            reference = reference_from_file(Path(args.reference), None, args.split, args.seed, n, ablated_mode(model))
            if reference is None:
                raise InputError(f"{args.reference} is not an eval JSON of {ablated_mode(model)} mode on the balanced "
                                 f"{args.split} split with {n} queries per subtask (seed {args.seed}).")
            source = args.reference
        elif args.reference == "auto":
            mode = ablated_mode(model)
            path = ROOT / "assets" / "results" / f"eval_balanced_{args.model.resolve().name}_{mode}.json"
            reference = reference_from_file(path, args.model, args.split, args.seed, n, mode)
            source = str(path.relative_to(ROOT)) if reference is not None else ""
        report = run_causal_use(
            model, args.split, n, args.how, args.seed,
            cache=args.cache or args.out.with_name(args.out.name + ".cache"),
            reference=reference, reference_source=source, check_against_harness=args.reference != "none",
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except LameError as exc:
        print(f"causal_use: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_grad_enabled(grad_was_enabled)
    report["model"] = str(args.model)
    report["total_seconds"] = time.perf_counter() - started
    report["torch_threads"] = torch.get_num_threads()
    atomic_write_json(args.out, report)
    print(format_table(report))
    print(f"\n{args.split} split, {n} per subtask, K = {report['num_reason_tokens']}; "
          f"{report['total_seconds']:.0f} s in all ({report['ablation_seconds']:.0f} s ablating), "
          f"torch threads {report['torch_threads']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
