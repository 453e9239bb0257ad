"""The column cache (`replay.cache`) on the SPY week: a second `run_replay` of the
same data in one process (what a sweep worker does for its next job), with the cache
off and on. Each round is a fresh cache: the first replay fills it (timed too, to show
what filling costs), the second reads from it. Figures are the replays' own wall_s
(the event loop, not the report writing), medians of the rounds."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_reader import SPY, build_store
from bench.common import REPO, emit, peak_rss_mb

ROUNDS = 5


def main() -> None:
    if not SPY.is_dir():
        emit("column_cache_second_replay_spy", skipped=f"{SPY} not found")
        return
    from daemon.backtest import ReplaySpec, run_replay
    from daemon.config import load_config
    from daemon.logging import configure_logging
    from replay import cache

    configure_logging("warning", stream=sys.stderr)
    config = load_config(REPO / "configs" / "replay-spy.toml")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        build_store(data)
        runs = 0

        def replay() -> tuple[float, float]:
            """(wall_s of the event loop, CPU s of the whole process for the call:
            the read-ahead thread decodes on the other core, so the CPU saved shows
            where wall time may not, and a sweep's workers share the cores)."""
            nonlocal runs
            runs += 1
            cpu = time.process_time()
            report = run_replay(config, ReplaySpec(data_dir=data, out_dir=Path(tmp) / str(runs)))
            return float(report["wall_s"]), time.process_time() - cpu

        off, fill, on = [], [], []
        held = 0
        for _ in range(ROUNDS):
            cache.disable()
            replay()
            off.append(replay())
            cache.enable(1 << 30)
            fill.append(replay())
            on.append(replay())
            held = cache.stats().bytes
            cache.disable()

        def median(runs: list[tuple[float, float]], i: int) -> float:
            return round(statistics.median(r[i] for r in runs), 3)

        emit("column_cache_second_replay_spy",
             second_replay_off_s=median(off, 0), second_replay_on_s=median(on, 0),
             filling_replay_s=median(fill, 0), speedup=round(median(off, 0) / median(on, 0), 2),
             second_replay_off_cpu_s=median(off, 1), second_replay_on_cpu_s=median(on, 1),
             filling_replay_cpu_s=median(fill, 1), cache_mb=round(held / 1e6, 1),
             rounds=ROUNDS, peak_rss_mb=round(peak_rss_mb(), 1))


if __name__ == "__main__":
    main()
