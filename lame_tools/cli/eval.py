"""The `eval` verb (transitional: the parser still lives in lame_tools.evaluate and moves here)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.evaluate import register_cli

    register_cli(subparsers)
