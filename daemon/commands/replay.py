"""`tapeloop replay --config FILE --data DIR|s3://BUCKET/PREFIX [--from D] [--to D]
[--speed max|N] --out RUN_DIR [--monte-carlo N [--mc-seed S]]`."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from daemon.errors import UserError

# Every file a replay writes is closed when `run` returns, and no thread of it is
# left: `tapeloop` may leave without the interpreter's teardown (daemon.cli.entry).
EXIT_WITHOUT_TEARDOWN = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument("--data", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                        help="the recorded store: a directory, or one on S3 (mirrored into "
                        "$TAPELOOP_CACHE_DIR, default ~/.cache/tapeloop/stores)")
    parser.add_argument("--from", dest="date_from", metavar="DATE", help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", metavar="DATE", help="last day, YYYY-MM-DD")
    parser.add_argument("--speed", default="max", metavar="max|N",
                        help="max (default) or N times real time")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="where the run goes")
    parser.add_argument("--monte-carlo", metavar="N",
                        help="add a bootstrap of the closed trades over N paths to the report")
    parser.add_argument("--mc-seed", metavar="S",
                        help="the Monte Carlo seed (default 0)")


def _date(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: not a date (YYYY-MM-DD)") from None


def _monte_carlo(args: argparse.Namespace) -> tuple[int | None, int]:
    """--monte-carlo N and --mc-seed S, checked; the Monte Carlo module is imported
    only when asked for (a replay's start-up is part of its cost)."""
    if args.monte_carlo is None and args.mc_seed is None:
        return None, 0
    from daemon.research.montecarlo import parse_runs, parse_seed

    try:
        runs = None if args.monte_carlo is None else parse_runs(args.monte_carlo)
        seed = 0 if args.mc_seed is None else parse_seed(args.mc_seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.mc_seed is not None and runs is None:
        raise UserError(f"--mc-seed {args.mc_seed}: needs --monte-carlo N")
    return runs, seed


def run(args: argparse.Namespace) -> int:
    from daemon.backtest import ReplaySpec, print_summary, run_replay
    from daemon.config import load_config
    from daemon.logging import configure_logging
    from events.registry import MARKET_TYPES
    from replay.pacing import parse_speed

    config = load_config(args.config)
    configure_logging("warning", stream=__import__("sys").stderr)
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise UserError(f"--speed {args.speed!r}: {exc}") from None
    runs, seed = _monte_carlo(args)
    date_from, date_to = _date("--from", args.date_from), _date("--to", args.date_to)
    if date_from and date_to and date_from > date_to:
        raise UserError(f"--from {args.date_from} is after --to {args.date_to}")
    data_dir = Path(args.data)
    if "://" in args.data:  # the remote store's code only when a URL is named
        from events.remote import local_store

        # mirrored (only these days' market data) and read locally
        data_dir = local_store(args.data, date_from=date_from, date_to=date_to,
                               types=[t.__name__ for t in MARKET_TYPES])
    spec = ReplaySpec(data_dir=data_dir, out_dir=Path(args.out), date_from=date_from,
                      date_to=date_to, speed=speed, data_name=args.data.split("?", 1)[0],
                      monte_carlo=runs, mc_seed=seed)
    print_summary(run_replay(config, spec))
    return 0
