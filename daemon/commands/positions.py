"""`tapeloop positions [--all] [--config FILE] [--data DIR] [--json]`: the running
daemon's positions with their PnL, and the account's equity."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    add_common(parser)
    parser.add_argument("--all", action="store_true", help="flat positions too")


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import run_positions

    return run_positions(args)
