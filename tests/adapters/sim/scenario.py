"""Seeded random sessions on a simulated venue: market data for two symbols
(trades and quotes on a random walk, across a midnight) and a strategy that
reads the venue's open orders and sends the requests an OMS would (limits that
rest or cross, market orders, stop-market and marketable stop-limit orders,
GTC/GTD/DAY/IOC/FOK, post-only and reduce-only, cancels, amends).

`record(seed)` runs one session and returns its `Tape`: the steps fed to the
venue (market events and requests, in order) and everything the bus carried,
with the venue's state and the length of the event list before each step, so
a test can cut the session anywhere and compare a venue restored from the
events before the cut with the original.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from adapters.sim import SimVenue
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import Quote, Trade
from events.orders import (
    AmendOrder,
    AmendRejected,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from events.state import BalanceChanged

D = Decimal
VENUE = "paper"
S = 1_000_000_000
DAY_NS = 86_400 * S
BTC = Instrument(venue=VENUE, symbol="BTCUSDT", base="BTC", quote="USDT",
                 tick_size=D("0.01"), step_size=D("0.00001"))
BNB = Instrument(venue=VENUE, symbol="BNBUSDT", base="BNB", quote="USDT",
                 tick_size=D("0.01"), step_size=D("0.001"))
REQUESTS = (OrderSubmitted, CancelOrder, AmendOrder)
# what recovery hands to `SimVenue.restore`
JOURNALED = (*REQUESTS, OrderAccepted, OrderRejected, OrderCanceled, CancelRejected,
             OrderExpired, OrderAmended, AmendRejected, Fill, BalanceChanged)
MARKET = (Trade, Quote)


def _crash(event: Event, handler: object, exc: BaseException) -> None:
    raise exc


def venue_options(rng: random.Random) -> dict[str, Any]:
    """SimVenue keyword arguments for one session."""
    slip = rng.choice(["volume", "volume", "none", "fixed_bps"])
    return {
        "fill_model": rng.choice(["next", "aggressive"]),
        "slippage_model": slip,
        "slippage_bps": rng.choice([0.0, 5.0, 20.0]),
        "volume_limit_pct": rng.choice([10.0, 30.0, 100.0]),
        "maker_fee_bps": rng.choice([-1.0, 0.0, 2.0]),
        "taker_fee_bps": rng.choice([4.0, 10.0]),
        "latency_ms": rng.choice([0.0, 0.0, 1500.0, 40_000.0]),
        "allow_short": rng.random() < 0.2,
        "fee_asset": rng.choice(["quote", "received", "BNB"]),
        "balances": {"USDT": D(20_000), "BTC": D(3),
                     "BNB": rng.choice([D(0), D("0.0003"), D(2)])},
    }


class Session:
    """A venue on its own bus whose clock follows the market events."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.bus = Bus(on_error=_crash)
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.clock = 0
        self.venue = SimVenue(VENUE, [BTC, BNB], self.bus.publish, lambda: self.clock,
                              **options)
        self.venue.subscribe(self.bus)

    def feed(self, ev: Event) -> None:
        """Publish a copy of `ev` (the bus stamps seq on what it publishes)."""
        if isinstance(ev, MARKET):
            self.clock = ev.ts_event
        self.bus.publish(msgspec.structs.replace(ev))


@dataclass
class Tape:
    seed: int
    options: dict[str, Any]
    steps: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # all the bus carried
    marks: list[int] = field(default_factory=list)  # len(events) before each step
    states: list[dict[str, Any]] = field(default_factory=list)  # venue state before each step
    problems: list[list[str]] = field(default_factory=list)


class _Strategy:
    def __init__(self, rng: random.Random, session: Session) -> None:
        self.rng = rng
        self.s = session
        self.n = 0
        self.issued: list[str] = []
        self.types: dict[str, str] = {}

    def act(self, mid: dict[str, Decimal], ts: int) -> list[Event]:
        rng = self.rng
        out: list[Event] = []
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
            kind = rng.random()
            open_ids = self.s.venue.open_orders()
            if kind < 0.15 and self.issued:
                cid = rng.choice(open_ids) if open_ids and rng.random() < 0.8 else rng.choice(
                    self.issued)
                out.append(CancelOrder(ts_event=ts, ts_recv=ts, venue=VENUE,
                                       symbol=self._symbol(cid), strategy_id="s",
                                       client_order_id=cid,
                                       reason=rng.choice(["", "requested", "strategy"])))
            elif kind < 0.27 and open_ids:
                cid = rng.choice(open_ids)
                out.append(self._amend(cid, mid, ts))
            else:
                out.append(self._submit(mid, ts))
        return out

    def _symbol(self, cid: str) -> str:
        return "BNBUSDT" if cid.startswith("b") else "BTCUSDT"

    def _amend(self, cid: str, mid: dict[str, Decimal], ts: int) -> AmendOrder:
        rng = self.rng
        inst = BNB if cid.startswith("b") else BTC
        qty = price = trigger = None
        otype = self.types[cid]
        move = mid[inst.symbol] + inst.tick_size * rng.randint(-8, 8)
        if rng.random() < 0.5 or otype in ("MARKET", "STOP_LIMIT"):
            # a stop-limit keeps its marketable terms (see `_submit`)
            qty = inst.step_size * rng.randint(1, 40_000 if inst is BTC else 400)
        elif otype == "LIMIT":
            price = move
        else:
            trigger = move
        return AmendOrder(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=inst.symbol,
                          strategy_id="s", client_order_id=cid, qty=qty, price=price,
                          trigger_price=trigger)

    def _submit(self, mid: dict[str, Decimal], ts: int) -> OrderSubmitted:
        rng = self.rng
        inst = BNB if rng.random() < 0.15 else BTC
        self.n += 1
        cid = f"{'b' if inst is BNB else 's'}-{self.n}"
        self.issued.append(cid)
        side = rng.choice(["BUY", "SELL"])
        sign = 1 if side == "BUY" else -1
        qty = inst.step_size * rng.randint(1, 40_000 if inst is BTC else 400)
        tick = inst.tick_size
        m = mid[inst.symbol]
        otype = rng.choice(["LIMIT", "LIMIT", "LIMIT", "MARKET", "STOP_MARKET", "STOP_LIMIT"])
        self.types[cid] = otype
        price = trigger = None
        tif, expire = "GTC", 0
        if otype == "LIMIT":
            price = m - sign * tick * rng.randint(-4, 12)  # negative: crosses
            tif = rng.choice(["GTC", "GTC", "GTD", "DAY", "IOC", "FOK"])
            if tif == "GTD":
                expire = ts + rng.randint(1, 3_600) * S
        elif otype in ("STOP_MARKET", "STOP_LIMIT"):
            trigger = m + sign * tick * rng.randint(1, 15)
            if otype == "STOP_LIMIT":
                # marketable: it fills when it triggers (a triggered stop-limit
                # that rests unfilled is re-learnt from the market after a restart)
                price = trigger + sign * tick * 1_000
        return OrderSubmitted(
            ts_event=ts, ts_recv=ts, venue=VENUE, symbol=inst.symbol, strategy_id="s",
            client_order_id=cid, side=side, order_type=otype, qty=qty, price=price,
            trigger_price=trigger, time_in_force=tif, expire_ts=expire,
            post_only=otype == "LIMIT" and tif == "GTC" and rng.random() < 0.2,
            reduce_only=rng.random() < 0.1)


def _market(rng: random.Random, mid: dict[str, Decimal], ts: int) -> Event:
    inst = BNB if rng.random() < 0.25 else BTC
    tick = inst.tick_size
    mid[inst.symbol] = max(mid[inst.symbol] + tick * rng.randint(-4, 4), tick * 100)
    m = mid[inst.symbol]
    size = rng.choice([0.05, 0.3, 1.0, 2.5])
    if rng.random() < 0.5:
        half = tick * rng.randint(1, 3)
        return Quote(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=inst.symbol,
                     bid=float(m - half), ask=float(m + half), bid_size=size,
                     ask_size=rng.choice([0.05, 0.3, 1.0, 2.5]))
    return Trade(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=inst.symbol,
                 price=float(m + tick * rng.randint(-2, 2)), size=size)


def record(seed: int, n_market: int = 160) -> Tape:
    """One seeded session (see the module docstring)."""
    rng = random.Random(seed)
    options = venue_options(rng)
    tape = Tape(seed, options)
    s = Session(options)
    s.venue.start()
    strategy = _Strategy(rng, s)
    mid = {"BTCUSDT": D("100.00"), "BNBUSDT": D("300.00")}
    ts = 20_000 * DAY_NS - rng.randint(60, 3_600) * S  # the session crosses a midnight

    def step(ev: Event) -> None:
        tape.steps.append(ev)
        tape.marks.append(len(s.events))
        tape.states.append(s.venue.state())
        tape.problems.append(s.venue.invariant_violations())
        s.feed(ev)

    for _ in range(n_market):
        ts += rng.choice([1, 2, 5, 30, 120]) * S
        step(_market(rng, mid, ts))
        for req in strategy.act(mid, ts):
            step(req)
    tape.marks.append(len(s.events))
    tape.states.append(s.venue.state())
    tape.problems.append(s.venue.invariant_violations())
    tape.events = s.events
    return tape


def answers(events: list[Event]) -> list[tuple[Any, ...]]:
    """What a venue published (answers, fills, balances) as comparable tuples,
    without the bus's seq."""
    out = []
    for ev in events:
        if isinstance(ev, (*MARKET, *REQUESTS)):
            continue
        fields = msgspec.structs.asdict(ev)
        fields.pop("seq", None)
        out.append((type(ev).__name__, tuple(sorted(fields.items()))))
    return out


def folded_positions(events: list[Event]) -> dict[str, Decimal]:
    """Net position per symbol from the fills, as the portfolio folds it: the
    base actually received (a fee paid in the base is not held)."""
    base = {BTC.symbol: BTC.base, BNB.symbol: BNB.base}
    net: dict[str, Decimal] = {}
    for ev in events:
        if isinstance(ev, Fill):
            fee = ev.fee if ev.fee_currency == base[ev.symbol] else D(0)
            qty = ev.qty - fee if ev.side == "BUY" else -(ev.qty + fee)
            net[ev.symbol] = net.get(ev.symbol, D(0)) + qty
    return net
