"""`tapeloop sweep --config FILE --grid GRID.toml --data DIR|s3://... --out DIR
[--from D] [--to D] [--workers N | --scheduler tcp://HOST:PORT] [--keep-runs]`.

Exit 0 when every job finished (jobs whose parameters the strategy refuses are
skipped, not failed), 1 when any failed: the results of the others are written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.commands.replay import _date
from daemon.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument("--grid", required=True, metavar="GRID",
                        help="TOML grid file: the parameters to sweep "
                             "(see configs/grids/sweep-spy.toml)")
    parser.add_argument("--data", required=True, metavar="DIR|s3://BUCKET/PREFIX",
                        help="the recorded store, a directory or an object store")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="results.parquet, summary.html, jobs/ (run again to resume)")
    parser.add_argument("--from", dest="date_from", metavar="DATE", help="first day, YYYY-MM-DD")
    parser.add_argument("--to", dest="date_to", metavar="DATE", help="last day, YYYY-MM-DD")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of a local Dask cluster (default: one per core)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="an existing Dask cluster's scheduler")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep each job's full run directory under OUT/runs/")


def run(args: argparse.Namespace) -> int:
    from daemon.config import load_config
    from daemon.logging import configure_logging
    from daemon.research.grid import load_grid
    from daemon.research.sweep import Progress, SweepSpec, leaderboard_lines, run_sweep

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: must be at least 1")
    config = load_config(args.config)
    grid = load_grid(args.grid)
    configure_logging("warning", stream=sys.stderr)
    spec = SweepSpec(config=config, grid=grid, data=_data(args.data), out=Path(args.out),
                     date_from=_date("--from", args.date_from),
                     date_to=_date("--to", args.date_to), workers=args.workers,
                     scheduler=args.scheduler, keep_runs=args.keep_runs)
    if spec.date_from and spec.date_to and spec.date_from > spec.date_to:
        raise UserError(f"--from {args.date_from} is after --to {args.date_to}")
    if spec.out.exists() and not spec.out.is_dir():
        raise UserError(f"--out {spec.out}: not a directory")
    progress = Progress(sys.stderr if sys.stderr.isatty() else sys.stdout, metric=grid.metric)
    tally = run_sweep(spec, progress)
    out = sys.stderr if not sys.stdout.isatty() else sys.stdout
    print(f"{tally.total} jobs: {tally.ok} ok ({tally.reused} reused), {tally.failed} failed, "
          f"{tally.skipped} skipped; {spec.out / 'results.parquet'}, "
          f"{spec.out / 'summary.html'}", file=out)
    for line in leaderboard_lines(tally.rows, grid.metric):
        print(line, file=out)
    return 1 if tally.failed else 0


def _data(text: str) -> str:
    if "://" in text:
        if not text.startswith("s3://"):
            raise UserError(f"--data {text}: only local directories and s3:// are supported")
        return text
    return str(Path(text).absolute())
