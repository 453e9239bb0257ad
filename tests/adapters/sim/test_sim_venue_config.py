"""`daemon.node.sim_venue` hands a simulated venue every key of its config:
the slippage model and its participation cap (once ignored: the venue always
ran "fixed_bps"/"none"), and the perpetual keys (funding, liquidation fee,
each instrument's leverage and margin mode)."""

from __future__ import annotations

from daemon.config import InstrumentConfig, VenueConfig
from daemon.node import sim_venue
from events.bus import Bus
from events.market import Quote, Trade
from events.orders import Fill, OrderSubmitted
from events.perp import FundingPayment, LeverageChanged, MarginModeChanged

from .harness import D

HOUR = 3_600 * 1_000_000_000


def test_the_configured_slippage_model_and_volume_cap_reach_the_venue() -> None:
    bus = Bus()
    fills: list[Fill] = []
    bus.subscribe(Fill, fills.append)
    inst = InstrumentConfig(venue="v", symbol="BTCUSDT", base="BTC", quote="USDT",
                            tick_size=0.01, step_size=0.001)
    vcfg = VenueConfig(name="v", balances={"USDT": 1e6}, slippage_model="hybrid",
                       slippage_bps=10.0, volume_limit_pct=25.0)
    venue = sim_venue(vcfg, [inst.instrument()], bus, lambda: 0, instrument_configs=[inst])
    venue.subscribe(bus)
    assert venue.slippage_model == "hybrid"
    bus.publish(Quote(ts_event=1, ts_recv=1, venue="v", symbol="BTCUSDT", bid=99.9,
                      ask=100.1, bid_size=1.0, ask_size=1.0))
    bus.publish(OrderSubmitted(ts_event=1, ts_recv=1, venue="v", symbol="BTCUSDT",
                               strategy_id="s", client_order_id="s-1", side="BUY",
                               order_type="MARKET", qty=D(1)))
    bus.publish(Trade(ts_event=2, ts_recv=2, venue="v", symbol="BTCUSDT", price=100.0, size=2))
    assert [(f.qty, f.price) for f in fills] == [(D("0.5"), D("100.13"))]


def test_perpetual_keys_reach_the_venue() -> None:
    bus = Bus()
    seen: list[object] = []
    bus.subscribe_all(seen.append)
    perp = InstrumentConfig(venue="v", symbol="BTCUSDT", base="BTC", quote="USDT",
                            tick_size=0.01, step_size=0.001, kind="perpetual", leverage=5,
                            margin_mode="isolated")
    other = InstrumentConfig(venue="w", symbol="BTCUSDT", base="BTC", quote="USDT",
                             tick_size=0.01, step_size=0.001, kind="perpetual", leverage=9)
    vcfg = VenueConfig(name="v", balances={"USDT": 1000.0}, funding_rate=0.001,
                       funding_interval_h=4.0, liquidation_fee_pct=2.0)
    venue = sim_venue(vcfg, [perp.instrument()], bus, lambda: 0,
                      instrument_configs=[perp, other])
    venue.subscribe(bus)
    venue.start()
    assert [(type(e).__name__, getattr(e, "leverage", getattr(e, "mode", None)))
            for e in seen if isinstance(e, (LeverageChanged, MarginModeChanged))] == [
        ("LeverageChanged", 5), ("MarginModeChanged", "isolated")]
    bus.publish(Trade(ts_event=1, ts_recv=1, venue="v", symbol="BTCUSDT", price=100.0, size=1))
    bus.publish(OrderSubmitted(ts_event=1, ts_recv=1, venue="v", symbol="BTCUSDT",
                               strategy_id="s", client_order_id="s-1", side="BUY",
                               order_type="MARKET", qty=D(1)))
    for ts in (2, 4 * HOUR):
        bus.publish(Trade(ts_event=ts, ts_recv=ts, venue="v", symbol="BTCUSDT", price=100.0,
                          size=1))
    assert [(p.funding_ts, p.amount) for p in seen if isinstance(p, FundingPayment)] == [
        (4 * HOUR, D("-0.1"))]
    assert venue._perp is not None and venue._perp.liq_rate == D("0.02")
