"""Run the training experiment matrix: stage 0 once, then every (preset, seed) run, each evaluated on
the held-out Shapes test split; resumable (rerun the same command after a kill) and parallel.

    python scripts/train_matrix.py --runs runs --parallel 1                 # everything, one at a time
    python scripts/train_matrix.py --runs runs --only lame:0,discriminative:0,cot:0 --ship
    python scripts/train_matrix.py --runs runs --aggregate assets/results/training_matrix.json

Each run lives in `runs/<preset>-s<seed>/` (checkpoints, log.jsonl, model/, summary.json, eval.json).
A finished run (eval.json present) is skipped; an unfinished one resumes from its newest checkpoint.
`--set KEY=VALUE` applies to every run (e.g. shorter stages); `--deadline S` stops the children after
S seconds (they resume on the next call). `--ship` writes the seed-0 lame / discriminative / cot
models into assets/models/ as soon as each has been evaluated (`LameModel.save_pretrained`, which
replaces the folder atomically).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAIN = ("lame", "discriminative", "cot")
ABLATION = ("lame-k1", "lame-k2", "lame-k4", "lame-k16", "lame-nodecoder")
SHIP = {"lame": "lame-shapes", "discriminative": "discriminative-shapes", "cot": "cot-shapes"}


def default_jobs(seeds: list[int]) -> list[tuple[str, int]]:
    """Seed 0 of the three shipped presets first (others wait for them), then the rest."""
    jobs = [(p, seeds[0]) for p in MAIN]
    jobs += [(p, s) for s in seeds[1:] for p in MAIN]
    jobs += [(p, s) for s in seeds for p in ABLATION]
    return jobs


def run_name(preset: str, seed: int) -> str:
    return f"{preset}-s{seed}"


def one_run(args: argparse.Namespace) -> int:
    """Train (or resume) one run, then evaluate it on the test split and write eval.json."""
    import torch

    from lame_tools.atomic import atomic_write_json
    from lame_tools.evaluate import evaluate_shapes
    from lame_tools.train import build_config, parse_override, train, training_info

    torch.set_num_threads(args.threads)
    preset, seed = args.one[0], int(args.one[1])
    out = Path(args.runs) / run_name(preset, seed)
    config = build_config(preset, seed=seed, threads=args.threads, init_from=args.stage0)
    config = dataclasses.replace(config, **dict(map(parse_override, args.set or [])))  # --set has the last word
    command = f"python -m lame_tools train --preset {preset} --seed {seed} --out {out} " + " ".join(
        f"--set {s}" for s in args.set or []
    )
    result = train(config, out, resume=True, show_progress=False, command=command.strip(),
                   stop_after=args.stop_after)
    if not result.complete:
        return 0 if args.stop_after else 3
    model = result.model
    model.eval()
    start = time.perf_counter()
    scores = evaluate_shapes(model, split="test", seed=config.world_seed, batch_size=64)
    scores["eval_s"] = round(time.perf_counter() - start, 1)
    info = training_info(result.summary)
    info["test_scores"] = {"overall": scores["overall"], "meta_tasks": scores["meta_tasks"],
                           "tasks": {k: v["score"] for k, v in scores["tasks"].items()}, "split": "test"}
    atomic_write_json(out / "model" / "training.json", info)
    if args.ship_to:
        model.save_pretrained(args.ship_to, training_info=info)
        print(f"shipped {out / 'model'} -> {args.ship_to}", flush=True)
    atomic_write_json(out / "eval.json", scores)
    print(f"{run_name(preset, seed)}: overall {scores['overall']:.3f} {scores['meta_tasks']}", flush=True)
    return 0


def ship_dir(preset: str) -> Path:
    """Where `--ship` writes the model of a shipped preset."""
    return ROOT / "assets" / "models" / SHIP[preset]


def aggregate(runs: Path) -> dict:
    """Collect every run's eval.json and summary.json: per run, and mean / spread per preset."""
    from lame_tools.evaluate import sample_stats as stats

    per_run = {}
    for folder in sorted(runs.glob("*-s[0-9]*")):
        ev, su = folder / "eval.json", folder / "summary.json"
        if not ev.is_file():
            continue
        scores = json.loads(ev.read_text())
        summary = json.loads(su.read_text()) if su.is_file() else {}
        per_run[folder.name] = {
            "overall": scores["overall"],
            "meta_tasks": scores["meta_tasks"],
            "tasks": {k: v["score"] for k, v in scores["tasks"].items()},
            "eval_s": scores.get("eval_s"),
            "wall_s": summary.get("wall_s"),
            "samples_per_s": summary.get("samples_per_s"),
            "median_step_s": summary.get("median_step_s"),
            "checkpoint_s": summary.get("checkpoint_s"),
            "steps": summary.get("steps"),
            "device": summary.get("device"),
        }
    presets: dict[str, dict] = {}
    for name in per_run:
        preset = name.rsplit("-s", 1)[0]
        presets.setdefault(preset, {"runs": []})["runs"].append(name)
    for entry in presets.values():
        rows = [per_run[n] for n in entry["runs"]]
        entry["overall"] = stats([r["overall"] for r in rows])
        metas = sorted({m for r in rows for m in r["meta_tasks"]})
        entry["meta_tasks"] = {m: stats([r["meta_tasks"].get(m) for r in rows]) for m in metas}
        tasks = sorted({t for r in rows for t in r["tasks"]})
        entry["tasks"] = {t: stats([r["tasks"].get(t) for r in rows]) for t in tasks}
        entry["samples_per_s"] = stats([r["samples_per_s"] for r in rows])
        entry["eval_s"] = stats([r["eval_s"] for r in rows])
    return {"runs": per_run, "presets": presets}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", default=None, help="comma list of preset:seed")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--stage0", default=None, help="stage-0 model folder (default runs/stage0/model)")
    parser.add_argument("--skip-stage0", action="store_true")
    parser.add_argument("--set", action="append", help="override for every run (KEY=VALUE)")
    parser.add_argument("--stage0-set", action="append", help="override for stage 0")
    parser.add_argument("--stage0-preset", default="stage0")
    parser.add_argument("--deadline", type=float, default=None, help="seconds; stop children after this")
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--aggregate", default=None, help="write the aggregate JSON here at the end")
    parser.add_argument("--stop-after", type=int, default=None, help="stop every run after this step (probe)")
    parser.add_argument("--auto-size", type=float, default=None,
                        help="seconds from now by which all training must end: probe the step rate of "
                        "stage 0 and of the parallel runs, then choose stage0_steps and stage2_steps to fit")
    parser.add_argument("--eval-reserve", type=float, default=80.0, help="seconds kept for evaluation (auto-size)")
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--ship-to", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one_run(args)
    return orchestrate(args)


def _median_step_s(folder: Path, after: int = 3) -> float | None:
    """Median seconds per step in a run's log (the first steps, which warm up, left out)."""
    import numpy as np

    path = folder / "log.jsonl"
    if not path.is_file():
        return None
    times = [r["step_s"] for r in map(json.loads, path.read_text().splitlines()) if r.get("step", 0) > after]
    return float(np.median(times)) if times else None


def _round_down(value: float, unit: int = 50) -> int:
    return int(value // unit * unit)


class Runner:
    """Starts the runs of a matrix as subprocesses, at most `parallel` at a time."""

    def __init__(self, args: argparse.Namespace, start: float) -> None:
        self.args, self.start = args, start
        self.runs = Path(args.runs)
        self.stage0_dir = Path(args.stage0) if args.stage0 else self.runs / "stage0" / "model"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:6.0f}s] {text}", flush=True)

    def stage0(self, sets: list[str], stop_after: int | None = None) -> int:
        cmd = [sys.executable, "-m", "lame_tools", "train", "--preset", self.args.stage0_preset, "--out",
               str(self.stage0_dir.parent), "--resume", "--quiet", "--threads", str(max(self.args.threads, 1))]
        for s in sets:
            cmd += ["--set", s]
        if stop_after:
            cmd += ["--stop-after", str(stop_after)]
        self.say("stage 0: " + " ".join(cmd[1:]))
        return subprocess.call(cmd, cwd=ROOT, env=self.env)

    def matrix(self, jobs: list[tuple[str, int]], sets: list[str], stop_after: int | None = None,
               deadline: float | None = None, ship_seed: int | None = None) -> list[tuple[str, int]]:
        pending = [j for j in jobs if not (self.runs / run_name(*j) / "eval.json").is_file()]
        running: dict[tuple[str, int], subprocess.Popen] = {}
        logs, failed = {}, []
        while pending or running:
            while pending and len(running) < self.args.parallel:
                preset, seed = pending.pop(0)
                folder = self.runs / run_name(preset, seed)
                folder.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, str(Path(__file__).resolve()), "--one", preset, str(seed), "--runs",
                       str(self.runs), "--threads", str(self.args.threads), "--stage0", str(self.stage0_dir)]
                for s in sets:
                    cmd += ["--set", s]
                if stop_after:
                    cmd += ["--stop-after", str(stop_after)]
                elif ship_seed is not None and seed == ship_seed and preset in SHIP:
                    cmd += ["--ship-to", str(ship_dir(preset))]
                logs[(preset, seed)] = open(folder / "stdout.log", "a")
                running[(preset, seed)] = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=logs[(preset, seed)], start_new_session=True,
                                                           stderr=subprocess.STDOUT)
                self.say(f"start {run_name(preset, seed)}")
            time.sleep(1.0)
            for job, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[job]
                logs[job].close()
                self.say(("done " if code == 0 else f"exit {code} ") + run_name(*job))
                if code != 0:
                    failed.append(job)
                elif ship_seed is not None and job[1] == ship_seed and job[0] in SHIP and not stop_after:
                    self.say(f"shipped {run_name(*job)} -> {ship_dir(job[0])}")
            if deadline is not None and time.monotonic() > deadline:
                for job, proc in running.items():
                    proc.send_signal(signal.SIGTERM)
                    self.say(f"deadline: stopped {run_name(*job)} (resume by running again)")
                for proc in running.values():
                    proc.wait()
                break
        return failed


def orchestrate(args: argparse.Namespace) -> int:
    start = time.monotonic()
    runner = Runner(args, start)
    sets = list(args.set or [])
    stage0_sets = list(args.stage0_set or [])
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.only:
        jobs = [(p.split(":")[0], int(p.split(":")[1])) for p in args.only.split(",")]
    else:
        jobs = default_jobs(seeds)
    train_end = start + args.auto_size if args.auto_size else None
    deadline = start + args.deadline if args.deadline else None
    sizing: dict = {}

    if not args.skip_stage0 and not (runner.stage0_dir.parent / "summary.json").is_file():
        if train_end is not None:
            # probe 20 steps (inside the 100-step warm-up, which any length >= 400 shares), then size
            if runner.stage0(stage0_sets + ["log_every=1"], stop_after=20) != 0:
                runner.say("stage 0 probe failed")
                return 1
            step_s = _median_step_s(runner.stage0_dir.parent) or 1.0
        if train_end is not None and not (runner.stage0_dir.parent / "summary.json").is_file():
            budget = 0.25 * (train_end - time.monotonic())
            n0 = max(400, min(1500, _round_down(budget / step_s)))
            sizing["stage0"] = {"probe_step_s": step_s, "stage0_steps": n0}
            stage0_sets.append(f"stage0_steps={n0}")
            runner.say(f"stage 0: {step_s:.3f} s/step alone -> {n0} steps")
        if runner.stage0(stage0_sets) != 0 or not runner.stage0_dir.is_dir():
            runner.say("stage 0 did not finish")
            return 1

    if train_end is not None:
        probe = 15
        failed = runner.matrix(jobs, sets + ["log_every=1"], stop_after=probe, deadline=deadline)
        rates = {run_name(*j): _median_step_s(Path(args.runs) / run_name(*j)) for j in jobs}
        slowest = 1.15 * max(v for v in rates.values() if v is not None)  # margin: staggered starts
        from lame_tools.train import get_train_preset

        stage1 = get_train_preset(jobs[0][0]).stage1_steps
        for s in sets:
            if s.startswith("stage1_steps="):
                stage1 = int(s.split("=", 1)[1])
        left = train_end - args.eval_reserve - time.monotonic() - 20.0  # 20 s: restart of the runs
        total = probe + left / slowest
        n2 = max(100, min(3000, _round_down(total - stage1)))
        sizing["matrix"] = {"probe_step_s": rates, "slowest_step_s": slowest, "stage1_steps": stage1,
                            "stage2_steps": n2, "parallel": args.parallel, "failed_probe": failed}
        sets.append(f"stage2_steps={n2}")
        runner.say(f"matrix: slowest {slowest:.3f} s/step with {args.parallel} in parallel -> stage 2 = {n2} steps")
        from lame_tools.atomic import atomic_write_json

        atomic_write_json(Path(args.runs) / "sizing.json", sizing)
    failed = runner.matrix(jobs, sets, deadline=deadline, ship_seed=seeds[0] if args.ship else None)
    if args.aggregate:
        from lame_tools.atomic import atomic_write_json

        result = aggregate(Path(args.runs))
        result["sizing"] = sizing
        result["extra_settings"] = sets
        atomic_write_json(args.aggregate, result)
        runner.say(f"wrote {args.aggregate}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
