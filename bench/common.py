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
    """What the figures were measured on: the CPU (its family and model tell Zen 3
    from Zen 4 where the name says only "AMD EPYC"; L2 per core, which the order
    path's speed follows), the interpreter and how it was built (a static,
    PGO-built one such as Debian's ran the order path 13-17 % faster than a shared
    libpython built without PGO, pyenv's default: README, The native build), and
    `code`."""
    cpu = platform.processor() or platform.machine()
    ids: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in ids:
                ids[key] = value.strip()
            if not line.strip():
                break
    except OSError:
        pass
    cpu = ids.get("model name", cpu)
    try:
        l2 = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
    except OSError:
        l2 = None
    try:
        maps = Path("/proc/self/maps").read_text()
        libpython = "shared" if "libpython" in maps else "static"
    except OSError:
        libpython = None
    from events import native

    # `code`: whether the order path's modules run compiled (events/native.py)
    return {"cpu": cpu, "cpu_family_model": f"{ids.get('cpu family')}/{ids.get('model')}",
            "l2_per_core": l2, "cores": os.cpu_count(), "python": platform.python_version(),
            "interpreter": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
            "libpython": libpython, "code": native.STATUS, "ref_call_ns": reference_call_ns()}


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


class _Point:
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y


def _fixed_work(n: int) -> int:
    """Plain interpreter work: calls, attributes, a dict, small objects."""
    seen: dict[int, _Point] = {}
    total = 0
    for i in range(n):
        p = _Point(i, i & 7)
        seen[i & 15] = p
        total += seen[p.y].x
    return total


def machine_jitter(reps: int = 160, n: int = 20_000) -> dict[str, float]:
    """This machine's own tail, for a latency figure to be read against: one fixed
    piece of plain Python (`reps` turns of `_fixed_work`, about 40 µs on the 2-core
    VM of the README) timed `n` times, with as much again run between timings, as
    a latency bench runs other work between its orders. p50/p90/p99 in µs and
    `p99_over_p50`: near 1 on an idle, dedicated core; a shared VM's noise (other
    guests on the host's cores and caches) shows in it."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        _fixed_work(reps)
        out.append(clock() - t0)
        _fixed_work(reps)
    out.sort()

    def pct(q: float) -> float:
        return round(out[min(len(out) - 1, int(q * len(out)))] / 1000, 1)

    return {"work_reps": reps, "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
            "p99_over_p50": round(pct(0.99) / pct(0.5), 2)}


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
