"""Twap across restarts of the node (rebuilt from the journal): it started its schedule
over at every start, so a restart mid-run sent the whole parent again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.daemon.strategies.algo_world import T0, Daemon, S, algo_config, trades

CLS = "daemon.strategies.twap:Twap"
PARAMS = '{ side = "BUY", total_qty = 1.0, duration = "10m", slices = 4 }'
END = T0 + 15 * 60 * S


def run_with_kills(tmp_path: Path, kills: list[tuple[int, int]]) -> Daemon:
    d = Daemon(algo_config(tmp_path, "twap", CLS, PARAMS))
    d.boot(T0)
    t = T0
    for kill_s, down_s in sorted(kills):
        stop = T0 + kill_s * S
        d.feed(trades(t, stop, 10 * S))
        t = stop + down_s * S
        d.boot(t)
    d.feed(trades(t, END, 10 * S))
    return d


def test_a_restart_mid_run_resumes_the_schedule(tmp_path: Path) -> None:
    d = run_with_kills(tmp_path, [(200, 150)])
    children = d.children("twap")
    assert [(e.ts_event - T0) // S for e in children] == [0, 150, 350, 450]
    assert [e.qty for e in children] == [Decimal("0.25")] * 4
    assert d.filled("twap") == Decimal(1)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 800), st.integers(0, 200)), max_size=3,
                unique_by=lambda k: k[0]))
def test_any_kills_fill_the_total_exactly_once(tmp_path_factory, kills) -> None:  # type: ignore[no-untyped-def]
    d = run_with_kills(tmp_path_factory.mktemp("twap"), kills)
    children = d.children("twap")
    assert sum((e.qty for e in children), Decimal(0)) == Decimal(1), kills
    assert d.filled("twap") == Decimal(1), kills
    assert len(children) <= 4, kills
