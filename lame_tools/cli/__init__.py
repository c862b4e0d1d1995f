"""`python -m lame_tools <verb> ...`: the command line.

The command line is a layer over the library: each module of this package defines
`register(subparsers)` for one verb group and turns parsed arguments into library calls; no library
module imports this package. This file assembles the verbs and turns user errors (`LameError`) into
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from lame_tools.errors import LameError

# One module per verb group, in the order `--help` lists them.
VERB_MODULES = (
    "lame_tools.cli.basic",  # embed, shapes
    "lame_tools.cli.train",  # train
    "lame_tools.cli.eval",  # eval
    "lame_tools.cli.bench",  # bench
    "lame_tools.cli.probe",  # probe
    "lame_tools.cli.index",  # index build
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lame_tools", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="verb", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


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
