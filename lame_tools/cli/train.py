"""The `train` verb: train a LaME / discriminative / CoT model (resumable)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def _config(args: argparse.Namespace):
    from lame_tools.train import build_config

    return build_config(
        args.preset, args.set or (), seed=args.seed, batch_size=args.batch_size, init_from=args.init_from,
        base=args.base, threads=args.threads, steps_scale=args.steps_scale, bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
    )


def _train(args: argparse.Namespace) -> int:
    from lame_tools.train import train

    config = _config(args)
    command = None
    if sys.argv[0].endswith("__main__.py"):
        command = "python -m lame_tools " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    summary = train(config, args.out, resume=args.resume, show_progress=not args.quiet, command=command,
                    stop_after=args.stop_after).summary
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if summary.get("model_dir"):
        print(f"trained {args.preset}: {summary['steps']} steps in {summary['wall_s']} s -> {summary['model_dir']}")
    else:
        print(f"stopped at step {summary['steps']} of {summary['total_steps']} (resume with --resume)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.train import list_presets

    parser = subparsers.add_parser("train", help="train a LaME / discriminative / CoT model (resumable)")
    parser.add_argument("--preset", default="lame", help=f"one of: {', '.join(list_presets())}")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, log.jsonl, model/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest whole checkpoint in --out")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="global batch (split across processes)")
    parser.add_argument("--init-from", type=Path, default=None, help="model folder whose backbone starts this run")
    parser.add_argument("--base", type=Path, default=None, help="a Qwen2-VL-family folder to train instead of the tiny model")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every stage's step count")
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this global step (resumable)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any TrainConfig field")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_train)
