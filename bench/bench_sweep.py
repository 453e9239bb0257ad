"""A sweep: the 64 sma_cross (fast, slow) jobs of configs/grids/sweep-spy.toml over the SPY
week (1,887,450 trades, five Lean days), each one whole replay, on a LocalCluster of
1 and then 2 worker processes: wall time (`tapeloop sweep` as a child process, from
spawn to exit: cluster start-up included) and jobs/s, and the scale-out ratio.
Targets: the 64 jobs in <= 60 s with 2 workers; 2 workers >= 1.8x one."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_reader import SPY
from bench.common import REPO, emit, now

CONFIG = REPO / "configs" / "replay-spy.toml"
GRID = REPO / "configs" / "grids" / "sweep-spy.toml"


def _sweep(data: Path, out: Path, workers: int) -> tuple[float, int]:
    t0 = now()
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "sweep", "--config", str(CONFIG), "--grid",
         str(GRID), "--data", str(data), "--out", str(out), "--workers", str(workers)],
        cwd=REPO, capture_output=True, text=True)
    wall = now() - t0
    if proc.returncode != 0:
        sys.exit(f"sweep failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    jobs = sum(1 for line in proc.stdout.splitlines()
               if line.startswith("{") and json.loads(line).get("event") == "sweep.job")
    return wall, jobs


def main() -> None:
    if not SPY.is_dir():
        emit("sweep_spy_64", skipped=f"{SPY} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        proc = subprocess.run(
            [sys.executable, "-m", "daemon.cli", "import", "trades",
             *map(str, sorted(SPY.glob("*_trade.zip"))), "--venue", "lean", "--symbol", "SPY",
             "--data", str(data)], cwd=REPO, capture_output=True)
        if proc.returncode != 0:
            sys.exit("import failed")
        walls = {}
        for workers in (1, 2):
            wall, jobs = _sweep(data, Path(tmp) / f"out{workers}", workers)
            walls[workers] = wall
            emit(f"sweep_spy_64_workers_{workers}", jobs=jobs, wall_s=round(wall, 1),
                 jobs_per_s=round(jobs / wall, 2), target_wall_s=60 if workers == 2 else None)
        emit("sweep_spy_64_scale_out", ratio=round(walls[1] / walls[2], 2), target_ratio=1.8)


if __name__ == "__main__":
    main()
