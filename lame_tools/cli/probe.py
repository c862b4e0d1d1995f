"""The `probe` verb (transitional: the parser still lives in lame_tools.probe.cli and moves here)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from lame_tools.probe.cli import register_cli

    register_cli(subparsers)
