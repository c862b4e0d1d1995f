"""The `bench` verb: `bench race` (the lanes on the same inputs) and `bench encode` (`encode()` against
a bare backbone forward). Each prints a table and writes JSON with `--out`."""

from __future__ import annotations

import argparse
from pathlib import Path

from lame_tools.atomic import atomic_write_json
from lame_tools.errors import InputError

RACE_LANES = ("latent", "discriminative", "sequential", "cot")  # run order of `bench race --lanes`


def _show(table: str, report: dict, out: Path | None) -> int:
    """Print a benchmark's table, and write its JSON report when `--out` was given."""
    print(table)
    if out:
        atomic_write_json(out, report)
        print(f"wrote {out}")
    return 0


def _bench_encode(args: argparse.Namespace) -> int:
    from lame_tools.model import LameModel
    from lame_tools.timing import bench_encode, format_encode_table

    model = LameModel.from_pretrained(args.model, device=args.device)
    report = bench_encode(model, tuple(args.batch_sizes), rounds=args.rounds, warmup=args.warmup, mode=args.mode)
    return _show(format_encode_table(report), report, args.out)


def _default_sequential(lame: str) -> str:
    """The sequential lane's model when `--sequential` is not given: the shipped sequential-latent
    model beside the shipped LaME (when it is there), else the `--lame` model run sequentially."""
    from lame_tools import SHIPPED_MODELS
    from lame_tools.model import CONFIG_FILE

    shipped = SHIPPED_MODELS["sequential"]
    same_lame = str(lame).lower() != "none" and Path(lame).resolve() == SHIPPED_MODELS["latent"].resolve()
    return str(shipped) if same_lame and (shipped / CONFIG_FILE).is_file() else lame


def _bench_race(args: argparse.Namespace) -> int:
    import torch

    from lame_tools.adapters import load_lane
    from lame_tools.timing import bench_race, format_race_table, generator_agreement

    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = [lane.strip() for lane in args.lanes.split(",") if lane.strip()]
    unknown = sorted(set(wanted) - set(RACE_LANES))
    if unknown:
        raise InputError(f"Unknown lane {unknown[0]!r}; lanes are {', '.join(RACE_LANES)}.")
    sources = {
        "latent": (args.lame, args.lame_kind),
        "discriminative": (args.discriminative, args.discriminative_kind),
        "cot": (args.cot, args.cot_kind),
        "sequential": (args.sequential or _default_sequential(args.lame), "lame"),
    }
    lanes = {}
    for lane in [name for name in RACE_LANES if name in wanted]:
        path, kind = sources[lane]
        if path is None or str(path).lower() == "none":
            continue
        lanes[lane] = load_lane(lane, path, kind, device=args.device, allow_hub=args.allow_hub,
                                trust_remote_code=args.trust_remote_code, cot_read=args.cot_read)
    if not lanes:
        raise InputError("Give at least one lane (--lame, --discriminative or --cot).")
    report = bench_race(
        lanes, n=args.n, batch_sizes=tuple(args.batch_sizes), warmup=args.warmup, max_new_tokens=args.max_new_tokens,
        log=lambda line: print(line, flush=True), min_rounds=args.min_rounds,
    )
    report["lane_sources"] = {lane: str(sources[lane][0]) for lane in lanes}  # for the cost/quality frontier
    if args.agreement_items and "latent" in lanes and "cot" in lanes and 1 in args.batch_sizes:
        report["generator_agreement"] = generator_agreement(
            lanes, report, items=min(args.agreement_items, args.n), max_new_tokens=args.max_new_tokens
        )
    return _show(format_race_table(report), report, args.out)


def _add_encode_parser(verbs: argparse._SubParsersAction) -> None:
    from lame_tools.cli.common import add_model_argument
    from lame_tools.constants import ONE_PASS_MODES

    encode = verbs.add_parser("encode", help="encode() vs bare backbone forward, items/s at several batch sizes")
    add_model_argument(encode)
    encode.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    encode.add_argument("--rounds", type=int, default=10)
    encode.add_argument("--warmup", type=int, default=2)
    encode.add_argument("--mode", choices=ONE_PASS_MODES, default=None)
    encode.add_argument("--out", type=Path, default=None, help="JSON output file")
    encode.set_defaults(func=_bench_encode)


def _add_race_parser(verbs: argparse._SubParsersAction) -> None:
    from lame_tools import SHIPPED_MODELS
    from lame_tools.constants import MODEL_KINDS

    race = verbs.add_parser(
        "race",
        help="time latent vs explicit-CoT vs discriminative inference on the same inputs",
        description="Each lane is a model folder (or a hub id with --allow-hub) run in the mode of its lane. "
        "Defaults: the three shipped models. Pass 'none' to drop a lane.",
    )
    race.add_argument("--lame", default=str(SHIPPED_MODELS["latent"]), help="latent lane model")
    race.add_argument("--discriminative", default=str(SHIPPED_MODELS["discriminative"]))
    race.add_argument("--cot", default=str(SHIPPED_MODELS["cot"]), help="explicit-CoT lane model")
    for flag, default in (("--lame-kind", "lame"), ("--discriminative-kind", "lame"), ("--cot-kind", "lame")):
        race.add_argument(flag, choices=MODEL_KINDS, default=default, help=f"adapter (default {default})")
    race.add_argument("--sequential", default=None,
                      help="sequential-latent lane model (default: the shipped sequential-latent model "
                      "with the shipped --lame, else the --lame model run sequentially)")
    race.add_argument("--lanes", default="latent,discriminative,cot",
                      help="comma-separated lanes to run: latent, discriminative, sequential, cot")
    race.add_argument("--cot-read", choices=("cache", "reread"), default="cache",
                      help="CoT lane: read [EMBED] from generation's KV cache (default) or with a re-read pass")
    race.add_argument("--device", default=None)
    race.add_argument("--threads", type=int, default=None,
                      help="torch CPU threads (1 is steadiest on a shared machine; default: torch's)")
    race.add_argument("--n", type=int, default=200, help="inputs (Shapes test queries)")
    race.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    race.add_argument("--warmup", type=int, default=1)
    race.add_argument("--min-rounds", type=int, default=20,
                      help="cycle the batches until each batch size has this many rounds (default 20)")
    race.add_argument("--max-new-tokens", type=int, default=None, help="CoT cap (default: the model's)")
    race.add_argument("--agreement-items", type=int, default=20,
                      help="also run the race() generator on this many inputs at batch 1 and compare (0: skip)")
    race.add_argument("--allow-hub", action="store_true", help="allow hub ids (downloads)")
    race.add_argument("--trust-remote-code", action="store_true")
    race.add_argument("--out", type=Path, default=None, help="JSON output file")
    race.set_defaults(func=_bench_race)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="benchmarks (print a table, write JSON)")
    verbs = bench.add_subparsers(dest="bench_verb", required=True)
    _add_encode_parser(verbs)
    _add_race_parser(verbs)
