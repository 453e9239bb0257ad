"""`tapeloop halt [--reason TEXT] [--config FILE] [--data DIR]`: the kill switch;
the running daemon takes no new order (reducing ones pass) until `tapeloop resume`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    add_common(parser)
    parser.add_argument("--reason", metavar="TEXT", help="why (journaled with the state)")


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import run_halt

    return run_halt(args)
