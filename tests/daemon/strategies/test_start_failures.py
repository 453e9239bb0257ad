"""Strategies that cannot start (issue 10, item 4): the runtime reports them, so the
kernel can refuse a start instead of saying READY with a strategy dead at start."""

from __future__ import annotations

import pytest

from daemon.strategies.loader import StrategyError
from daemon.strategies.runtime import StartFailure
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import strategy_config

TESTS = "tests.strategies_for_tests"
OK = "daemon.strategies.sma_cross:SmaCross"
OK_PARAMS = {"fast": 1, "slow": 2, "qty": 0.01}


def add(world: World, sid: str, cls: str, **kw: object) -> None:
    params = OK_PARAMS if cls == OK else {}
    world.runtime.add(strategy_config(sid, cls, params=params), **kw)  # type: ignore[arg-type]


def test_start_returns_what_failed_and_each_is_a_failed_status() -> None:
    world = World()
    add(world, "a", OK)
    add(world, "b", f"{TESTS}:FailsAtStart")
    add(world, "c", f"{TESTS}:FailsToBuild", keep_failed=True)
    add(world, "d", OK)
    failures = world.runtime.start()
    assert failures == [
        StartFailure("b", "on_start", "RuntimeError('cannot start:\\nmodel file missing')"),
        StartFailure("c", "__init__", "KeyError('no such model')"),
    ]
    assert world.statuses() == [("a", "running"), ("b", "failed"), ("c", "failed"),
                                ("d", "running")]
    assert {s: world.runtime.status(s) for s in "abcd"} == {
        "a": "running", "b": "failed", "c": "failed", "d": "running"}


def test_stop_at_failure_starts_no_more_and_a_broken_one_stops_any_start() -> None:
    world = World()
    add(world, "a", OK)
    add(world, "b", f"{TESTS}:FailsAtStart")
    add(world, "c", OK)
    assert [f.strategy_id for f in world.runtime.start(stop_at_failure=True)] == ["b"]
    assert world.statuses() == [("a", "running"), ("b", "failed")]  # c never started

    world = World()
    add(world, "a", OK)
    add(world, "b", f"{TESTS}:FailsToBuild", keep_failed=True)
    assert world.runtime.start(stop_at_failure=True) == [
        StartFailure("b", "__init__", "KeyError('no such model')")]
    assert world.statuses() == [("b", "failed")]  # found before anything started
    assert world.runtime.status("a") == "added"
    world.runtime.stop()
    assert world.statuses() == [("b", "failed")]  # nothing to stop


def test_a_construction_failure_raises_unless_kept_and_a_kept_one_can_be_replaced() -> None:
    world = World()
    with pytest.raises(StrategyError, match=r"^strategies\[b\]: tests\.strategies_for_tests:"
                                            r"FailsToBuild failed to initialise: KeyError"):
        add(world, "b", f"{TESTS}:FailsToBuild")
    add(world, "b", f"{TESTS}:FailsToBuild", keep_failed=True)
    world.runtime.start()
    # what the control API's "start" does with a failed strategy: remove, add afresh
    world.runtime.remove("b")
    add(world, "b", OK)
    assert world.runtime.status("b") == "running"
    assert world.statuses() == [("b", "failed"), ("b", "running")]


def test_a_failure_after_start_is_not_a_start_failure() -> None:
    world = World()
    add(world, "boom", f"{TESTS}:Boom")
    assert world.runtime.start() == []
