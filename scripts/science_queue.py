"""Run a queue of training recipes one after another, each resumable, and score each on the balanced
validation split (the split every recipe choice is made on).

    .venv/bin/python scripts/science_queue.py scripts/queues/perception_1.json --runs runs/science

QUEUE.json is a list of {"name", "preset", "set": ["KEY=VALUE", ...], "init_from": folder or null,
"tasks": [subtasks to score] or null, "per_subtask": 100}. A finished run (its model folder exists) is
not trained again; an interrupted one resumes from its last checkpoint (`train --resume`); a run whose
score is in the results file is not scored again. Stop it at any moment and start it again: nothing
finished is lost. `--only NAME ...` runs those recipes of the queue alone. The results JSON maps run
name -> the recipe, wall time, and the eval summary (per-subtask Hit@1 with 95% intervals).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402


def train(run: dict, runs: Path, threads: int) -> float:
    out = runs / run["name"]
    if (out / "model" / "model.safetensors").is_file():
        return 0.0
    command = [sys.executable, "-m", "lame_tools", "train", "--preset", run["preset"], "--out", str(out),
               "--resume", "--threads", str(threads), "--quiet"]
    if run.get("init_from"):
        command += ["--init-from", run["init_from"]]
    for setting in run.get("set", []):
        command += ["--set", setting]
    start = time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    return time.time() - start


def score(run: dict, runs: Path, split: str) -> dict:
    out = runs / run["name"]
    result = out / f"eval_{split}.json"
    command = [sys.executable, "-m", "lame_tools", "eval", "--model", str(out / "model"), "--split", split,
               "--per-subtask", str(run.get("per_subtask", 100)), "--out", str(result), "--no-progress"]
    if run.get("tasks"):
        command += ["--tasks", *run["tasks"]]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queue", type=Path)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "science")
    parser.add_argument("--results", type=Path, default=ROOT / "assets" / "results" / "science_validation.json")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these recipes of the queue")
    args = parser.parse_args()
    queue = json.loads(args.queue.read_text())
    if args.only:
        names = [run["name"] for run in queue]
        unknown = [name for name in args.only if name not in names]
        if unknown:
            parser.error(f"{', '.join(unknown)} is not in {args.queue.name}; it holds {', '.join(names)}.")
        queue = [run for run in queue if run["name"] in args.only]
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for run in queue:
        key = f"{run['name']}@{args.split}"
        if key in results:
            continue
        seconds = train(run, args.runs, args.threads)
        summary = score(run, args.runs, args.split)
        train_log = args.runs / run["name"] / "summary.json"
        wall = json.loads(train_log.read_text()).get("wall_s") if train_log.is_file() else None
        entry = {
            "recipe": run,
            "train_wall_seconds": wall if wall is not None else round(seconds, 1),
            "overall": summary["overall"],
            "tasks": {name: {k: t.get(k) for k in ("score", "n", "interval", "query_groups")}
                      for name, t in summary["tasks"].items()},
        }
        # read again before writing: another queue may have added its runs since this one started
        # (a queue paused for an hour wrote its old copy over theirs, 2026-12-06)
        results = json.loads(args.results.read_text()) if args.results.is_file() else {}
        results[key] = entry
        atomic_write_json(args.results, results)
        cells = "  ".join(f"{n} {100 * t['score']:.1f}" for n, t in summary["tasks"].items())
        print(f"{run['name']}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
