"""Risk across currencies: money limits (order and position notional, concentration,
daily loss) are in the account currency, reached through conversion marks; with no
conversion mark a money check refuses (it never becomes "unlimited"); balances stay
per currency. The real risk engine on a bus with the real portfolio."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from daemon.config import RiskConfig, VenueConfig
from daemon.trading.api import BUY, LIMIT, SELL, OrderRequest
from daemon.trading.portfolio import DAY_NS, Portfolio
from daemon.trading.risk import RiskEngine
from daemon.trading.risk_checks import Rejection
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import Trade
from events.orders import Fill
from events.state import BalanceChanged
from events.system import ACTIVE, HALTED, REDUCING
from tests.daemon.trading.test_risk import Clock, refused

T0 = 19_700 * DAY_NS + 12 * 3_600 * 10**9  # noon UTC


def inst(symbol: str, base: str, quote: str) -> Instrument:
    return Instrument(venue="sim", symbol=symbol, base=base, quote=quote,
                      tick_size=D("0.00001"), step_size=D("0.0001"))


INSTRUMENTS = {i.key: i for i in (
    inst("BTCUSDT", "BTC", "USDT"), inst("ETHBTC", "ETH", "BTC"),
    inst("BTCTRY", "BTC", "TRY"), inst("USDTTRY", "USDT", "TRY"))}

LIMITS: dict[str, Any] = dict(
    max_order_qty=100.0, max_order_notional=1_000_000.0, max_position_qty=1000.0,
    daily_loss_limit=1000.0, max_orders_per_s=1000, price_band_pct=50.0)


class Env:
    def __init__(self, **limits: Any) -> None:
        self.clock = Clock()
        self.bus = Bus()
        self.portfolio = Portfolio(self.bus.publish, self.clock, INSTRUMENTS,
                                   account_currency="USDT")
        self.risk = RiskEngine(RiskConfig(**{**LIMITS, **limits}), {"s1": None},
                               INSTRUMENTS, self.portfolio, self.clock, self.bus.publish,
                               venues=[VenueConfig(name="sim")])
        self.risk.subscribe(self.bus)
        self.portfolio.subscribe(self.bus)
        self._ids = iter(range(1, 10**6))

    def publish(self, *events: Event) -> None:
        for event in events:
            self.bus.publish(event)

    def balance(self, currency: str, total: str | D) -> None:
        now = self.clock.now
        self.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="sim", currency=currency,
                                    total=D(total), free=D(total)))

    def trade(self, symbol: str, price: float) -> None:
        now = self.clock.now
        self.publish(Trade(ts_event=now, ts_recv=now, venue="sim", symbol=symbol, price=price,
                           size=1.0))

    def fill(self, symbol: str, side: str, qty: str, price: str, fee: str = "0",
             fee_currency: str = "") -> None:
        now = self.clock.now
        self.publish(Fill(ts_event=now, ts_recv=now, venue="sim", symbol=symbol,
                          strategy_id="s1", client_order_id=f"s1-{next(self._ids)}",
                          trade_id=str(next(self._ids)), side=side, qty=D(qty),
                          price=D(price), fee=D(fee), fee_currency=fee_currency,
                          liquidity="TAKER"))

    def check(self, symbol: str, side: str, qty: str | D, price: str) -> Rejection | None:
        return self.risk.check("s1", OrderRequest(venue="sim", symbol=symbol, side=side,
                                                  qty=D(qty), order_type=LIMIT,
                                                  price=D(price)))


def test_a_position_bought_with_a_base_fee_can_be_closed() -> None:
    """Issue 9, item 4: the position was 0.1 BTC while the venue held 0.0999, so
    the strategy's closing sell of its whole position was refused."""
    env = Env()
    env.balance("USDT", "100000")
    env.trade("BTCUSDT", 50000.0)
    env.fill("BTCUSDT", BUY, "0.1", "50000", fee="0.0001", fee_currency="BTC")
    env.balance("USDT", "95000")
    env.balance("BTC", "0.0999")
    position = env.portfolio.position("sim", "BTCUSDT", "s1").qty
    assert position == env.portfolio.balance("sim", "BTC") == D("0.0999")
    assert env.check("BTCUSDT", SELL, position, "50000") is None
    refused(env.check("BTCUSDT", SELL, "0.1", "50000"), "available_balance",
            "SELL needs 0.1 BTC (incl. taker fee), available 0.0999")


def test_unpriced_currencies_do_not_inflate_equity_for_concentration() -> None:
    """Issue 9, item 5: 1,000 BNB + 100,000 DOGE (no instrument prices them) counted
    101,000 USDT."""
    env = Env(max_concentration_pct=50.0)
    env.balance("USDT", "10000")
    env.balance("BNB", "1000")
    env.balance("DOGE", "100000")
    env.trade("BTCUSDT", 50000.0)
    assert env.portfolio.equity("sim") == 10000
    refused(env.check("BTCUSDT", BUY, "0.12", "50000"), "concentration",
            "account position 0.12 x 50000 = 6000 is 60.00% of equity 10000 > "
            "max_concentration_pct 50")
    assert env.check("BTCUSDT", BUY, "0.1", "50000") is None


def test_daily_losses_in_two_quote_currencies_are_converted_before_the_limit() -> None:
    """Issue 9, item 6: -0.01 BTC and -600 USDT were summed to a loss of 600.01."""
    env = Env()
    env.trade("BTCUSDT", 50000.0)
    env.trade("ETHBTC", 0.05)
    env.fill("ETHBTC", BUY, "1", "0.05")
    env.fill("ETHBTC", SELL, "1", "0.04")  # -0.01 BTC = -500 USDT
    assert env.risk.state == ACTIVE
    env.fill("BTCUSDT", BUY, "0.1", "50000")
    env.fill("BTCUSDT", SELL, "0.1", "44000")  # -600 USDT
    assert env.risk.state == REDUCING
    assert env.portfolio.daily_pnl() == -1100
    assert env.portfolio.daily_pnl_by_currency() == {"BTC": D("-0.01"), "USDT": -600}


def test_a_loss_in_a_cheap_currency_is_not_overstated() -> None:
    env = Env()
    env.trade("USDTTRY", 32.0)
    env.trade("BTCTRY", 1_600_000.0)
    env.fill("BTCTRY", BUY, "0.1", "1600000")
    env.fill("BTCTRY", SELL, "0.1", "1504000")  # -9600 TRY = -300 USDT (was a 9600 loss)
    assert env.portfolio.daily_pnl() == -300
    assert env.risk.state == ACTIVE and env.risk.evaluate() == ACTIVE
    env.trade("USDTTRY", 6.0)  # the lira gains: the same TRY loss is now 1600 USDT
    assert env.risk.evaluate() == HALTED


def test_order_and_position_notional_limits_are_in_the_account_currency() -> None:
    env = Env(max_order_notional=2000.0, max_position_notional=3000.0)
    env.balance("BTC", "10")
    env.trade("BTCUSDT", 50000.0)
    env.trade("ETHBTC", 0.05)
    refused(env.check("ETHBTC", BUY, "1", "0.05"), "max_order_notional",
            "notional 1 x 0.05 = 0.05 (= 2500 USDT) > max_order_notional 2000")
    assert env.check("ETHBTC", BUY, "0.8", "0.05") is None  # 2000 USDT
    env.fill("ETHBTC", BUY, "0.8", "0.05")
    refused(env.check("ETHBTC", BUY, "0.8", "0.05"), "max_position_notional",
            "account position 0.8 -> 1.6: notional 0.08 (= 4000 USDT) > max_position_notional "
            "3000")
    # the account currency's own instruments read as before
    refused(env.check("BTCUSDT", BUY, "0.05", "50000"), "max_order_notional",
            "notional 0.05 x 50000 = 2500 > max_order_notional 2000")


def test_a_money_limit_with_no_conversion_mark_refuses() -> None:
    """Fail-safe: with no BTCUSDT price the order's value in USDT is unknown."""
    env = Env(max_order_notional=2000.0)
    env.balance("BTC", "10")
    env.trade("ETHBTC", 0.05)
    refused(env.check("ETHBTC", BUY, "1", "0.05"), "max_order_notional",
            "notional 1 x 0.05 = 0.05 is in BTC, the limit in USDT: no conversion mark "
            "from BTC to USDT yet")
    env.trade("BTCUSDT", 30000.0)
    assert env.check("ETHBTC", BUY, "1", "0.05") is None  # 1500 USDT
