"""`python -m tests.dst --seed N` replays one seed; `--seeds N [--first S] [--workers W]`
runs many and prints how many passed (the soak: `make soak`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from tests.dst.sim import InvariantBroken, run


def _quiet() -> None:
    """Worker processes log nothing below CRITICAL (a seed logs thousands of lines)."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def _one(seed: int) -> tuple[int, str | None, int, int, int]:
    try:
        out = run(seed)
    except InvariantBroken as exc:
        return seed, str(exc), 0, 0, 0
    except Exception as exc:  # a crash of the code under test is a failure too
        import traceback
        return seed, (f"seed {seed}: {exc!r}\n{traceback.format_exc()}\n"
                      f"replay it: .venv/bin/python -m tests.dst --seed {seed}"), 0, 0, 0
    return seed, None, out.restarts, out.orders, out.fills


def run_many(first: int, count: int, workers: int,
             totals: dict[str, int] | None = None) -> list[str]:
    """The failures of seeds first..first+count-1; `totals` gets what they exercised
    (restarts, orders, fills), so a run that exercised nothing can be told apart."""
    failures: list[str] = []
    restarts = orders = fills = 0
    t0 = time.perf_counter()
    seeds = range(first, first + count)
    with ProcessPoolExecutor(max_workers=workers, initializer=_quiet) as pool:
        for _seed, failure, r, o, f in pool.map(_one, seeds, chunksize=16):
            if failure is not None:
                failures.append(failure)
            restarts, orders, fills = restarts + r, orders + o, fills + f
    wall = time.perf_counter() - t0
    if totals is not None:
        totals.update(restarts=restarts, orders=orders, fills=fills)
    print(f"simulation: {count - len(failures)}/{count} seeds passed (seeds {first}.."
          f"{first + count - 1}); {restarts} restarts, {orders} orders, {fills} fills; "
          f"{wall:.1f} s on {workers} workers")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.dst")
    ap.add_argument("--seed", type=int, help="replay one seed, verbosely")
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    if args.seed is not None:
        _quiet()
        out = run(args.seed)
        print(out)
        return 0
    failures = run_many(args.first, args.seeds, args.workers)
    for failure in failures[:5]:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
