"""Positions near liquidation are found at the configured distance, not before,
and the alert names the position (a real Alerts over a real bus, no webhook)."""

from __future__ import annotations

from decimal import Decimal as D

from daemon.alerts import Alerts
from daemon.config import AlertsConfig
from daemon.liquidation_watch import alert_liquidations, near
from daemon.trading.portfolio import Portfolio
from events.bus import Bus
from events.orders import Fill
from events.perp import Liquidation, MarkPrice
from events.state import BalanceChanged
from tests.daemon.trading.test_portfolio_perp import INSTRUMENTS, PERP, T0


def portfolio_at(mark: float) -> Portfolio:
    pf = Portfolio(lambda e: None, lambda: T0, INSTRUMENTS, account_currency="USDT",
                   perp_settings={PERP.key: (10, "cross")})
    pf.apply(BalanceChanged(ts_event=T0, ts_recv=T0, venue="fut", currency="USDT",
                            total=D(1000), free=D(0)))
    pf.apply(Fill(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", strategy_id="s",
                  client_order_id="s-1", trade_id="1", side="BUY", qty=D(1),
                  price=D(10000), fee=D(0), fee_currency="USDT", liquidity="TAKER"))
    pf.apply(MarkPrice(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT", mark=mark))
    return pf


def test_near_is_within_the_distance_and_not_outside_it():
    # liquidation price 9036.1 (wallet 1000, 1 BTC long at 10000, 0.4 %)
    assert near(portfolio_at(9900.0), D(5)) == []  # 8.7 % away
    ((p, d),) = near(portfolio_at(9400.0), D(5))  # 3.87 % away
    assert p.symbol == "BTCUSDT" and D("3.8") < d < D("3.9")


def test_a_liquidation_raises_an_alert(captured):  # type: ignore[no-untyped-def]
    _buf, lines = captured
    bus = Bus()
    alerts = Alerts(AlertsConfig(), bus, lambda: T0)
    alert_liquidations(bus, alerts)
    bus.publish(Liquidation(ts_event=T0, ts_recv=T0, venue="fut", symbol="BTCUSDT",
                            side="SELL", qty=D(1), price=D(9036), mark=D(9036), fee=D(1),
                            fee_currency="USDT", trade_id="L1"))
    (line,) = [x for x in lines() if x["event"] == "alert"]
    assert line["kind"] == "liquidated" and "9036" in line["message"]


def test_metrics_expose_margin_and_the_distance_to_liquidation():
    from daemon.metrics import Registry, _collect_margin

    reg = Registry()
    _collect_margin(reg, portfolio_at(9400.0))
    from tests.daemon.test_control import parse_prometheus, sample

    s = parse_prometheus(reg.render())  # labels in any order, 400 or 400.0
    assert sample(s, "tapeloop_margin_balance", venue="fut", currency="USDT") == 400
    distance = sample(s, "tapeloop_liquidation_distance_pct", venue="fut", symbol="BTCUSDT")
    assert 3.8 < distance < 3.9
