"""`tapeloop resume [--reason TEXT] [--config FILE] [--data DIR]`: leave HALTED
(to ACTIVE, or REDUCING while the day's loss still demands it)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    add_common(parser)
    parser.add_argument("--reason", metavar="TEXT", help="why (journaled with the state)")


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import run_resume

    return run_resume(args)
