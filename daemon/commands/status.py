"""`tapeloop status [--config FILE] [--data DIR] [--json]`: the running daemon's
health, trading state, venues, strategies and PnL (control API `GET /status`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import run_status

    return run_status(args)
