"""`tapeloop orders [--all] [--config FILE] [--data DIR] [--json]`: the running
daemon's open orders (`--all`: every order it knows)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    add_common(parser)
    parser.add_argument("--all", action="store_true", help="closed orders too")


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import run_orders

    return run_orders(args)
