"""The full pipeline, whole process from start to report: the 1,887,450 real SPY
trades → 1-minute bars → sma_cross → simulated venue → OMS → risk → portfolio →
report (target >= 1 M trade events/s and peak RSS < 300 MB). The store is
imported once (not timed); each round runs `tapeloop replay` as a child process
and times it from spawn to exit."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_reader import SPY, build_store
from bench.common import REPO, emit, now

CONFIG = REPO / "configs" / "replay-spy.toml"
ROUNDS = 3


def one_round(data: Path, out: Path) -> tuple[float, float, dict]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = now()
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "replay", "--config", str(CONFIG),
         "--data", str(data), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    wall = now() - t0
    if proc.returncode != 0:
        sys.exit(f"replay failed: {proc.stderr[-2000:]}")
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: rounds grow it monotonically
    rss_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return wall, rss_mb, json.loads((out / "report.json").read_text())


def main() -> None:
    if not SPY.is_dir():
        emit("pipeline_spy_sma_cross", skipped=f"{SPY} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        rows = build_store(data)
        results = [one_round(data, Path(tmp) / f"run{i}") for i in range(ROUNDS)]
        walls = sorted(r[0] for r in results)
        report = results[0][2]
        emit("pipeline_spy_sma_cross", events=rows, fills=len(report["fills"]),
             events_per_s=round(rows / walls[0], 1),
             median_events_per_s=round(rows / walls[len(walls) // 2], 1),
             whole_process_s=round(walls[0], 2),
             in_loop_events_per_s=round(report["events_per_s"], 1),
             peak_rss_mb=round(max(r[1] for r in results), 1),
             target_events_per_s=1_000_000, target_rss_mb=300)


if __name__ == "__main__":
    main()
