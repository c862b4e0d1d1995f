"""Evaluate the trained see-* models on the balanced Shapes test split and ship them into assets/models.

    .venv/bin/python scripts/ship_see.py --runs runs/see [--seed 4] [--only lame,cot] [--no-ship]

For each model (lame, discriminative, cot, sequential; `MODELS` names the run each is taken from, `--seed`
its seed):
`python -m lame_tools eval --balanced` on its run's model folder (per-query scores and 95% intervals;
resumable), the JSON copied to assets/results/eval_balanced_<name>_<mode>.json, then the model folder
copied to assets/models/<name> with a training.json that holds the training command and config,
seeds, wall time and the balanced test scores with their intervals, and the command that reproduces
them. Run it again after an interruption: finished evaluations are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lame_tools.atomic import atomic_write_json  # noqa: E402

# model -> (run name under --runs, without its seed suffix; shipped folder name; the mode it is
# evaluated in). Since 2026-12-07 each shipped model is the last phase of its 6-layer binding pipeline
# (presets see-deep-<kind>-bind, -bind-lookup, -bind-mixed; README, "The shipped models"); LaME is the
# rationale recipe (`[EMBED]` reads only its 16 reason tokens, the latent decoder writes the gold
# rationale), the sequential-latent baseline has K = 16 serial steps, CoT embeds retrieval queries
# after its own rationales.
MODELS = {
    "lame": ("see-deep-lame-k16-readsrat-bind-mixed", "lame-shapes", "latent"),
    "discriminative": ("see-deep-discriminative-bind-mixed", "discriminative-shapes", "discriminative"),
    "cot": ("see-deep-cot-bind-mixed", "cot-shapes", "cot"),
    "sequential": ("see-deep-sequential-k16-bind-mixed", "sequential-shapes", "sequential"),
}
# the seed of the shipped models: the one whose four pipelines were trained on the machine that shipped them
SHIPPED_SEED = 4


def selection(seed: int) -> str:
    """How a shipped run was chosen, kept in its training.json."""
    return (f"seed {seed} of the 6-layer binding pipeline, not chosen among seeds: the seed whose four models were "
            "trained on the machine that shipped them (runs/ does not outlive a machine; every seed's test scores "
            "are in assets/results/seeds). The recipes were compared on validation, test reported beside it "
            "(queues see_53-see_63; README).")


def run_name(run: str, seed: int) -> str:
    """The run folder of `run` trained with `seed` (the queues' and train_see.sh's -sN suffix; none for 0)."""
    return run if seed == 0 else f"{run}-s{seed}"


def phases(run_dir: Path) -> list[dict]:
    """The training runs that made the model of `run_dir`, first to last: each run whose model the
    next one continued (`init_from` a runs/.../model folder), back to the shared stage 0, with its
    command and wall time."""
    chain = []
    while (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
        chain.append({"run": run_dir.name, "command": summary["command"], "wall_s": summary["wall_s"],
                      "steps": summary["total_steps"]})
        source = Path(summary["config"].get("init_from") or "")
        if source.name != "model" or source.parent.name == "stage0-scene":
            break
        run_dir = (ROOT / source).parent if not source.is_absolute() else source.parent
    return chain[::-1]


def evaluate(model_dir: Path, out: Path, threads: int) -> dict:
    command = [sys.executable, "-m", "lame_tools", "eval", "--model", str(model_dir), "--balanced",
               "--out", str(out), "--no-progress"]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"})
    return json.loads(out.read_text())


def test_scores(summary: dict, shipped: Path) -> dict:
    """The balanced test scores as training.json keeps them (subtask scores and intervals)."""
    return {
        "split": "test (balanced: 300 queries per subtask)",
        "reproduce": f"python -m lame_tools eval --model {shipped.relative_to(ROOT)} --balanced --out OUT.json",
        "overall": summary["overall"],
        "interval": summary.get("intervals", {}).get("overall"),
        "meta_tasks": summary.get("meta_tasks"),
        "tasks": {name: {"score": t["score"], "n": t.get("n"), "interval": t.get("interval")}
                  for name, t in summary["tasks"].items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "see")
    parser.add_argument("--only", default="", help="comma list of lame, discriminative, cot, sequential")
    parser.add_argument("--no-ship", action="store_true", help="evaluate only; do not copy into assets/models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=SHIPPED_SEED, help="the training seed of the runs to ship")
    args = parser.parse_args()
    wanted = {name for name in args.only.split(",") if name} or set(MODELS)
    unknown = wanted - set(MODELS)
    if unknown:
        parser.error(f"--only names unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    results = ROOT / "assets" / "results"
    for key, (stem, name, mode) in MODELS.items():
        if key not in wanted:
            continue
        run = run_name(stem, args.seed)
        model_dir = args.runs / run / "model"
        if not (model_dir / "model.safetensors").is_file():
            print(f"{run}: not trained yet ({model_dir} is missing); skipped", flush=True)
            continue
        out = results / f"eval_balanced_{name}_{mode}.json"
        summary = evaluate(model_dir, args.runs / run / "eval_balanced_test.json", args.threads)
        summary["model"] = f"assets/models/{name}"
        atomic_write_json(out, summary)
        print(f"{run}: overall {100 * summary['overall']:.1f} -> {out.relative_to(ROOT)}", flush=True)
        if args.no_ship:
            continue
        shipped = ROOT / "assets" / "models" / name
        info = json.loads((model_dir / "training.json").read_text())
        run_summary = json.loads((args.runs / run / "summary.json").read_text())
        info["seed"] = run_summary["config"]["seed"]
        info["world_seed"] = run_summary["config"]["world_seed"]
        info["init_from"] = run_summary["config"]["init_from"]
        info["phases"] = phases(args.runs / run)
        info["pipeline_wall_s"] = round(sum(p["wall_s"] for p in info["phases"]), 1)
        info["test_scores"] = test_scores(summary, shipped)
        info["selection"] = selection(args.seed)
        staging = shipped.with_name(f".{name}.new")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(model_dir, staging)
        atomic_write_json(staging / "training.json", info)
        if shipped.exists():
            shutil.rmtree(shipped)
        staging.rename(shipped)
        print(f"shipped {model_dir} -> {shipped.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
