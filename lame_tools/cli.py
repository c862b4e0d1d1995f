"""`python -m lame_tools <verb> ...`: the command line.

Each verb lives beside the code it runs: a module listed in VERB_MODULES defines
`register_cli(subparsers)` and adds its own sub-commands; this file only assembles them and turns
user errors (`LameError`) into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from pathlib import Path

from lame_tools.errors import LameError

# Modules that add verbs. A module not yet present is skipped, so verbs can land one at a time.
VERB_MODULES = (
    "lame_tools.cli_basic",  # embed, shapes
    "lame_tools.train",  # train
    "lame_tools.evaluate",  # eval
    "lame_tools.timing",  # bench
    "lame_tools.probe",  # probe
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lame_tools", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True)
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        register = getattr(module, "register_cli", None)
        if register is not None:
            register(subparsers)
    return parser


def add_model_argument(parser: argparse.ArgumentParser, default: Path | None = None, flag: str = "--model") -> None:
    """The shared `--model DIR` option (default: the shipped LaME model)."""
    from lame_tools import DEFAULT_MODEL_DIR

    parser.add_argument(
        flag,
        type=Path,
        default=default or DEFAULT_MODEL_DIR,
        help=f"LaME model folder (default: {(default or DEFAULT_MODEL_DIR).name} in assets/models)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            result = args.func(args)
    except LameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
