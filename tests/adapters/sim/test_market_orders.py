"""Market orders under the default "next" fill model: the first market price
after arrival, never the price that triggered the decision; latency in event
time; acks stamped at arrival, fills at the market event."""

from __future__ import annotations

import pytest

from events.market import Trade
from events.orders import Fill, OrderAccepted, OrderRejected

from .harness import INST, MS, SYMBOL, VENUE, D, Sim


def test_order_placed_on_event_e_fills_at_the_next_trade_not_at_e() -> None:
    sim = Sim(taker_fee_bps=10)
    placed: list[str] = []

    def strategy(ev: Trade) -> None:  # subscribed after the venue, as the kernel does
        if not placed:
            placed.append(sim.submit(ev.ts_event, "BUY", "MARKET", "0.5"))

    sim.bus.subscribe(Trade, strategy)
    sim.trade(1_000, 100.0)  # E: the decision
    assert sim.fills() == []
    assert sim.of(OrderAccepted) == []  # nothing happens before the venue sees a later event
    sim.trade(1_000, 100.5)  # same timestamp, later event: this is the next price
    sim.trade(2_000, 99.0)
    assert sim.fills() == [(1_000, "BUY", D("0.5"), D("100.50"), "TAKER")]
    [fill] = sim.of(Fill)
    assert fill.fee == D("0.05025000")  # 100.50 × 0.5 × 10 bps
    assert fill.fee_currency == "USDT"
    assert fill.trade_id == "sim-T1" and fill.venue_order_id == "sim-1"
    assert fill.strategy_id == "s" and fill.client_order_id == placed[0]
    assert sim.order_events(placed[0]) == ["OrderAccepted", "Fill"]


def test_acks_are_stamped_at_arrival_fills_at_the_market_event_ts_recv_from_clock() -> None:
    sim = Sim()
    sim.trade(10, 100.0)
    cid = sim.submit(10, "SELL", "MARKET", "1")
    sim.trade(25, 99.5)
    [acc] = sim.of(OrderAccepted, cid)
    [fill] = sim.of(Fill, cid)
    assert (acc.ts_event, acc.ts_recv) == (10, 25)
    assert (fill.ts_event, fill.ts_recv, fill.price) == (25, 25, D("99.50"))


def test_latency_is_event_time() -> None:
    sim = Sim(latency_ms=5)
    sim.trade(1 * MS, 100.0)
    cid = sim.submit(1 * MS, "BUY", "MARKET", "1")
    sim.trade(2 * MS, 100.1)
    sim.trade(5 * MS, 100.2)  # arrival is at 6 ms: these are before it
    assert sim.of(OrderAccepted) == []
    sim.trade(6 * MS, 100.3)
    [acc] = sim.of(OrderAccepted, cid)
    assert acc.ts_event == 6 * MS
    assert sim.fills() == [(6 * MS, "BUY", D(1), D("100.30"), "TAKER")]


def test_market_orders_take_the_opposite_side_of_the_next_quote() -> None:
    sim = Sim()
    sim.quote(1, 99.9, 100.1)
    buy = sim.submit(1, "BUY", "MARKET", "1")
    sell = sim.submit(1, "SELL", "MARKET", "2")
    sim.quote(2, 99.8, 100.2)
    assert sim.fills(buy) == [(2, "BUY", D(1), D("100.20"), "TAKER")]
    assert sim.fills(sell) == [(2, "SELL", D(2), D("99.80"), "TAKER")]


def test_market_orders_on_bars_fill_at_the_next_bar_open_stamped_at_its_close() -> None:
    sim = Sim()
    sim.bar(60_000 * MS, 100, 101, 99, 100.5)
    cid = sim.submit(60_000 * MS, "BUY", "MARKET", "1")
    sim.bar(120_000 * MS, 100.7, 102, 100.2, 101.9)
    assert sim.fills(cid) == [(120_000 * MS, "BUY", D(1), D("100.70"), "TAKER")]


@pytest.mark.parametrize("model", ["next", "aggressive", "conservative", "queue_aware"])
def test_every_fill_model_fills_market_orders_whole_at_the_next_price(model: str) -> None:
    sim = Sim(fill_model=model)
    sim.trade(1, 100.0, size=0.001)
    cid = sim.submit(1, "BUY", "MARKET", "3")
    sim.trade(2, 100.25, size=0.001)
    assert sim.fills(cid) == [(2, "BUY", D(3), D("100.25"), "TAKER")]


def test_market_prices_are_rounded_to_the_tick() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "MARKET", "1")
    sim.trade(2, 100.12499999)
    assert sim.fills(cid)[0][3] == D("100.12")


def test_other_venues_and_symbols_are_ignored() -> None:
    sim = Sim()
    sim.trade(1, 100.0)
    cid = sim.submit(1, "BUY", "MARKET", "1")
    other = sim.submit(1, "BUY", "MARKET", "1", venue="binance")
    sim.trade(2, 50.0, venue="binance")
    sim.trade(2, 50.0, symbol="ETHUSDT")
    assert sim.fills() == []
    sim.trade(3, 101.0)
    assert sim.fills(cid) == [(3, "BUY", D(1), D("101.00"), "TAKER")]
    assert sim.order_events(other) == []


def test_unknown_symbol_and_off_grid_orders_are_rejected() -> None:
    sim = Sim()
    bad = sim.submit(5, "BUY", "MARKET", "1", symbol="DOGEUSDT")
    [rej] = sim.of(OrderRejected, bad)
    assert rej.ts_event == 5 and "unknown symbol" in rej.reason
    sim.trade(6, 100.0)
    off = sim.submit(6, "BUY", "LIMIT", "0.000001", price="99")
    tick = sim.submit(6, "BUY", "LIMIT", "1", price="99.005")
    sim.trade(7, 100.0)
    assert "step" in sim.of(OrderRejected, off)[0].reason
    assert "tick" in sim.of(OrderRejected, tick)[0].reason


def test_a_symbol_without_orders_builds_no_touch_and_publishes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The replay hot path: a lookup and a store, no Decimal work at all.
    import adapters.sim.venue as venue_module

    def forbidden(*args: object) -> None:
        raise AssertionError("matching work on an idle symbol")

    monkeypatch.setattr(venue_module, "trade_touch", forbidden)
    sim = Sim()
    n = len(sim.events)
    for i in range(1000):
        sim.bus.publish(Trade(ts_event=i, ts_recv=i, venue=VENUE, symbol=SYMBOL,
                              price=100.0 + i, size=1.0))
    assert len(sim.events) == n + 1000
    st = sim.venue._symbols[INST.symbol]
    assert not st.busy and st.last_px == 1099.0


def test_latency_counts_from_the_market_time_the_venue_has_reached() -> None:
    """Live, a request is stamped by the local clock and market events by the
    venue's: an order stamped behind the market (local clock behind, or a feed
    played fast) still arrives one latency after the market time reached."""
    sim = Sim(latency_ms=5)
    sim.trade(10_000_000_000, 100.0)
    cid = sim.submit(1_000, "BUY", "MARKET", "1")  # stamped 10 s behind the market
    sim.trade(10_000_000_000 + 4_000_000, 100.5)  # within the latency: not yet
    sim.trade(10_000_000_000 + 5_000_000, 101.0)
    assert sim.fills(cid) == [(10_005_000_000, "BUY", D(1), D("101.00"), "TAKER")]
