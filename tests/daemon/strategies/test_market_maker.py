"""MarketMaker: quote arithmetic (spread, skew, caps, post-only clamp) and the
quoting loop (post-only placement, requote threshold, amend, fills, stop)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon.strategies.market_maker import MarketMakerParams, compute_quotes
from daemon.trading.api import BUY, LIMIT, SELL
from events.market import Quote
from tests.daemon.strategies.conftest import World
from tests.daemon.strategies.fakes import instrument, strategy_config

D = Decimal
INST = instrument(tick="0.01", step="0.001")
P = MarketMakerParams(qty=0.5, half_spread_bps=10, max_position=2, skew_bps=20,
                      allow_short=True)


@pytest.mark.parametrize("position,bid,ask", [
    # mid 100.01: bid 100.01*0.999 floored, ask 100.01*1.001 ceiled
    (D(0), (D("99.90"), D("0.5")), (D("100.12"), D("0.5"))),
    # long half the cap: both quotes shift down by 10 bps of the mid
    (D(1), (D("99.81"), D("0.5")), (D("100.01"), D("0.5"))),
    # at the cap: no bid; the ask would be 99.91, through the bid, so it is clamped
    (D(2), None, (D("100.01"), D("0.5"))),
    # short 1.8 of 2: the bid is clamped below the ask; only 0.2 more may be sold
    (D("-1.8"), (D("100.01"), D("0.5")), (D("100.30"), D("0.2"))),
])
def test_quotes_spread_skew_caps_and_post_only_clamp(
        position: Decimal, bid: tuple[Decimal, Decimal] | None,
        ask: tuple[Decimal, Decimal] | None) -> None:
    assert compute_quotes(100.0, 100.02, position, P, INST) == (bid, ask)


def test_no_ask_when_flat_without_shorting() -> None:
    p = MarketMakerParams(qty=0.5, half_spread_bps=10, max_position=2)
    assert compute_quotes(100.0, 100.02, D(0), p, INST)[1] is None
    assert compute_quotes(100.0, 100.02, D("0.3"), p, INST)[1] == (D("100.12"), D("0.3"))


def quote(ts: int, bid: float, ask: float) -> Quote:
    return Quote(ts_event=ts, ts_recv=ts, venue="sim", symbol="BTCUSDT", bid=bid, ask=ask,
                 bid_size=1.0, ask_size=1.0)


def test_quoting_loop() -> None:
    world = World([INST])
    params = {"qty": 0.5, "half_spread_bps": 10, "max_position": 2, "skew_bps": 20,
              "allow_short": True, "requote_bps": 5}
    world.runtime.add(strategy_config("mm", "daemon.strategies.market_maker:MarketMaker",
                                      params=params))
    world.runtime.start()
    gw = world.gateway

    world.feed([quote(1, 100.0, 100.02)])
    assert [(r.side, r.order_type, r.post_only, r.price, r.qty) for _, r in gw.submitted] == [
        (BUY, LIMIT, True, D("99.90"), D("0.5")), (SELL, LIMIT, True, D("100.12"), D("0.5"))]

    world.feed([quote(2, 100.02, 100.04)])  # the mid moved 2 bps < 5: nothing
    assert len(gw.submitted) == 2 and gw.amends == []

    world.feed([quote(3, 100.10, 100.12)])  # 11 bps: both quotes amended in place
    assert gw.amends == [("mm-1", {"qty": D("0.5"), "price": D("100.00")}),
                         ("mm-2", {"qty": D("0.5"), "price": D("100.22")})]

    gw.fill("mm-1")  # the bid fills: long 0.5, quotes skew down at once
    world.feed([quote(4, 100.10, 100.12)])
    assert world.portfolio.position("sim", "BTCUSDT", "mm").qty == D("0.5")
    (_, new_bid), = gw.submitted[2:]
    # center 100.11*(1 - 20bps*0.25) = 100.0599: bid 99.9599 floored, ask 100.16000 ceiled
    assert (new_bid.side, new_bid.price) == (BUY, D("99.95"))
    assert gw.amends[-1] == ("mm-2", {"qty": D("0.5"), "price": D("100.17")})

    world.runtime.stop()
    assert sorted(gw.cancels) == ["mm-2", "mm-3"]
    assert gw.open_orders("mm") == []


def test_replace_mode_cancels_and_resubmits() -> None:
    world = World([INST])
    params = {"qty": 0.5, "half_spread_bps": 10, "max_position": 2, "requote": "replace"}
    world.runtime.add(strategy_config("mm", "daemon.strategies.market_maker:MarketMaker",
                                      params=params))
    world.runtime.start()
    world.feed([quote(1, 100.0, 100.02), quote(2, 101.0, 101.02)])
    assert world.gateway.cancels == ["mm-1"]
    assert [r.price for _, r in world.gateway.submitted] == [D("99.90"), D("100.90")]


def test_after_a_restart_it_takes_over_the_quotes_it_left_resting() -> None:
    """A market maker restarted with its quotes still resting at the venue (kept by
    `on_stop = "keep"`, or a crash) placed a second pair beside them: the old ones
    rested untended, doubling its exposure. It now adopts them as its quotes."""
    from daemon.trading.api import OrderRequest

    world = World([INST])
    gw = world.gateway
    params = {"qty": 0.5, "half_spread_bps": 10, "max_position": 2, "allow_short": True,
              "requote_bps": 5}
    left = [gw.submit("mm", OrderRequest(venue="sim", symbol="BTCUSDT", side=side,
                                         qty=D("0.5"), order_type=LIMIT, price=price,
                                         post_only=True))
            for side, price in ((BUY, D("99.80")), (BUY, D("99.70")), (SELL, D("100.20")))]
    world.runtime.add(strategy_config("mm", "daemon.strategies.market_maker:MarketMaker",
                                      params=params))
    world.runtime.start()
    assert gw.cancels == [left[1]], "a second bid of the last run is one too many"
    world.feed([quote(1, 100.0, 100.02)])
    assert len(gw.submitted) == 3, "no new quote beside the adopted ones"
    assert {cid for cid, _ in gw.amends} == {left[0], left[2]}  # moved to the new prices
    assert sorted((o.side, o.price) for o in gw.open_orders("mm")) == [
        (BUY, D("99.90")), (SELL, D("100.12"))]
