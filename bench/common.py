"""Shared bits of the benchmarks: machine description, JSON-line output, timing."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "ref_call_ns": reference_call_ns()}


def reference_call_ns() -> float:
    """Cost of one trivial Python function call in a loop, best of 5: a yardstick
    for this machine's speed right now (shared VMs swing by 2x), so a figure can
    be read against it."""

    def f(x: int) -> int:
        return x

    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(1_000_000):
            f(i)
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)  # ns per iteration (1e6 iterations)


def emit(name: str, **figures: object) -> None:
    """One JSON line on stdout per benchmark."""
    print(json.dumps({"bench": name, **figures}), flush=True)
    sys.stdout.flush()



def rounds(runs: int, fn: Callable[[], float]) -> dict[str, float]:
    """Best and median of `runs` throughput measurements. This machine shares
    its CPUs, so single runs swing by 2x; the best is what the code can do,
    the median what a busy machine gives."""
    got = sorted(fn() for _ in range(runs))
    return {"best": round(got[-1], 1), "median": round(got[len(got) // 2], 1)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


now = time.perf_counter
