"""`tapeloop strategy stop|start ID [--config FILE] [--data DIR]`: stop a running
strategy (its on_stop runs, its open orders are its own to cancel) or start one of
the config's strategies again, in the running daemon."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from daemon.commands.control_client import add_common

    parser.add_argument("action", choices=["stop", "start"])
    parser.add_argument("strategy_id", metavar="ID")
    add_common(parser)


def run(args: argparse.Namespace) -> int:
    from daemon.commands.control_client import call, locate, print_json

    answer = call(locate(args), "POST", f"/strategies/{args.strategy_id}/{args.action}")
    if args.json:
        print_json(answer)
    else:
        print(f"strategy {args.strategy_id}: {answer.get('status', args.action)}")
    return 0
