"""Options shared by several verbs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_model_argument(parser: argparse.ArgumentParser, default: Path | None = None, flag: str = "--model") -> None:
    """The shared `--model DIR` option (default: the shipped LaME model) and `--device`."""
    from lame_tools import DEFAULT_MODEL_DIR

    parser.add_argument(
        flag,
        type=Path,
        default=default or DEFAULT_MODEL_DIR,
        help=f"LaME model folder (default: {(default or DEFAULT_MODEL_DIR).name} in assets/models)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
