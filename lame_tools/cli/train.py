"""The `train` verb (transitional: the parser still lives in lame_tools.train and moves here)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.train import register_cli

    register_cli(subparsers)
