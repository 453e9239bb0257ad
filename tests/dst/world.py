"""An adversarial but legal venue for the simulation: an exchange and its adapter.

`Exchange` is a small spot exchange that keeps its state across our restarts (as a real
one does): orders by client order id, balances with locks, matching against a seeded
random-walk price, fees in the quote, the base or a third asset (BNB). It never breaks
its own rules: what it reports are facts, in the order they happened.

`ChaosAdapter` is the connection to it, the part that loses its memory when we crash.
It turns our `OrderSubmitted`/`CancelOrder` into exchange requests and the exchange's
facts into our events, and delivers them as a real network and a real venue do:
reordered (each report travels with its own random delay: a fill before its ack, a fill
after the cancel ack), duplicated (the REST answer and the stream both report an ack;
a stream message sent twice), late, and sometimes not at all (an unknown outcome: the
placement's answer is lost, the order may or may not have reached the exchange, and a
look-up that comes too early says "not found" while the order arrives after it).
Balance snapshots keep their relative order (adapters order them by event time).
After a restart it reconciles: every order we hold open is looked up and what we have
not recorded is published (acks, fills not applied, ends), and a cancel we requested
that the exchange never answered is sent again.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import msgspec

from events.base import Event
from events.orders import (
    BUY,
    CancelOrder,
    CancelRejected,
    Fill,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderSubmitted,
)
from events.state import BalanceChanged

ZERO = Decimal(0)
FEE_RATE = Decimal("0.001")
Q8 = Decimal("0.00000001")


@dataclass
class XOrder:
    cid: str
    strategy_id: str
    side: str
    kind: str  # MARKET | LIMIT | STOP_MARKET
    qty: Decimal
    price: Decimal | None
    trigger: Decimal | None
    filled: Decimal = ZERO
    state: str = "open"  # open | filled | canceled
    locked: Decimal = ZERO  # of the lock currency
    fills: list[Fill] = field(default_factory=list)
    triggered: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled


class Exchange:
    """One symbol (BTCUSDT) traded, BNB priced for fees; state survives our restarts."""

    def __init__(self, rng: random.Random, venue: str, fee_mode: str,
                 balances: dict[str, Decimal]) -> None:
        self.rng = rng
        self.venue = venue
        self.fee_mode = fee_mode  # quote | base | bnb | mixed
        self.total = dict(balances)
        self.locked = {c: ZERO for c in balances}
        self.orders: dict[str, XOrder] = {}
        self.price = Decimal(100)
        self.bnb = Decimal(300)
        self.trades = 0
        self.facts: list[Event] = []  # what happened, for the adapter to report

    # -- requests ------------------------------------------------------------------------

    def place(self, sub: OrderSubmitted, ts: int) -> Event:
        """Accept or reject an order; returns the answer (also a fact)."""
        if sub.client_order_id in self.orders:
            return self._reject(sub, ts, "duplicate client order id")
        ccy, need = self._lock_for(sub)
        if need > self.total.get(ccy, ZERO) - self.locked.get(ccy, ZERO):
            return self._reject(sub, ts, "insufficient balance")
        order = XOrder(sub.client_order_id, sub.strategy_id, sub.side, sub.order_type, sub.qty,
                       sub.price, sub.trigger_price, locked=need)
        self.locked[ccy] = self.locked.get(ccy, ZERO) + need
        self.orders[order.cid] = order
        ack = OrderAccepted(ts_event=ts, ts_recv=ts, venue=self.venue, symbol="BTCUSDT",
                            strategy_id=sub.strategy_id, client_order_id=sub.client_order_id,
                            venue_order_id=f"x{len(self.orders)}")
        self.facts.append(ack)
        self.facts.append(self._balance(ccy, ts))
        return ack

    def _lock_for(self, sub: Any) -> tuple[str, Decimal]:
        if sub.side == BUY:
            ref = sub.price if sub.price is not None else (sub.trigger_price or self.price)
            return "USDT", (sub.qty * max(ref, self.price) * Decimal("1.05")).quantize(Q8)
        return "BTC", sub.qty

    def _reject(self, sub: OrderSubmitted, ts: int, reason: str) -> Event:
        return OrderRejected(ts_event=ts, ts_recv=ts, venue=self.venue, symbol=sub.symbol,
                             strategy_id=sub.strategy_id, client_order_id=sub.client_order_id,
                             reason=reason, code="-2010")

    def cancel(self, req: CancelOrder, ts: int) -> Event:
        order = self.orders.get(req.client_order_id)
        if order is None or order.state != "open":
            why = "unknown order" if order is None else f"order {order.state}"
            return CancelRejected(ts_event=ts, ts_recv=ts, venue=self.venue, symbol=req.symbol,
                                  strategy_id=req.strategy_id,
                                  client_order_id=req.client_order_id, reason=why,
                                  code="-2011")
        self._close(order, "canceled", ts)
        return self.facts[-2]  # the OrderCanceled (the balance follows it)

    def _close(self, order: XOrder, state: str, ts: int) -> None:
        order.state = state
        ccy = "USDT" if order.side == BUY else "BTC"
        self.locked[ccy] -= order.locked
        order.locked = ZERO
        if state == "canceled":
            self.facts.append(OrderCanceled(ts_event=ts, ts_recv=ts, venue=self.venue,
                                            symbol="BTCUSDT", strategy_id=order.strategy_id,
                                            client_order_id=order.cid, reason="canceled"))
        self.facts.append(self._balance(ccy, ts))

    # -- the market ---------------------------------------------------------------------

    def move(self) -> Decimal:
        """One step of the random walk (ticks of 0.01, a small drift each way)."""
        ticks = self.rng.randint(-30, 30)
        self.price = max(Decimal("50"), self.price + Decimal(ticks) / 100)
        self.bnb = max(Decimal(100), self.bnb + Decimal(self.rng.randint(-10, 10)) / 10)
        return self.price

    def match(self, ts: int) -> None:
        for order in list(self.orders.values()):
            if order.state != "open":
                continue
            px = self.price
            if order.kind == "STOP_MARKET" and not order.triggered:
                assert order.trigger is not None
                hit = px >= order.trigger if order.side == BUY else px <= order.trigger
                if not hit:
                    continue
                order.triggered = True
            if order.kind == "LIMIT":
                assert order.price is not None
                crosses = px <= order.price if order.side == BUY else px >= order.price
                if not crosses:
                    continue
                px = order.price
            if self.rng.random() < 0.5:
                qty = order.remaining  # all of it, or a part on the step grid
            else:
                qty = (order.remaining * Decimal(self.rng.randint(1, 9)) / 10).quantize(
                    Decimal("0.001"), rounding=ROUND_DOWN)
                qty = qty or order.remaining
            self._fill(order, qty, px, ts)

    def _fill(self, order: XOrder, qty: Decimal, px: Decimal, ts: int) -> None:
        self.trades += 1
        notional = qty * px
        mode = self.fee_mode
        if mode == "mixed":
            mode = self.rng.choice(["quote", "base", "bnb"])
        if mode == "bnb" and self.total.get("BNB", ZERO) * self.bnb >= notional * FEE_RATE:
            fee, ccy = (notional * FEE_RATE / self.bnb).quantize(Q8), "BNB"
        elif mode == "base" and order.side == BUY:
            fee, ccy = (qty * FEE_RATE).quantize(Q8), "BTC"  # the asset received
        else:
            fee, ccy = (notional * FEE_RATE).quantize(Q8), "USDT"
        fill = Fill(ts_event=ts, ts_recv=ts, venue=self.venue, symbol="BTCUSDT",
                    strategy_id=order.strategy_id, client_order_id=order.cid,
                    trade_id=f"X{self.trades}", side=order.side, qty=qty, price=px, fee=fee,
                    fee_currency=ccy, liquidity="TAKER")
        order.filled += qty
        order.fills.append(fill)
        sign = 1 if order.side == BUY else -1
        self.total["BTC"] = self.total.get("BTC", ZERO) + sign * qty
        self.total["USDT"] = self.total.get("USDT", ZERO) - sign * notional
        self.total[ccy] = self.total.get(ccy, ZERO) - fee
        lock_ccy = "USDT" if order.side == BUY else "BTC"
        release = min(order.locked, qty if order.side != BUY else order.locked
                      * qty / (order.remaining + qty))
        order.locked -= release
        self.locked[lock_ccy] -= release
        self.facts.append(fill)
        if order.filled == order.qty:
            self._close(order, "filled", ts)
        for c in sorted({"BTC", "USDT", ccy} - {lock_ccy if order.filled == order.qty
                                                 else ""}):
            self.facts.append(self._balance(c, ts))

    def _balance(self, ccy: str, ts: int) -> BalanceChanged:
        total, locked = self.total.get(ccy, ZERO), self.locked.get(ccy, ZERO)
        return BalanceChanged(ts_event=ts, ts_recv=ts, venue=self.venue, currency=ccy,
                              total=total, free=total - locked, locked=locked, reason="venue")

    def open_cids(self) -> set[str]:
        return {cid for cid, o in self.orders.items() if o.state == "open"}


class ChaosAdapter:
    """Our side of the connection (see the module doc). `publish` is the bus's."""

    def __init__(self, rng: random.Random, exchange: Exchange, publish: Any, *,
                 dup: float, unknown: float, max_delay: int, raw: bool) -> None:
        self.rng = rng
        self.x = exchange
        self._publish = publish
        self.dup, self.unknown, self.max_delay = dup, unknown, max_delay
        self.raw = raw  # deliver duplicates as they come (else drop what the OMS holds)
        self.oms: Any = None
        self.step = 0
        self._queue: list[tuple[int, int, Event]] = []
        self._n = 0
        self._balance_at = 0
        self._seen = len(exchange.facts)  # facts already sent into the "network"
        # unknown outcomes: cid -> (step the exchange gets it or -1 never, lookup step)
        self.unresolved: dict[str, tuple[int, int, OrderSubmitted]] = {}

    def publish(self, event: Event) -> None:
        """Every message arrives as its own event (a copy: the bus stamps its seq)."""
        self._publish(msgspec.structs.replace(event))

    def subscribe(self, bus: Any) -> None:
        bus.subscribe(OrderSubmitted, self._on_submitted)
        bus.subscribe(CancelOrder, self._on_cancel)

    def _later(self, event: Event, delay: int | None = None) -> None:
        at = self.step + (self.rng.randint(0, self.max_delay) if delay is None else delay)
        if type(event) is BalanceChanged:  # snapshots stay in order
            at = self._balance_at = max(at, self._balance_at)
        self._n += 1
        heapq.heappush(self._queue, (at, self._n, event))
        if self.rng.random() < self.dup and type(event) is not BalanceChanged:
            self._n += 1
            at2 = self.step + self.rng.randint(0, self.max_delay)
            heapq.heappush(self._queue, (at2, self._n, event))

    def _on_submitted(self, e: OrderSubmitted) -> None:
        if e.venue != self.x.venue:
            return
        if self.rng.random() < self.unknown:
            arrives = -1 if self.rng.random() < 0.4 else self.step + self.rng.randint(0, 6)
            self.unresolved[e.client_order_id] = (arrives, self.step + self.rng.randint(1, 8), e)
            return
        self._later(self.x.place(e, e.ts_event))  # the REST answer

    def _on_cancel(self, e: CancelOrder) -> None:
        if e.venue != self.x.venue:
            return
        answer = self.x.cancel(e, e.ts_event)
        if self.rng.random() < self.unknown:
            return  # the answer is lost: the stream (or reconciliation) tells
        self._later(answer)

    def tick(self, step: int, ts: int) -> None:
        """Advance to `step`: late placements reach the exchange, look-ups answer,
        new facts go on the wire, and what is due is delivered."""
        self.step = step
        for cid, (arrives, lookup, sub) in list(self.unresolved.items()):
            if arrives == step:
                self.x.place(sub, ts)  # its answer is lost; the stream reports it
            if lookup <= step:
                del self.unresolved[cid]
                self._resolve(sub, ts)
        self._pump()
        self.deliver(step)

    def _pump(self) -> None:
        facts = self.x.facts
        while self._seen < len(facts):
            self._later(facts[self._seen])
            self._seen += 1

    def deliver(self, upto: int) -> None:
        while self._queue and self._queue[0][0] <= upto:
            _, _, event = heapq.heappop(self._queue)
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        if not self.raw and self.oms is not None:
            cls = type(event)
            if cls is Fill and self.oms.has_fill(event.venue, event.symbol,  # type: ignore[attr-defined]
                                                  event.trade_id):  # type: ignore[attr-defined]
                return
        self.publish(event)

    def _resolve(self, sub: OrderSubmitted, ts: int) -> None:
        order = self.x.orders.get(sub.client_order_id)
        if order is None:  # not (yet) at the exchange: "never arrived" (maybe premature)
            self.publish(OrderRejected(
                ts_event=ts, ts_recv=ts, venue=sub.venue, symbol=sub.symbol,
                strategy_id=sub.strategy_id, client_order_id=sub.client_order_id,
                reason="placement outcome unknown; not at the exchange", check="",
                code="-2013"))
            return
        self._report(order, ts)

    def _report(self, order: XOrder, ts: int) -> None:
        """What a look-up of one order shows: its ack, the fills we do not hold, its end
        (a look-up is answered from the exchange's records: never a duplicate fill)."""
        self.publish(OrderAccepted(ts_event=ts, ts_recv=ts, venue=self.x.venue,
                                   symbol="BTCUSDT", strategy_id=order.strategy_id,
                                   client_order_id=order.cid))
        for fill in order.fills:
            if not self.oms.has_fill(fill.venue, fill.symbol, fill.trade_id):
                self.publish(fill)
        if order.state == "canceled":
            self.publish(OrderCanceled(ts_event=ts, ts_recv=ts, venue=self.x.venue,
                                       symbol="BTCUSDT", strategy_id=order.strategy_id,
                                       client_order_id=order.cid, reason="canceled"))

    def settle(self, ts: int) -> None:
        """Let the world quiesce: every placement reaches the exchange or never will,
        every look-up answers, every report is delivered (and what they cause: a
        bracket's legs submitted on the entry's last fill)."""
        for _ in range(100):
            for cid, (arrives, _lookup, sub) in list(self.unresolved.items()):
                if arrives >= 0:
                    self.x.place(sub, ts)
                del self.unresolved[cid]
                self._resolve(sub, ts)
            self._pump()
            self.deliver(1 << 62)
            if not self.unresolved and not self._queue and self._seen == len(self.x.facts):
                return
        raise AssertionError("the world does not settle")

    def reconcile(self, ts: int) -> None:
        """After a restart, before trading: every order of ours the exchange holds is
        looked up (its state, and its trades we have not recorded: `myTrades`); an order
        we hold open that the exchange does not know is resolved like an unknown
        outcome; a cancel we requested that was never answered is sent again."""
        self._seen = len(self.x.facts)  # what was on the wire died with the process
        oms = self.oms
        assert oms is not None
        for x in list(self.x.orders.values()):
            order = oms.orders.get(x.cid)
            if order is None:
                continue
            if order.is_open or x.filled != order.filled_qty:
                self._report(x, ts)
            if order.cancel_pending and x.state == "open":
                self._later(self.x.cancel(_cancel_of(order, ts), ts))
        for order in list(oms.open_orders()):
            if order.venue == self.x.venue and order.client_order_id not in self.x.orders:
                self.unresolved[order.client_order_id] = (
                    -1 if self.rng.random() < 0.5 else self.step + self.rng.randint(0, 4),
                    self.step + self.rng.randint(1, 6), _submitted_of(order, ts))
        for ccy in sorted(self.x.total):
            self.publish(self.x._balance(ccy, ts))


def _submitted_of(order: Any, ts: int) -> OrderSubmitted:
    return OrderSubmitted(ts_event=ts, ts_recv=ts, venue=order.venue, symbol=order.symbol,
                          strategy_id=order.strategy_id, client_order_id=order.client_order_id,
                          side=order.side, order_type=order.order_type, qty=order.qty,
                          price=order.price, trigger_price=order.trigger_price)


def _cancel_of(order: Any, ts: int) -> CancelOrder:
    return CancelOrder(ts_event=ts, ts_recv=ts, venue=order.venue, symbol=order.symbol,
                       strategy_id=order.strategy_id, client_order_id=order.client_order_id)
