"""Rendering robustness of one model: Hit@1 on the balanced Shapes split drawn by the default renderer
and by each rendering style of `ROBUSTNESS_VARIANTS` (the same scene graphs, other rendering).

    .venv/bin/python scripts/robustness.py --model assets/models/discriminative-shapes \\
        --out assets/results/robustness_discriminative.json [--per-subtask 30] [--styles pastel,shades]

Each rendering (the default one and every style) is evaluated by the library's resumable
`run_benchmark` into `<work>/<style>.json` (`--work`, default `<out>.styles/`; the per-task files
go next to it, `<style>.json.tasks/`). A rendering whose JSON exists and was made with the same
model files, split, seed, queries per subtask, mode and batch size is read back, not recomputed (its file is left as
it is), so a killed run resumes. The report (`--out`) holds per rendering the overall and
per-subtask Hit@1 with their 95% intervals, per style the ratio to the default rendering (overall
and per subtask), the paired difference style minus default on the same queries
(`lame_tools.evaluate.compare.compare_results`: stratified bootstrap interval, McNemar's p), the flag
"within_5pct" (overall ratio >= 0.95), a digest of each rendering's queries and candidates (texts,
instructions, image references: equal digests mean the same scene graphs were posed the same
questions) and the evaluation time. A markdown table of the styles is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: lame_tools

DEFAULT = "default"  # the name of the default rendering in the report and the work folder
THRESHOLD = 0.95  # a style is "within 5%" when its overall Hit@1 is at least this share of the default's


def parse_styles(text: str | None) -> list[str]:
    """The styles named in a comma-separated list (None or empty: every style of ROBUSTNESS_VARIANTS).

    Raises:
        InputError: a name that is not a style of ROBUSTNESS_VARIANTS.
    """
    from lame_tools.data.render import ROBUSTNESS_VARIANTS
    from lame_tools.errors import InputError

    if not text:
        return list(ROBUSTNESS_VARIANTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in ROBUSTNESS_VARIANTS:
            raise InputError(f"Unknown rendering style {name!r}; known: {', '.join(ROBUSTNESS_VARIANTS)}.")
    return list(dict.fromkeys(names))


def trained_mode(model_dir: Path) -> str:
    """The mode a LaME folder was trained for (its config's default mode), read without the weights."""
    from lame_tools.config import LameConfig
    from lame_tools.errors import ModelLoadError
    from lame_tools.model import CONFIG_FILE

    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} is not a LaME model folder (no {CONFIG_FILE}).")
    return LameConfig.load(path).default_mode


def inputs_digest(split: str, seed: int, per_subtask: int, style: str | None) -> dict[str, str]:
    """Per subtask, the SHA-256 of what the rendering's task asks: each query's instruction, text and
    image reference and its candidate list (the first candidate is the answer), in order. The image
    references name scenes of the split, so equal digests across renderings mean the same scene
    graphs with the same questions and answers; only the pixels behind the references differ."""
    from lame_tools.evaluate.sources import benchmark_sources

    digests = {}
    for source in benchmark_sources("shapes", None, split, seed, None, per_subtask=per_subtask, style=style):
        task = source.load()
        rows = [
            [dataclasses.astuple(query), [dataclasses.astuple(c) for c in candidates]]
            for query, candidates in zip(task.queries, task.candidates)
        ]
        digests[source.name] = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    return digests


def eval_seconds(path: Path, tasks: Sequence[str]) -> float | None:
    """The evaluation time of a rendering: the sum of the seconds its per-task files recorded (those
    files keep the timing of the run that computed each task, also when this run read it back)."""
    from lame_tools.evaluate.harness import task_file

    total = 0.0
    for name in tasks:
        try:
            total += float(json.loads(task_file(path, name).read_text())["timing"]["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return total


def _finished(path: Path, expected: dict, fingerprint: dict) -> dict | None:
    """The eval JSON at `path` when it was made by the same run: its summary carries the `expected`
    fields and every task file the run's fingerprint (model files, split, mode, batch size ...)."""
    from lame_tools.evaluate.harness import finished_task, task_file

    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or any(stored.get(key) != value for key, value in expected.items()):
        return None
    tasks = stored.get("tasks") or {}
    if not tasks or any(finished_task(task_file(path, name), fingerprint) is None for name in tasks):
        return None
    return stored


def evaluate_rendering(
    model_dir: Path,
    style: str | None,
    work: Path,
    split: str,
    seed: int,
    per_subtask: int,
    mode: str | None,
    batch_size: int = 32,
    device: str | None = None,
    show_progress_bar: bool = False,
    log: Callable[[str], Any] = print,
) -> tuple[dict, bool, float]:
    """The eval JSON of one rendering (`style` None: the default renderer) in `work/<name>.json`.

    A JSON already there from the same run (model files, split, seed, queries per subtask, style,
    mode, batch size: `run_benchmark`'s fingerprint in every task file) is read back and left untouched; otherwise `run_benchmark` computes it (reusing finished tasks of
    its `.tasks/` folder when their fingerprint matches). Returns (the eval JSON, whether it was
    read back, the wall-clock seconds spent here).
    """
    from lame_tools.evaluate import run_benchmark
    from lame_tools.evaluate.harness import run_fingerprint

    path = work / f"{style or DEFAULT}.json"
    expected = {
        "benchmark": "shapes", "model": str(model_dir), "split": split, "seed": seed, "per_subtask": per_subtask,
        "style": style, "mode": mode or trained_mode(model_dir),
    }
    fingerprint = run_fingerprint(
        model_dir, "lame", "shapes", None, [None, None], split=split, seed=seed, limit=None, mode=mode,
        batch_size=batch_size, num_frames=8, per_subtask=per_subtask, style=style,
    )
    stored = _finished(path, expected, fingerprint)
    if stored is not None:
        log(f"{style or DEFAULT}: finished earlier ({path}), skipped")
        return stored, True, 0.0
    start = time.perf_counter()
    summary = run_benchmark(
        model_dir, "shapes", path, split=split, seed=seed, mode=mode, batch_size=batch_size, device=device,
        show_progress_bar=show_progress_bar, log=log, per_subtask=per_subtask, style=style,
    )
    return summary, False, time.perf_counter() - start


def _ratio(score: float | None, default: float | None) -> float | None:
    """score / default (None when either is missing or the default is 0)."""
    if score is None or not default:
        return None
    return score / default


def _rendering_block(result: dict) -> dict:
    """Overall and per-subtask Hit@1 of one eval JSON, with their 95% intervals and query counts."""
    return {
        "overall": result["overall"],
        "interval": result.get("intervals", {}).get("overall"),
        "tasks": {
            name: {"hit@1": r["score"], "interval": r.get("interval"), "n": r["n"]}
            for name, r in result["tasks"].items()
        },
    }


def compare_style(style_result: dict, default_result: dict, seed: int = 0) -> dict:
    """One style against the default rendering: its Hit@1 (overall, per subtask) with intervals, the
    ratios style / default, the worst subtask ratio, the paired difference style minus default on the
    same queries (overall and per subtask), and "within_5pct" (overall ratio >= THRESHOLD; None when
    the default scores 0)."""
    from lame_tools.evaluate.compare import compare_results

    block = _rendering_block(style_result)
    paired = compare_results(style_result, default_result, seed=seed)
    block["ratio"] = _ratio(style_result["overall"], default_result["overall"])
    for name, task in block["tasks"].items():
        task["ratio"] = _ratio(task["hit@1"], default_result["tasks"].get(name, {}).get("score"))
        if name in paired["tasks"]:
            task["paired"] = paired["tasks"][name]
    ratios = {name: t["ratio"] for name, t in block["tasks"].items() if t["ratio"] is not None}
    worst = min(ratios, key=ratios.get) if ratios else None
    block["worst_subtask"] = worst
    block["worst_subtask_ratio"] = ratios[worst] if worst else None
    block["paired"] = paired["overall"]
    block["paired_meta_tasks"] = paired["meta_tasks"]
    block["within_5pct"] = None if block["ratio"] is None else block["ratio"] >= THRESHOLD
    return block


def robustness(
    model_dir: Path,
    out: Path,
    styles: Sequence[str] | None = None,
    work: Path | None = None,
    split: str = "test",
    seed: int = 0,
    per_subtask: int | None = None,
    mode: str | None = None,
    batch_size: int = 32,
    device: str | None = None,
    show_progress_bar: bool = False,
    log: Callable[[str], Any] = print,
) -> dict:
    """Evaluate the default rendering and each style (default: every one of ROBUSTNESS_VARIANTS),
    compare each style with the default on the same queries, and write the report to `out`.

    Raises:
        InputError: an unknown style, or a split with no balanced size and no `per_subtask`.
    """
    from lame_tools.atomic import atomic_write_json
    from lame_tools.data.render import ROBUSTNESS_VARIANTS
    from lame_tools.data.shapes import BALANCED_SIZES
    from lame_tools.errors import InputError

    styles = parse_styles(",".join(styles)) if styles else list(ROBUSTNESS_VARIANTS)
    if per_subtask is None:
        if split not in BALANCED_SIZES:
            raise InputError(f"The {split} split has no balanced size; give --per-subtask N.")
        per_subtask = BALANCED_SIZES[split]
    model_dir = Path(model_dir)
    work = Path(work) if work is not None else out.with_name(out.name + ".styles")
    work.mkdir(parents=True, exist_ok=True)
    common = {"split": split, "seed": seed, "per_subtask": per_subtask, "mode": mode, "batch_size": batch_size,
              "device": device, "show_progress_bar": show_progress_bar, "log": log}

    def run(style: str | None) -> tuple[dict, dict]:
        result, reused, wall = evaluate_rendering(model_dir, style, work, **common)
        timing = {"eval_seconds": eval_seconds(work / f"{style or DEFAULT}.json", list(result["tasks"])),
                  "wall_seconds": wall, "reused": reused}
        return result, timing

    default_result, default_timing = run(None)
    report: dict[str, Any] = {
        "model": str(model_dir),
        "split": split,
        "seed": seed,
        "per_subtask": per_subtask,
        "mode": default_result["mode"],
        "threshold": THRESHOLD,
        "work": str(work),
        "default": {
            **_rendering_block(default_result), **default_timing,
            "inputs_sha256": inputs_digest(split, seed, per_subtask, None),
        },
        "styles": {},
    }
    for style in styles:
        result, timing = run(style)
        block = compare_style(result, default_result, seed=seed)
        block.update(timing)
        block["inputs_sha256"] = inputs_digest(split, seed, per_subtask, style)
        block["same_inputs_as_default"] = block["inputs_sha256"] == report["default"]["inputs_sha256"]
        block["render_style"] = dataclasses.asdict(ROBUSTNESS_VARIANTS[style])
        report["styles"][style] = block
        log(f"{style}: overall {_points(block['overall'])} (ratio {_fixed(block['ratio'])}), "
            f"{_fixed(timing['eval_seconds'], 1)} s")
    atomic_write_json(out, report)
    return report


def _points(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _fixed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_markdown(report: dict) -> str:
    """The markdown table: per rendering its overall Hit@1 [95% interval], ratio to the default, worst
    subtask ratio (and which), within 5%, the paired difference in points [95% interval], and seconds."""
    from lame_tools.intervals import format_points

    def overall(block: dict) -> str:
        low_high = block.get("interval")
        cell = _points(block["overall"])
        return f"{cell} [{_points(low_high[0])}, {_points(low_high[1])}]" if low_high else cell

    lines = [
        "| style | overall | ratio | worst subtask ratio | within 5% | paired diff (points) | eval s |",
        "|---|---|---|---|---|---|---|",
    ]
    d = report["default"]
    lines.append(f"| {DEFAULT} | {overall(d)} | 1.000 | - | - | - | {_fixed(d['eval_seconds'], 1)} |")
    for name, s in report["styles"].items():
        worst = f"{_fixed(s['worst_subtask_ratio'])} ({s['worst_subtask']})" if s["worst_subtask"] else "-"
        within = "-" if s["within_5pct"] is None else ("yes" if s["within_5pct"] else "no")
        diff = s["paired"]["difference"]
        paired = format_points(diff["estimate"], diff["low"], diff["high"])
        lines.append(f"| {name} | {overall(s)} | {_fixed(s['ratio'])} | {worst} | {within} | {paired} "
                     f"| {_fixed(s['eval_seconds'], 1)} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    from lame_tools.constants import MODES
    from lame_tools.data.shapes import SPLITS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a LaME model folder")
    parser.add_argument("--out", type=Path, required=True, help="the robustness report (JSON)")
    parser.add_argument("--work", type=Path, default=None, help="eval JSON per rendering (default: <out>.styles/)")
    parser.add_argument("--styles", default=None, help="comma-separated styles (default: all of ROBUSTNESS_VARIANTS)")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--seed", type=int, default=0, help="Shapes world seed")
    parser.add_argument("--per-subtask", type=int, default=None, help="queries per subtask (default: the balanced size)")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: the mode the model was trained for")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the report from the command line; a user error prints one line and returns 2."""
    from lame_tools.errors import LameError

    args = build_parser().parse_args(argv)
    try:
        styles = parse_styles(args.styles)
        report = robustness(
            args.model, args.out, styles, args.work, args.split, args.seed, args.per_subtask, args.mode,
            args.batch_size, args.device, args.progress,
        )
    except LameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_markdown(report))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
