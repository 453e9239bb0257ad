"""The risk engine: every check accepts at its limit and refuses past it (with its
name and a reason carrying the numbers), strategy limits, the rate window, and the
trading state machine. Runs on a real bus with the real portfolio (fakes over mocks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

import pytest

from daemon.config import RiskConfig, StrategyRiskConfig, VenueConfig
from daemon.trading.api import (
    BUY,
    LIMIT,
    MARKET,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    OrderRequest,
)
from daemon.trading.portfolio import DAY_NS, Portfolio
from daemon.trading.risk import Limits, RiskEngine
from daemon.trading.risk_checks import CHECK_NAMES, Rejection
from events.base import Event
from events.bus import Bus
from events.instruments import HALTED as INSTRUMENT_HALTED
from events.instruments import Instrument
from events.market import Quote, Trade
from events.orders import Fill
from events.state import BalanceChanged
from events.system import ACTIVE, HALTED, REDUCING, TradingState
from replay.clock import ReplayClock

T0 = 19_700 * DAY_NS + 12 * 3_600 * 10**9  # noon UTC
MS = 1_000_000

INSTRUMENTS = {
    ("sim", "BTCUSDT"): Instrument(venue="sim", symbol="BTCUSDT", base="BTC", quote="USDT",
                                   tick_size=D("0.01"), step_size=D("0.001"),
                                   min_notional=D(5), min_qty=D("0.002"), max_qty=D(9000)),
    ("sim", "ETHUSDT"): Instrument(venue="sim", symbol="ETHUSDT", base="ETH", quote="USDT",
                                   tick_size=D("0.01"), step_size=D("0.001")),
    ("sim", "OLDUSDT"): Instrument(venue="sim", symbol="OLDUSDT", base="OLD", quote="USDT",
                                   tick_size=D("0.01"), step_size=D("0.001"),
                                   status=INSTRUMENT_HALTED),
}

ACCOUNT: dict[str, Any] = dict(
    max_order_qty=10.0, max_order_notional=250_000.0, max_position_qty=20.0,
    daily_loss_limit=1000.0, max_orders_per_s=100, price_band_pct=5.0)


class Clock:
    """A replay clock driven by assigning `now` (timers due by then fire)."""

    def __init__(self) -> None:
        self._clock = ReplayClock(start_ns=T0)

    @property
    def now(self) -> int:
        return self._clock.now_ns()

    @now.setter
    def now(self, ts: int) -> None:
        self._clock.advance_to(ts)

    def __call__(self) -> int:
        return self._clock.now_ns()

    def now_ns(self) -> int:
        return self._clock.now_ns()

    def set_timer(self, *args: Any, **kwargs: Any) -> Any:
        return self._clock.set_timer(*args, **kwargs)


@dataclass
class OpenOrder:
    """An open order as the OMS shows it (implements `OrderView`)."""

    client_order_id: str
    strategy_id: str
    side: str
    qty: D
    price: D | None = None
    order_type: str = LIMIT
    venue: str = "sim"
    symbol: str = "BTCUSDT"
    filled_qty: D = D(0)
    trigger_price: D | None = None
    state: str = "accepted"


@dataclass
class Env:
    risk_kw: dict[str, Any] = field(default_factory=dict)
    s1: StrategyRiskConfig | None = None
    allow_short: bool = False

    def __post_init__(self) -> None:
        self.clock = Clock()
        self.bus = Bus()
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.portfolio = Portfolio(self.bus.publish, self.clock, INSTRUMENTS)
        self.risk = RiskEngine(
            RiskConfig(**{**ACCOUNT, **self.risk_kw}), {"s1": self.s1, "s2": None},
            INSTRUMENTS, self.portfolio, self.clock, self.bus.publish,
            venues=[VenueConfig(name="sim", taker_fee_bps=10.0, allow_short=self.allow_short)])
        # the kernel's order: risk before the portfolio
        self.risk.subscribe(self.bus)
        self.risk.schedule(self.clock)  # type: ignore[arg-type]
        self.portfolio.subscribe(self.bus)
        self.balance("USDT", "1000000")
        self.balance("BTC", "100")
        self.trade(100.0, advance=False)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def balance(self, currency: str, total: str, free: str | None = None) -> None:
        now = self.clock.now
        self.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="sim", currency=currency,
                                    total=D(total), free=D(free or total)))

    def trade(self, price: float, symbol: str = "BTCUSDT", advance: bool = True) -> None:
        if advance:  # a second of market time per trade: risk re-values at most once a second
            self.clock.now += 1_000_000_000
        now = self.clock.now
        self.publish(Trade(ts_event=now, ts_recv=now, venue="sim", symbol=symbol, price=price,
                           size=1.0))

    def fill(self, side: str, qty: str, price: str, strategy: str = "s1") -> None:
        now = self.clock.now
        self.publish(Fill(ts_event=now, ts_recv=now, venue="sim", symbol="BTCUSDT",
                          strategy_id=strategy, client_order_id=f"{strategy}-0", trade_id="t",
                          side=side, qty=D(qty), price=D(price), fee=D(0), fee_currency="USDT",
                          liquidity="TAKER"))

    def check(self, strategy: str = "s1", open_orders: list[OpenOrder] | None = None,
              **order: Any) -> Rejection | None:
        return self.risk.check(strategy, request(**order), open_orders or [])

    def states(self) -> list[tuple[str, str]]:
        return [(e.state, e.reason) for e in self.events if isinstance(e, TradingState)]


def request(**kw: Any) -> OrderRequest:
    fields: dict[str, Any] = dict(venue="sim", symbol="BTCUSDT", side=BUY, qty=D(1),
                                  order_type=LIMIT, price=D(100))
    fields.update({k: D(v) if isinstance(v, str) and k in ("qty", "price", "trigger_price",
                                                            "trailing_offset") else v
                   for k, v in kw.items()})
    return OrderRequest(**fields)


def refused(rejection: Rejection | None, check: str, reason: str) -> None:
    assert rejection is not None, f"expected {check} to refuse"
    assert rejection.check == check, rejection
    assert reason in rejection.reason, rejection.reason
    assert "\n" not in rejection.reason


@pytest.fixture
def env() -> Env:
    return Env()


def test_a_plain_order_passes(env: Env) -> None:
    assert env.check() is None
    assert env.check(side=SELL, order_type=MARKET, price=None) is None


def test_instrument_tradable(env: Env) -> None:
    refused(env.check(symbol="DOGEUSDT"), "instrument_tradable", "unknown instrument sim:DOGEUSDT")
    refused(env.check(symbol="OLDUSDT"), "instrument_tradable",
            "sim:OLDUSDT is not tradable (status HALT)")


def test_qty_grid(env: Env) -> None:
    assert env.check(qty="0.05") is None  # on the step, >= min_qty, notional 5
    refused(env.check(qty="0.0505"), "qty_grid", "qty 0.0505 not a multiple of step_size 0.001")
    refused(env.check(qty="0"), "qty_grid", "qty 0 <= 0")
    refused(env.check(qty="0.001", price="100"), "qty_grid", "qty 0.001 < min_qty 0.002")


def test_price_grid(env: Env) -> None:
    assert env.check(price="100.01") is None
    refused(env.check(price="100.005"), "price_grid",
            "price 100.005 not a positive multiple of tick_size 0.01")
    refused(env.check(price=None), "price_grid", "LIMIT order without a price")
    refused(env.check(order_type=STOP_MARKET, price=None), "price_grid",
            "STOP_MARKET order without a trigger_price")
    refused(env.check(order_type=STOP_LIMIT, price="101", trigger_price="100.999"),
            "price_grid", "trigger_price 100.999 not a positive multiple")
    assert env.check(order_type=STOP_LIMIT, price="101", trigger_price="100.99") is None


def test_min_notional(env: Env) -> None:
    assert env.check(qty="0.05", price="100") is None
    refused(env.check(qty="0.049", price="100"), "min_notional",
            "notional 0.049 x 100 = 4.9 < min_notional 5")
    # a market order is valued at the last price
    refused(env.check(qty="0.049", order_type=MARKET, price=None), "min_notional",
            "= 4.9 < min_notional 5")


def test_max_order_qty(env: Env) -> None:
    assert env.check(qty="10") is None
    refused(env.check(qty="10.001"), "max_order_qty", "qty 10.001 > max_order_qty 10")


def test_max_order_notional() -> None:
    env = Env({"max_order_notional": 1000.0})
    assert env.check(qty="10", price="100") is None
    refused(env.check(qty="10", price="100.01"), "max_order_notional",
            "notional 10 x 100.01 = 1000.1 > max_order_notional 1000")


def test_max_position_qty_per_strategy_and_account(env: Env) -> None:
    env.fill(BUY, "15", "100")
    resting = [OpenOrder("s1-1", "s1", BUY, D(2), D(99))]
    assert env.check(qty="3", open_orders=resting) is None  # 15 + 2 + 3 = 20
    refused(env.check(qty="3.001", open_orders=resting), "max_position_qty",
            "account position 15 -> 20.001 (incl. 2 in open orders) exceeds max_position_qty 20")
    # account-wide: s2 is small, but the account is at its limit
    env.fill(BUY, "4", "100", strategy="s2")
    refused(env.check("s2", qty="1.001"), "max_position_qty", "account position 19 -> 20.001")
    # an order that reduces an oversized position always passes
    env.fill(BUY, "6", "100")
    assert env.check(side=SELL, qty="1") is None
    # short side too
    env2 = Env()
    env2.fill(SELL, "12", "100")
    refused(env2.check(side=SELL, qty="9"), "max_position_qty", "-12 -> -21")


def test_strategy_limits_tighten_the_account_limits() -> None:
    env = Env(s1=StrategyRiskConfig(max_order_qty=2.0, max_position_qty=5.0,
                                    max_order_notional=100_000_000.0))
    assert env.risk.limits("s1").max_order_qty == 2
    assert env.risk.limits("s1").max_order_notional == 250_000  # the account's is smaller
    assert env.risk.limits("s2") == env.risk.account_limits
    assert env.check(qty="2") is None
    refused(env.check(qty="2.001"), "max_order_qty", "qty 2.001 > max_order_qty 2")
    assert env.check("s2", qty="10") is None  # s2 has only the account's limits
    env.fill(BUY, "4", "100")
    refused(env.check(qty="1.5"), "max_position_qty",
            "strategy s1 position 4 -> 5.5 (incl. 0 in open orders) exceeds max_position_qty 5")
    # a looser strategy limit does not loosen the account's
    loose = Env(s1=StrategyRiskConfig(max_order_qty=50.0))
    refused(loose.check(qty="11"), "max_order_qty", "qty 11 > max_order_qty 10")


def test_limits_from_config() -> None:
    limits = Limits.from_config(RiskConfig(**ACCOUNT, max_concentration_pct=30.0),
                                StrategyRiskConfig(price_band_pct=1.5, max_position_notional=5.0))
    assert (limits.price_band_pct, limits.max_position_notional, limits.max_concentration_pct,
            limits.max_order_qty) == (D("1.5"), D(5), D(30), D(10))


def test_max_position_notional() -> None:
    env = Env({"max_position_notional": 1500.0})
    env.fill(BUY, "10", "100")
    assert env.check(qty="5", price="100") is None
    refused(env.check(qty="5.001", price="100"), "max_position_notional",
            "account position 10 -> 15.001: notional 1500.1 > max_position_notional 1500")


def test_concentration() -> None:
    env = Env({"max_concentration_pct": 10.0})
    env.balance("USDT", "9000")
    env.balance("BTC", "10")  # equity 9000 + 10 x 100 = 10000
    assert env.portfolio.equity("sim") == 10_000
    assert env.check(qty="10", price="100") is None  # 1000 = 10%
    refused(env.check(qty="10", price="100.01"), "concentration",
            "account position 10 x 100.01 = 1000.1 is 10.00% of equity 10000 "
            "> max_concentration_pct 10")
    env.balance("USDT", "0")
    env.balance("BTC", "0")
    refused(env.check(qty="1"), "concentration", "sim equity 0 <= 0")


def test_available_balance_buy_with_fee_and_reservations() -> None:
    env = Env()
    env.balance("USDT", "1000")
    assert env.check(qty="9.99", price="100") is None  # 999 + 0.999 fee
    refused(env.check(qty="10", price="100"), "available_balance",
            "BUY needs 1001 USDT (incl. taker fee), available 1000")
    resting = [OpenOrder("s2-1", "s2", BUY, D(6), D(100), filled_qty=D(1))]  # 5 open
    assert env.check(qty="4.99", price="100", open_orders=resting) is None
    refused(env.check(qty="5", price="100", open_orders=resting), "available_balance",
            "BUY needs 500.5 USDT (incl. taker fee), available 499.5 (free 1000, total 1000, "
            "500.5 reserved by open orders)")
    # funds the venue reports as locked are not available
    env.balance("USDT", "1000", free="400")
    refused(env.check(qty="4", price="100"), "available_balance", "available 400")


def test_available_balance_sell_needs_the_base_unless_shorting() -> None:
    env = Env()
    env.balance("BTC", "2")
    assert env.check(side=SELL, qty="2") is None
    refused(env.check(side=SELL, qty="2.001"), "available_balance",
            "SELL needs 2.001 BTC (incl. taker fee), available 2")
    resting = [OpenOrder("s1-1", "s1", SELL, D(1), D(120))]
    refused(env.check(side=SELL, qty="1.5", open_orders=resting), "available_balance",
            "available 1 (free 2, total 2, 1 reserved by open orders)")
    short = Env(allow_short=True)
    short.balance("BTC", "0")
    assert short.check(side=SELL, qty="5") is None


def test_price_band(env: Env) -> None:
    assert env.check(price="105") is None  # exactly 5% from 100
    assert env.check(price="95", side=SELL) is None
    refused(env.check(price="105.01"), "price_band",
            "price 105.01 is 5.01% from last price 100 > price_band_pct 5")
    refused(env.check(order_type=STOP_MARKET, price=None, trigger_price="94.99"), "price_band",
            "trigger_price 94.99 is 5.01% from last price 100")
    assert env.check(order_type=MARKET, price=None) is None  # valued at the last price
    # the mid of the book counts as the last price too
    env.publish(Quote(ts_event=T0, ts_recv=T0, venue="sim", symbol="BTCUSDT", bid=119.9,
                      ask=120.1, bid_size=1, ask_size=1))
    assert env.check(price="125.99", qty="0.5") is None
    refused(env.check(symbol="ETHUSDT"), "price_band",
            "no last price for sim:ETHUSDT to check the price band against")


def test_self_trade(env: Env) -> None:
    resting = [OpenOrder("s2-1", "s2", SELL, D(1), D(101)),
               OpenOrder("s2-2", "s2", SELL, D(1), None, order_type=STOP_MARKET,
                         trigger_price=D(99)),
               OpenOrder("s2-3", "s2", SELL, D(1), D(90), symbol="ETHUSDT")]
    assert env.check(price="100.99", open_orders=resting) is None
    refused(env.check(price="101", open_orders=resting), "self_trade",
            "BUY at 101 would cross own resting SELL s2-1 at 101 (strategy s2)")
    refused(env.check(order_type=MARKET, price=None, open_orders=resting), "self_trade",
            "BUY would cross own resting SELL s2-1")
    buy_side = [OpenOrder("s1-1", "s1", BUY, D(1), D(99))]
    refused(env.check(side=SELL, price="98.5", open_orders=buy_side), "self_trade", "s1-1 at 99")
    assert env.check(side=SELL, price="99.01", open_orders=buy_side) is None
    off = Env({"self_trade_prevention": False})
    assert off.check(price="101", open_orders=resting) is None


def test_order_rate_sliding_window() -> None:
    env = Env({"max_orders_per_s": 5}, s1=StrategyRiskConfig(max_orders_per_s=3))
    for i in range(3):
        env.clock.now = T0 + i * 100 * MS
        assert env.check() is None
    env.clock.now = T0 + 300 * MS
    refused(env.check(), "order_rate", "strategy s1: 3 orders in the last 1s, max_orders_per_s 3")
    refused(env.check(qty="0"), "qty_grid", "qty 0")  # refused orders use no rate budget
    assert env.check("s2") is None
    assert env.check("s2") is None
    refused(env.check("s2"), "order_rate", "account: 5 orders in the last 1s, max_orders_per_s 5")
    # the window slides: at T0 + 1 s the order from T0 has left it
    env.clock.now = T0 + 1000 * MS
    assert env.check() is None
    refused(env.check(), "order_rate", "account: 5 orders")


def test_order_rate_below_one_per_second() -> None:
    env = Env({"max_orders_per_s": 0.5})
    assert env.check() is None
    env.clock.now = T0 + 1999 * MS
    refused(env.check(), "order_rate", "1 orders in the last 2s, max_orders_per_s 0.5")
    env.clock.now = T0 + 2000 * MS
    assert env.check() is None


def test_daily_loss_reducing_then_halted_then_resume() -> None:
    env = Env({"max_position_qty": 100.0})
    env.fill(BUY, "20", "100")
    env.trade(60.0)  # loss 800 < 1000
    env.trade(50.0)  # risk sees each mark one event late; this evaluates the 60
    assert env.risk.state == ACTIVE
    assert env.risk.evaluate() == REDUCING  # loss 1000 >= 1000
    assert env.states() == [(REDUCING, "daily loss 1000 >= daily_loss_limit 1000")]

    refused(env.check(qty="1", price="50"), "daily_loss_limit",
            "trading reducing (daily loss 1000 >= daily_loss_limit 1000): only "
            "position-reducing orders pass")
    assert env.check(side=SELL, qty="5", price="50") is None  # reduces the long
    # with its open sells, this one would take the strategy short: not reducing
    resting = [OpenOrder("s1-7", "s1", SELL, D(10), D(52))]
    refused(env.check(side=SELL, qty="10.001", price="50", open_orders=resting),
            "daily_loss_limit", "trading reducing")
    # a reduce-only order only has to be on the reducing side
    assert env.check(side=SELL, qty="10", price="50", reduce_only=True,
                     open_orders=resting) is None
    refused(env.check("s2", side=SELL, qty="1", price="50", reduce_only=True),
            "daily_loss_limit", "trading reducing")  # s2 has no position to reduce

    env.trade(25.0)
    env.trade(25.0)  # loss 1500 = 1.5 x 1000
    assert env.risk.state == HALTED
    assert env.states()[-1] == (HALTED, "daily loss 1500 >= 1.5 x daily_loss_limit 1000")
    refused(env.check(qty="1", price="25"), "daily_loss_limit", "trading halted")
    assert env.check(side=SELL, qty="1", price="25") is None

    assert env.risk.resume() == HALTED  # the day's loss still demands it: no event
    assert len(env.states()) == 2
    env.trade(90.0)
    env.trade(90.0)  # loss 200: no automatic de-escalation
    assert env.risk.state == HALTED
    assert env.risk.resume("operator: loss recovered") == ACTIVE
    assert env.states()[-1] == (ACTIVE, "operator: loss recovered")
    assert env.check(qty="1", price="90") is None


def test_reducing_resets_on_the_next_utc_day() -> None:
    env = Env({"max_position_qty": 100.0})
    env.fill(BUY, "20", "100")
    env.trade(50.0)
    assert env.risk.evaluate() == REDUCING
    env.clock.now = (T0 // DAY_NS + 1) * DAY_NS
    assert env.check(qty="1", price="50") is None  # a new day, a new loss budget
    assert env.states()[-1] == (ACTIVE, "new UTC day; daily loss 0 < daily_loss_limit 1000")


def test_strategy_daily_loss_limit() -> None:
    env = Env(s1=StrategyRiskConfig(daily_loss_limit=100.0))
    env.fill(BUY, "10", "100")
    env.trade(85.0)
    refused(env.check(qty="1", price="85"), "daily_loss_limit",
            "strategy s1 daily loss 150 >= daily_loss_limit 100: only position-reducing "
            "orders pass")
    assert env.check(side=SELL, qty="1", price="85") is None
    assert env.check("s2", qty="1", price="85") is None
    assert env.risk.state == ACTIVE  # the account is within its limit


def test_halt_and_resume_kill_switch(env: Env) -> None:
    env.fill(BUY, "2", "100")
    env.risk.halt("kill switch: operator")
    env.risk.halt("again")  # already halted: one event
    assert env.states() == [(HALTED, "kill switch: operator")]
    refused(env.check(), "daily_loss_limit", "trading halted (kill switch: operator)")
    assert env.check(side=SELL, qty="2") is None  # flattening is allowed
    assert env.risk.resume() == ACTIVE
    assert env.states()[-1] == (ACTIVE, "resumed by operator")
    assert env.check() is None


def test_trading_state_is_recovered_by_folding_the_journal(env: Env) -> None:
    env.risk.halt("kill switch")
    journal = list(env.events)
    fresh = Env()
    fresh.risk.recover(journal)
    assert (fresh.risk.state, fresh.risk.reason) == (HALTED, "kill switch")


def test_malformed_request_raises(env: Env) -> None:
    with pytest.raises(ValueError, match="malformed order"):
        env.check(side="HOLD")


def test_every_check_is_named_once() -> None:
    assert sorted(CHECK_NAMES) == sorted({
        "instrument_tradable", "price_grid", "qty_grid", "min_notional", "max_order_qty",
        "max_order_notional", "max_position_qty", "max_position_notional", "concentration",
        "available_balance", "daily_loss_limit", "order_rate", "price_band", "self_trade",
        "available_margin", "leverage", "margin_usage", "liquidation_distance"})


def test_market_events_within_a_second_are_not_revalued() -> None:
    env = Env({"max_position_qty": 100.0})
    env.fill(BUY, "20", "100")
    env.trade(60.0)
    env.trade(40.0)  # loss 1200 is marked ...
    ts = env.clock.now
    env.publish(Trade(ts_event=ts + 1, ts_recv=ts + 1, venue="sim", symbol="BTCUSDT",
                      price=40.0, size=1.0))
    assert env.risk.state == ACTIVE  # ... but the next re-valuation is due a second later
    env.trade(40.0)
    assert env.risk.state == REDUCING
    env.risk.resume()
    assert env.check(qty="1", price="40") is not None  # an order always sees the current loss
