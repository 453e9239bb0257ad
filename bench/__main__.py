"""Run every benchmark, each in its own process (so peak RSS is per benchmark)."""

from __future__ import annotations

import subprocess
import sys

from bench.common import REPO, emit, machine, reference_call_ns

BENCHES = ["bench.bench_bus", "bench.bench_reader", "bench.bench_pipeline",
           "bench.bench_portfolio", "bench.bench_decode",
           "bench.bench_market_ws", "bench.bench_tick_to_order",
           "bench.bench_restart", "bench.bench_soak_rss", "bench.bench_sweep"]


def main() -> int:
    emit("machine", **machine())
    failed = 0
    for module in BENCHES:
        proc = subprocess.run([sys.executable, "-m", module], cwd=REPO)
        failed += proc.returncode != 0
    emit("machine_after", ref_call_ns=reference_call_ns())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
