"""Iceberg on the real node: one visible slice at the fixed price, re-posted as it
fills; a cancel ends the whole; a restart (node rebuilt from the journal) neither
re-posts a slice nor loses one."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from events.market import Trade
from events.orders import OrderSubmitted
from tests.daemon.strategies.algo_world import T0, Daemon, S, algo_config

CLS = "daemon.strategies.iceberg:Iceberg"
PARAMS = '{ side = "BUY", total_qty = 1.0, display_qty = 0.3, price = 100.004 }'
N = 40  # trades: even ones above the price (no fill), odd ones through it


def market(i: int) -> Trade:
    t = T0 + i * 10 * S
    return Trade(ts_event=t, ts_recv=t, venue="sim", symbol="BTCUSDT",
                 price=101.0 if i % 2 == 0 else 99.5, size=1.0)


def most_open(d: Daemon) -> int:
    """The most children of the iceberg open at once, by the OMS after every event."""
    assert d.node is not None
    return len(d.node.oms.open_orders("ice"))


def run(tmp_path: Path, kills: list[int] = ()) -> tuple[Daemon, int]:  # type: ignore[assignment]
    d = Daemon(algo_config(tmp_path, "ice", CLS, PARAMS))
    d.boot(T0)
    widest = 0
    for i in range(N):
        if i in kills:
            d.boot(market(i).ts_event)
        d.feed([market(i)])
        widest = max(widest, most_open(d))
    return d, widest


def test_slices_reposted_at_the_fixed_price_until_done(tmp_path: Path) -> None:
    d, widest = run(tmp_path)
    children = d.children("ice")
    assert [e.qty for e in children] == [Decimal("0.3")] * 3 + [Decimal("0.1")]
    assert {e.price for e in children} == {Decimal("100.00")}  # a BUY rounds down
    assert widest == 1
    assert d.filled("ice") == Decimal(1)
    assert d.node is not None and d.node.runtime.status("ice") == "stopped"


def test_canceling_the_visible_slice_ends_the_whole_also_after_a_restart(
        tmp_path: Path) -> None:
    d = Daemon(algo_config(tmp_path, "ice", CLS, PARAMS))
    node = d.boot(T0)
    d.feed([market(0), market(1), market(2)])  # slice 1 filled, slice 2 posted
    assert len(d.children("ice")) == 2
    node.runtime.strategy("ice").cancel_parent()  # type: ignore[attr-defined]
    d.feed([market(3), market(4)])  # the venue answers the cancel
    assert node.runtime.status("ice") == "stopped"
    d.boot(market(5).ts_event)
    d.feed([market(i) for i in range(5, 12)])
    assert len(d.children("ice")) == 2 and d.filled("ice") == Decimal("0.3")
    assert [type(e).__name__ for e in d.journal if type(e) is OrderSubmitted] == [
        "OrderSubmitted"] * 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, N - 1), max_size=4, unique=True))
def test_any_restarts_post_each_slice_once(tmp_path_factory, kills) -> None:  # type: ignore[no-untyped-def]
    d, widest = run(tmp_path_factory.mktemp("ice"), sorted(kills))
    children = d.children("ice")
    assert [e.qty for e in children] == [Decimal("0.3")] * 3 + [Decimal("0.1")], kills
    assert widest == 1, kills
    assert d.filled("ice") == Decimal(1), kills
