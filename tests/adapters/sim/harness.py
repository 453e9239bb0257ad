"""A simulated venue on a real `events.bus.Bus`, a run clock that follows the
market events, and short-hands to publish market data and order requests the
way the OMS and the feeds do."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.sim import SimVenue
from events.base import Event
from events.bus import Bus
from events.instruments import Instrument
from events.market import Bar, BookDelta, BookSnapshot, Quote, Trade
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
VENUE = "sim"
SYMBOL = "BTCUSDT"
MS = 1_000_000
# what recovery hands to `SimVenue.restore`
JOURNALED = (OrderSubmitted, CancelOrder, AmendOrder, OrderAccepted, OrderRejected,
             OrderCanceled, CancelRejected, OrderExpired, OrderAmended, AmendRejected, Fill,
             BalanceChanged)
INST = Instrument(venue=VENUE, symbol=SYMBOL, base="BTC", quote="USDT",
                  tick_size=D("0.01"), step_size=D("0.00001"))


def _crash(event: Event, handler: object, exc: BaseException) -> None:
    # the bus reports a handler's failure and carries on; a test must not
    raise exc


class Sim:
    """`events` holds everything published on the bus, in seq order. With
    `restart_from` (a Sim that ran before), the venue is restored from that
    Sim's journaled events and net positions before it starts, as recovery
    does at a restart."""

    def __init__(self, *, balances: dict[str, Decimal] | None = None,
                 instruments: list[Instrument] | None = None,
                 restart_from: Sim | None = None, **venue_kw: Any) -> None:
        self.bus = Bus(on_error=_crash)
        self.events: list[Event] = []
        self.bus.subscribe_all(self.events.append)
        self.clock = 0
        if balances is None:
            balances = {"USDT": D(1_000_000), "BTC": D(10)}
        self.venue = SimVenue(VENUE, instruments or [INST], self.bus.publish,
                              lambda: self.clock, balances=balances, **venue_kw)
        self.venue.subscribe(self.bus)
        if restart_from is not None:
            journal = [e for e in restart_from.events if isinstance(e, JOURNALED)]
            self.clock = restart_from.clock
            self.venue.restore(journal, {s: restart_from.venue.position(s)
                                         for s in (SYMBOL, *(i.symbol for i in instruments or []))})
            assert not self.events, "restore publishes nothing"
        self.venue.start()
        self._n = restart_from._n if restart_from is not None else 0

    # -- market data -------------------------------------------------------

    def _market(self, ev: Event) -> None:
        self.clock = ev.ts_event
        self.bus.publish(ev)

    def trade(self, ts: int, price: float, size: float = 1.0, symbol: str = SYMBOL,
              venue: str = VENUE) -> None:
        self._market(Trade(ts_event=ts, ts_recv=ts, venue=venue, symbol=symbol,
                           price=price, size=size))

    def quote(self, ts: int, bid: float, ask: float, bid_size: float = 1.0,
              ask_size: float = 1.0) -> None:
        self._market(Quote(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, bid=bid,
                           ask=ask, bid_size=bid_size, ask_size=ask_size))

    def bar(self, ts: int, o: float, h: float, lo: float, c: float, v: float = 10.0) -> None:
        self._market(Bar(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, interval="1m",
                         ts_open=ts - 60_000 * MS, open=o, high=h, low=lo, close=c, volume=v))

    def book(self, ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
             snapshot: bool = False) -> None:
        cls = BookSnapshot if snapshot else BookDelta
        self._market(cls(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL,
                         bid_prices=[p for p, _ in bids], bid_sizes=[s for _, s in bids],
                         ask_prices=[p for p, _ in asks], ask_sizes=[s for _, s in asks]))

    # -- requests (as the OMS publishes them) --------------------------------

    def submit(self, ts: int, side: str, order_type: str, qty: str, *,
               price: str | None = None, trigger: str | None = None,
               offset: str | None = None, cid: str | None = None, **kw: Any) -> str:
        self._n += 1
        cid = cid or f"s-{self._n}"
        self.bus.publish(OrderSubmitted(
            ts_event=ts, ts_recv=ts, venue=kw.pop("venue", VENUE),
            symbol=kw.pop("symbol", SYMBOL), strategy_id=kw.pop("strategy", "s"),
            client_order_id=cid, side=side,
            order_type=order_type, qty=D(qty), price=None if price is None else D(price),
            trigger_price=None if trigger is None else D(trigger),
            trailing_offset=None if offset is None else D(offset), **kw))
        return cid

    def cancel(self, ts: int, cid: str, reason: str = "", symbol: str = SYMBOL) -> None:
        self.bus.publish(CancelOrder(ts_event=ts, ts_recv=ts, venue=VENUE, symbol=symbol,
                                     strategy_id="s", client_order_id=cid, reason=reason))

    def amend(self, ts: int, cid: str, *, qty: str | None = None, price: str | None = None,
              trigger: str | None = None) -> None:
        self.bus.publish(AmendOrder(
            ts_event=ts, ts_recv=ts, venue=VENUE, symbol=SYMBOL, strategy_id="s",
            client_order_id=cid, qty=None if qty is None else D(qty),
            price=None if price is None else D(price),
            trigger_price=None if trigger is None else D(trigger)))

    # -- what the venue said -------------------------------------------------

    def of(self, cls: type, cid: str | None = None) -> list[Any]:
        return [e for e in self.events if type(e) is cls
                and (cid is None or getattr(e, "client_order_id", None) == cid)]

    def fills(self, cid: str | None = None) -> list[tuple[int, str, Decimal, Decimal, str]]:
        """(ts_event, side, qty, price, liquidity) of each Fill."""
        return [(f.ts_event, f.side, f.qty, f.price, f.liquidity) for f in self.of(Fill, cid)]

    def order_events(self, cid: str) -> list[str]:
        """The venue's answers about `cid`, by type name, in order."""
        return [type(e).__name__ for e in self.events
                if getattr(e, "client_order_id", None) == cid
                and type(e) not in (OrderSubmitted, CancelOrder, AmendOrder)]

    def balances(self) -> list[BalanceChanged]:
        return self.of(BalanceChanged)
