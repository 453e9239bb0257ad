"""The perpetual risk checks (available_margin, leverage, margin_usage,
liquidation_distance): each accepts at its limit and refuses past it, an order
that reduces the position always passes, and spot's available_balance leaves
contracts alone. A real bus, the real portfolio and risk engine."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from daemon.config import RiskConfig, VenueConfig
from daemon.trading.api import BUY, LIMIT, MARKET, SELL, OrderRequest
from daemon.trading.portfolio import DAY_NS, Portfolio
from daemon.trading.risk import RiskEngine
from daemon.trading.risk_checks import CHECK_NAMES
from events.bus import Bus
from events.instruments import Instrument
from events.margin import tiers
from events.orders import Fill
from events.perp import MarkPrice
from events.state import BalanceChanged

T0 = 19_700 * DAY_NS + 12 * 3_600 * 10**9
PERP = Instrument(venue="fut", symbol="BTCUSDT", base="BTC", quote="USDT",
                  tick_size=D("0.1"), step_size=D("0.001"), kind="perpetual",
                  margin_asset="USDT", max_leverage=125,
                  margin_tiers=tiers([(D(10**9), D("0.004"), 125)]))
LIMITS: dict[str, Any] = dict(
    max_order_qty=100.0, max_order_notional=10_000_000.0, max_position_qty=100.0,
    daily_loss_limit=1e9, max_orders_per_s=1000, price_band_pct=50.0)


def engine(leverage: int = 10, **risk: Any) -> tuple[RiskEngine, Portfolio]:
    bus = Bus()
    pf = Portfolio(bus.publish, lambda: T0, {PERP.key: PERP}, account_currency="USDT",
                   perp_settings={PERP.key: (leverage, "cross")})
    pf.subscribe(bus)
    eng = RiskEngine(RiskConfig(**LIMITS, **risk), {}, {PERP.key: PERP}, pf, lambda: T0,
                     bus.publish, venues=[VenueConfig(name="fut", taker_fee_bps=0.0)])
    pf.apply(BalanceChanged(ts_event=T0, ts_recv=T0, venue="fut", currency="USDT",
                            total=D(1000), free=D(1000)))
    pf.apply(MarkPrice(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT",
                       mark=10000.0))
    return eng, pf


def order(side: str, qty: str, price: str | None = None, reduce_only: bool = False
          ) -> OrderRequest:
    return OrderRequest(venue="fut", symbol="BTCUSDT", side=side,
                        order_type=LIMIT if price else MARKET, qty=D(qty),
                        price=D(price) if price else None, reduce_only=reduce_only)


def hold(pf: Portfolio, side: str, qty: str, price: str = "10000") -> None:
    pf.apply(Fill(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", strategy_id="s",
                  client_order_id="s-1", trade_id=f"t{side}{qty}", side=side, qty=D(qty),
                  price=D(price), fee=D(0), fee_currency="USDT", liquidity="TAKER"))


def test_the_perpetual_checks_are_named_and_run_before_the_rate_check():
    names = list(CHECK_NAMES)
    for name in ("available_margin", "leverage", "margin_usage", "liquidation_distance"):
        assert names.index(name) < names.index("order_rate")


def test_available_margin_at_and_past_the_limit_and_a_short_needs_no_base():
    eng, _pf = engine(leverage=10)
    assert eng.check("s", order(BUY, "1", "10000")) is None  # 10000 / 10 = 1000: all of it
    refused = eng.check("s", order(BUY, "1.001", "10000"))
    assert refused is not None and refused.check == "available_margin"
    assert "1001" in refused.reason and "USDT" in refused.reason
    # a short on spot would need the base; a contract needs margin only
    assert eng.check("s", order(SELL, "1", "10000")) is None


def test_leverage_limit():
    eng, pf = engine(leverage=20, max_leverage=5.0)
    assert eng.check("s", order(BUY, "0.5", "10000")) is None  # 5000 / 1000 = 5x
    refused = eng.check("s", order(BUY, "0.501", "10000"))
    assert refused is not None and refused.check == "leverage"
    hold(pf, BUY, "0.5")
    assert eng.check("s", order(SELL, "0.5", "10000")) is None  # reduces: passes


def test_margin_usage_limit():
    eng, pf = engine(leverage=10, max_margin_usage_pct=50.0)
    assert eng.check("s", order(BUY, "0.5", "10000")) is None  # 500 / 1000
    refused = eng.check("s", order(BUY, "0.6", "10000"))
    assert refused is not None and refused.check == "margin_usage"
    hold(pf, BUY, "0.5")
    assert eng.check("s", order(SELL, "0.2", "10000", reduce_only=True)) is None


def test_liquidation_distance_guard():
    eng, pf = engine(leverage=100, min_liquidation_distance_pct=20.0)
    # long 0.5 at 10000 on a 1000 wallet: LP = (1000 - 5000) / (0.5 x 0.004 - 0.5)
    # = 8032.1..., 19.7 % below the mark: refused; 0.45 -> LP 7786.9..., 22.1 %: passes
    refused = eng.check("s", order(BUY, "0.5", "10000"))
    assert refused is not None and refused.check == "liquidation_distance"
    assert "8032.1" in refused.reason
    assert eng.check("s", order(BUY, "0.45", "10000")) is None
    hold(pf, BUY, "0.45")
    assert eng.check("s", order(SELL, "0.45", "10000")) is None
