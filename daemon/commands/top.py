"""`tapeloop top`: a live terminal dashboard of the running daemon.

Polls the control API (`/status`, `/positions`, `/orders`, through
`control_client`) every `--interval` seconds and redraws a rich `Live` frame
(`top_view.Board`) on the terminal's alternate screen. Keys are read raw (cbreak:
one at a time, unechoed; Ctrl-C still interrupts) and the terminal's settings are
restored however it ends: `q`, Ctrl-C, SIGTERM. A daemon that stops answering is
shown as "reconnecting" and found again where it listens next (its data directory's
`control.json` is read anew: a restarted port-0 daemon has a new port).

`--once`, or stdout/stdin not a terminal: one frame printed, no screen control;
a daemon that does not answer is then one line and exit 1.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sys
import time
from typing import Any

from daemon.commands.control_client import DEFAULT_CONFIG, Target, call, locate
from daemon.errors import UserError, one_line

CALL_TIMEOUT_S = 3.0  # a daemon that holds a request longer is shown as not answering
QUIT_KEYS = frozenset(b"qQ")
ONCE_WIDTH = 160


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"the daemon's config file (default {DEFAULT_CONFIG})")
    parser.add_argument("--data", metavar="DIR", help="data directory (overrides daemon.data_dir)")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                        help="refresh every SECONDS (default 1)")
    parser.add_argument("--once", action="store_true",
                        help="print one frame and exit (the default when not on a terminal)")


def run(args: argparse.Namespace) -> int:
    from daemon.commands.top_view import Board

    if not args.interval > 0:
        raise UserError(f"--interval {args.interval}: must be above 0 seconds")
    target = locate(args)  # a config mistake is one line now, not a "reconnecting" loop
    board = Board(target.url, args.interval)
    if args.once or not (sys.stdout.isatty() and sys.stdin.isatty()):
        from rich.console import Console

        poll(board, target)
        # no terminal to fit: wide enough that tables sit side by side, unwrapped
        Console(width=None if sys.stdout.isatty() else ONCE_WIDTH).print(board.render())
        return 0
    return _live(args, board, target)


def poll(board: Any, target: Target) -> None:
    """One refresh of `board` from the daemon at `target`; UserError if it does not answer."""
    status = call(target, "GET", "/status", timeout=CALL_TIMEOUT_S)
    positions: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    if status.get("trading_state") is not None:  # the trading node is up
        try:
            positions = call(target, "GET", "/positions", timeout=CALL_TIMEOUT_S)["positions"]
            orders = call(target, "GET", "/orders", timeout=CALL_TIMEOUT_S)["orders"]
        except UserError:
            pass  # stopping between the calls: /status told what there is to tell
    board.update(status, positions, orders, time.monotonic())


def _live(args: argparse.Namespace, board: Any, target: Target | None) -> int:
    import termios
    import tty

    from rich.console import Console
    from rich.live import Live

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    previous_term = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        tty.setcbreak(fd)
        with Live(board.render(), console=Console(), screen=True, auto_refresh=False,
                  redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                deadline = time.monotonic() + args.interval
                try:
                    if target is None:
                        target = locate(args)
                        board.url = target.url
                    poll(board, target)
                except UserError as exc:
                    board.lost(one_line(exc), time.monotonic())
                    target = None  # look where it listens again: a restart may move it
                live.update(board.render(), refresh=True)
                if _quit_before(fd, deadline):
                    return 0
    finally:
        # TCSADRAIN: what we wrote reaches the terminal before its settings change back
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGTERM, previous_term)


def _quit_before(fd: int, deadline: float) -> bool:
    """Wait for `deadline`, or until a quit key; True if one was pressed."""
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            keys = os.read(fd, 64)
            if not keys:
                return True  # the terminal went away
            if QUIT_KEYS.intersection(keys):
                return True
    return False


def _exit_on_sigterm(_signum: int, _frame: Any) -> None:
    # SystemExit unwinds through the finally blocks: the screen and the terminal's
    # settings come back before the process ends.
    raise SystemExit(128 + signal.SIGTERM)
