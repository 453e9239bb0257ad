"""bench.common.machine_jitter: the fixed piece of Python every sitting times, so a
latency p99 can be read against this machine's own tail."""

from __future__ import annotations

from bench.common import _fixed_work, machine_jitter


def test_the_work_is_fixed_and_its_figures_are_ordered() -> None:
    # the same answer every time: the work does not depend on anything outside it
    assert _fixed_work(160) == _fixed_work(160) != _fixed_work(159)
    got = machine_jitter(reps=40, n=500)
    assert got["work_reps"] == 40
    assert 0 < got["p50_us"] <= got["p90_us"] <= got["p99_us"]
    assert got["p99_over_p50"] == round(got["p99_us"] / got["p50_us"], 2) >= 1.0
