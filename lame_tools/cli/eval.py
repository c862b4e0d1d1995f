"""The `eval` verb (a model on Shapes, MMEB-v2 or MRMR, resumable) and `eval-throughput` (queries/s)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lame_tools.cli.common import add_model_argument
from lame_tools.constants import MODEL_KINDS, MODES


def _eval_command(args: argparse.Namespace) -> int:
    from lame_tools.evaluate import format_table, run_benchmark

    summary = run_benchmark(
        args.model,
        args.benchmark,
        args.out,
        data=args.data,
        tasks=args.tasks,
        split=args.split,
        seed=args.seed,
        limit=args.limit,
        mode=args.mode,
        batch_size=args.batch_size,
        device=args.device,
        resume=not args.no_resume,
        show_progress_bar=not args.no_progress,
        num_frames=args.num_frames,
        query_instruction=args.query_instruction,
        doc_instruction=args.doc_instruction,
        kind=args.kind,
        allow_hub=args.allow_hub,
        trust_remote_code=args.trust_remote_code,
        per_subtask=_per_subtask(args),
        style=args.style,
    )
    print(format_table(summary))
    print(f"wrote {args.out}")
    return 0


def _per_subtask(args: argparse.Namespace) -> int | None:
    """Shapes is scored on the balanced split unless `--unbalanced` or `--limit` asks for the fixed
    one (the first N examples of the split, unevenly spread over the subtasks)."""
    from lame_tools.data.shapes import BALANCED_SIZES
    from lame_tools.errors import InputError

    if args.per_subtask is not None:
        return args.per_subtask
    if args.benchmark != "shapes" or (not args.balanced and (args.unbalanced or args.limit is not None)):
        return None
    if args.split not in BALANCED_SIZES:
        if args.balanced:
            raise InputError(f"The {args.split} split has no balanced size; give --per-subtask N.")
        return None
    return BALANCED_SIZES[args.split]


def _compare_command(args: argparse.Namespace) -> int:
    import json

    from lame_tools.atomic import atomic_write_json
    from lame_tools.errors import InputError
    from lame_tools.evaluate.compare import compare_results, format_comparison

    results = []
    for path in (args.a, args.b):
        try:
            results.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path} is not a readable evaluation JSON ({type(exc).__name__}).") from None
    report = compare_results(*results)
    print(format_comparison(report))
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _eval_throughput_command(args: argparse.Namespace) -> int:
    from lame_tools import SHIPPED_MODELS
    from lame_tools.atomic import atomic_write_json
    from lame_tools.timing.throughput import bench_eval_throughput, format_throughput_table

    models: dict[str, Path] = {}
    for entry in args.models:
        folder = SHIPPED_MODELS.get(entry, Path(entry))
        models[entry if entry in SHIPPED_MODELS else Path(entry).name] = Path(folder)
    report = bench_eval_throughput(models, args.split, args.seed, args.limit, args.batch_size, args.device, args.mode)
    print(format_throughput_table(report))
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


def _add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.data.shapes import SPLITS
    from lame_tools.evaluate.sources import BENCHMARKS

    parser = subparsers.add_parser("eval", help="evaluate a model on Shapes, MMEB-v2 or MRMR (resumable)")
    add_model_argument(parser)
    parser.add_argument("--benchmark", choices=BENCHMARKS, default="shapes")
    parser.add_argument(
        "--kind",
        choices=MODEL_KINDS,
        default="lame",
        help="lame: a LaME folder; qwen2-vl-base / ume-r1 / vlm2vec: a baseline checkpoint (see lame_tools.adapters)",
    )
    parser.add_argument("--allow-hub", action="store_true", help="let --model be a Hugging Face hub id (downloads)")
    parser.add_argument("--trust-remote-code", action="store_true", help="passed to transformers for baselines")
    parser.add_argument("--data", type=Path, default=None, help="benchmark folder (MMEB-v2, MRMR; see README)")
    parser.add_argument("--tasks", nargs="+", default=None, help="only these tasks (default: all found)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="Shapes split")
    parser.add_argument("--seed", type=int, default=0, help="Shapes world seed")
    parser.add_argument(
        "--limit", type=int, default=None, help="Shapes: first N examples; files: first N queries per task"
    )
    parser.add_argument(
        "--balanced", action="store_true",
        help="Shapes: the balanced split (300 queries per subtask on test, 100 on validation, 200 on validation_pairs; the default)",
    )
    parser.add_argument(
        "--unbalanced", action="store_true",
        help="Shapes: the fixed split instead (the first examples of the split, as --limit takes them)",
    )
    parser.add_argument("--per-subtask", type=int, default=None, help="Shapes: the balanced split with N queries per subtask")
    parser.add_argument("--style", default=None, help="Shapes: a rendering variant of the same scenes (pastel, gradient, ...)")
    parser.add_argument("--mode", choices=MODES, default=None, help="default: the mode the model was trained for")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-frames", type=int, default=8, help="frames sampled per video (MMEB-v2 video tasks)")
    parser.add_argument(
        "--query-instruction",
        default=None,
        help="BEIR-form tasks: instruction for queries (visdoc default: VLM2Vec-V2's)",
    )
    parser.add_argument("--doc-instruction", default=None, help="BEIR-form tasks: instruction for corpus documents")
    parser.add_argument("--out", type=Path, required=True, help="summary JSON (per-task files go to <out>.tasks/)")
    parser.add_argument("--no-resume", action="store_true", help="recompute tasks finished by an earlier run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=_eval_command)


def _add_compare_parser(subparsers: argparse._SubParsersAction) -> None:
    compare = subparsers.add_parser(
        "eval-compare", help="paired comparison of two eval JSONs on the same queries (bootstrap interval, McNemar)"
    )
    compare.add_argument("a", type=Path, help="eval JSON of model A")
    compare.add_argument("b", type=Path, help="eval JSON of model B")
    compare.add_argument("--out", type=Path, default=None, help="write the comparison as JSON")
    compare.set_defaults(func=_compare_command)


def _add_throughput_parser(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.data.shapes import SPLITS

    bench = subparsers.add_parser("eval-throughput", help="evaluation throughput (queries/s) on a Shapes split")
    bench.add_argument(
        "--models", nargs="+", default=["latent", "discriminative", "cot"], help="shipped model names or folders"
    )
    bench.add_argument("--split", choices=SPLITS, default="test")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--limit", type=int, default=None, help="first N examples (default: the whole split)")
    bench.add_argument("--mode", choices=MODES, default=None, help="default: each model's own mode")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--device", default=None)
    bench.add_argument("--out", type=Path, required=True)
    bench.set_defaults(func=_eval_throughput_command)


def register(subparsers: argparse._SubParsersAction) -> None:
    """The `eval`, `eval-compare` and `eval-throughput` verbs."""
    _add_eval_parser(subparsers)
    _add_compare_parser(subparsers)
    _add_throughput_parser(subparsers)
