"""The simulated venue's books: every order it accepted, its spot accounts, and
the events that record each change to them.

Every order-state or balance change the venue makes goes through here, so the
published events and the venue's state cannot drift apart: a fill publishes
`Fill`, then `BalanceChanged` for the base and the quote currency; a close
publishes its order event, then `BalanceChanged` for the released lock.
Venue order ids (`{venue}-{n}`) and trade ids (`{venue}-T{n}`) are plain
counters, so a replay numbers them identically; after a restart they continue
after the highest the journal holds (`reinstate`), so no id is issued twice.
A fill pays its fee in the asset `fees.FeeSchedule.charge` picks; a third
currency's balance change follows the base and quote ones. A perpetual's fill
moves no base or quote: the margin book (`perps.MarginBook`) books its PnL and
fee in the settle currency, whose BalanceChanged follows the Fill and counts
the positions' margin as locked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapters.sim.accounts import Accounts
from adapters.sim.fees import FeeSchedule
from adapters.sim.market import SymbolState
from adapters.sim.orders import CANCELED, EXPIRED, FILLED, OPEN, SimOrder
from events.base import Event
from events.instruments import Instrument
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

CLOSED_KEPT = 100_000  # closed orders remembered (for CancelRejected reasons)
_ZERO = Decimal(0)


class Ledger:
    __slots__ = ("venue", "publish", "now", "fees", "acc", "symbols", "orders", "_closed",
                 "_accepted", "_trades", "_pricing", "perp", "margined")

    def __init__(self, venue: str, publish: Callable[[Event], object],
                 now_ns: Callable[[], int], fees: FeeSchedule, accounts: Accounts,
                 symbols: dict[str, SymbolState]) -> None:
        self.venue = venue
        self.publish = publish
        self.now = now_ns
        self.fees = fees
        self.acc = accounts
        self.symbols = symbols
        self.orders: dict[str, SimOrder] = {}  # client_order_id -> order (open or closed)
        self._closed: deque[str] = deque()
        self._accepted = 0  # venue order ids issued: `{venue}-{n}`
        self._trades = 0  # trade ids issued: `{venue}-T{n}`
        # (base, quote) -> its symbol: where a third fee currency is priced
        self._pricing = {(st.inst.base, st.inst.quote): st for st in symbols.values()}
        self.perp: Any = None  # the venue's perps.MarginBook, when it lists perpetuals
        self.margined: frozenset[str] = frozenset()  # currencies perpetuals settle in

    # -- a restart -----------------------------------------------------------

    def reinstate(self, orders: list[SimOrder], closed: list[str], accepted: int,
                  trades: int) -> None:
        """Take back the orders a restored journal holds (open ones already in
        their symbol's book; `closed`: the closed ids, oldest first) and
        continue the id counters after the highest ever issued."""
        assert not self.orders, "restore before any order arrives"
        self.orders.update((o.client_order_id, o) for o in orders)
        self._closed.extend(closed)
        self._accepted = max(self._accepted, accepted)
        self._trades = max(self._trades, trades)

    def counters(self) -> tuple[int, int]:
        """(venue order ids issued, trade ids issued)."""
        return self._accepted, self._trades

    def cancel_unlisted(self, order: SimOrder, ts: int, reason: str) -> None:
        """Close a restored open order whose symbol the venue no longer lists
        (it holds no reservation and rests in no book)."""
        order.state = CANCELED
        self.orders[order.client_order_id] = order
        self.publish(OrderCanceled(
            ts_event=ts, ts_recv=self.now(), venue=self.venue, symbol=order.symbol,
            strategy_id=order.sub.strategy_id, client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id, reason=reason))

    # -- answers to requests -------------------------------------------------

    def refuse(self, ev: OrderSubmitted | CancelOrder | AmendOrder, ts: int,
               reason: str, code: str = "") -> None:
        """OrderRejected / CancelRejected / AmendRejected, by the request's type."""
        cls: type[OrderRejected | CancelRejected | AmendRejected]
        if isinstance(ev, OrderSubmitted):
            if code:
                self.publish(OrderRejected(
                    ts_event=ts, ts_recv=self.now(), venue=self.venue, symbol=ev.symbol,
                    strategy_id=ev.strategy_id, client_order_id=ev.client_order_id,
                    reason=reason, code=code))
                return
            cls = OrderRejected
        elif isinstance(ev, CancelOrder):
            cls = CancelRejected
        else:
            cls = AmendRejected
        self.publish(cls(ts_event=ts, ts_recv=self.now(), venue=self.venue,
                         symbol=ev.symbol, strategy_id=ev.strategy_id,
                         client_order_id=ev.client_order_id, reason=reason))

    def accept(self, sub: OrderSubmitted, expire_ns: int, reserve_ccy: str,
               reserve_px: Decimal, ts: int) -> SimOrder:
        """Register the order, publish OrderAccepted and lock its reservation."""
        self._accepted += 1
        order = SimOrder(sub, f"{self.venue}-{self._accepted}", expire_ns)
        order.reserve_ccy, order.reserve_px = reserve_ccy, reserve_px
        self.orders[order.client_order_id] = order
        st = self.symbols[order.symbol]
        st.open[order.client_order_id] = order
        if expire_ns and (not st.next_expiry or expire_ns < st.next_expiry):
            st.next_expiry = expire_ns
        self.publish(OrderAccepted(ts_event=ts, ts_recv=self.now(), venue=self.venue,
                                   symbol=order.symbol, strategy_id=sub.strategy_id,
                                   client_order_id=order.client_order_id,
                                   venue_order_id=order.venue_order_id))
        if reserve_px:
            order.reserved = order.qty * reserve_px
            self.acc.lock(reserve_ccy, order.reserved)
            self.balance(reserve_ccy, ts, "order")
        return order

    def amended(self, order: SimOrder, relock: Decimal, ts: int) -> None:
        """Publish OrderAmended with the order's new terms; lock `relock` more
        (negative: release) of its reservation currency."""
        self.publish(OrderAmended(ts_event=ts, ts_recv=self.now(), venue=self.venue,
                                  symbol=order.symbol, strategy_id=order.sub.strategy_id,
                                  client_order_id=order.client_order_id, qty=order.qty,
                                  price=order.price, trigger_price=order.trigger))
        if relock and order.reserve_px:
            order.reserved += relock
            self.acc.lock(order.reserve_ccy, relock)
            self.balance(order.reserve_ccy, ts, "amend")

    # -- closing -------------------------------------------------------------

    def cancel(self, order: SimOrder, ts: int, reason: str) -> None:
        self._close(order, CANCELED, OrderCanceled(
            ts_event=ts, ts_recv=self.now(), venue=self.venue, symbol=order.symbol,
            strategy_id=order.sub.strategy_id, client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id, reason=reason), ts)

    def expire(self, order: SimOrder, deadline: int) -> None:
        self._close(order, EXPIRED, OrderExpired(
            ts_event=deadline, ts_recv=self.now(), venue=self.venue, symbol=order.symbol,
            strategy_id=order.sub.strategy_id, client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id), deadline)

    def _close(self, order: SimOrder, state: str, event: Event | None, ts: int) -> None:
        order.state = state
        del self.symbols[order.symbol].open[order.client_order_id]
        if event is not None:
            self.publish(event)
        if order.reserved:
            self.acc.lock(order.reserve_ccy, -order.reserved)
            order.reserved = _ZERO
            if state != FILLED:  # a fill publishes its own balance changes
                self.balance(order.reserve_ccy, ts, "release")
        closed = self._closed
        closed.append(order.client_order_id)
        if len(closed) > CLOSED_KEPT:
            self.orders.pop(closed.popleft(), None)

    # -- fills ---------------------------------------------------------------

    def fill(self, order: SimOrder, inst: Instrument, qty: Decimal, price: Decimal,
             liquidity: str, ts: int) -> None:
        """One execution: Fill, then the base and quote BalanceChanged (and the
        fee currency's, when it is a third one)."""
        assert order.state == OPEN and 0 < qty <= order.remaining
        acc = self.acc
        base, quote = inst.base, inst.quote
        if inst.perpetual:
            fee, fee_ccy = self.perp.fee(inst, price, qty, liquidity), inst.settle
        else:
            fee, fee_ccy = self.fees.charge(inst, order.buy, price, qty, liquidity,
                                            self.price_of, acc.free)
        self._trades += 1
        self.publish(Fill(ts_event=ts, ts_recv=self.now(), venue=self.venue,
                          symbol=order.symbol, strategy_id=order.sub.strategy_id,
                          client_order_id=order.client_order_id,
                          trade_id=f"{self.venue}-T{self._trades}", side=order.side, qty=qty,
                          price=price, fee=fee, fee_currency=fee_ccy, liquidity=liquidity,
                          venue_order_id=order.venue_order_id))
        order.filled += qty
        if order.reserved and order.filled < order.qty:
            release = min(order.reserved, qty * order.reserve_px)
            order.reserved -= release
            acc.lock(order.reserve_ccy, -release)
        if inst.perpetual:
            self.perp.on_fill(order.sub.strategy_id, inst, order.buy, qty, price, fee, ts)
            if order.filled >= order.qty:
                self._close(order, FILLED, None, ts)
            self.balance(fee_ccy, ts, "fill")
            return
        notional = price * qty
        # The net position follows the base the account actually holds, so a
        # fee paid in the base leaves no position the balance cannot close.
        if order.buy:
            acc.add(quote, -(notional + fee) if fee_ccy == quote else -notional)
            got = qty - fee if fee_ccy == base else qty
            acc.add(base, got)
            acc.add_position(order.symbol, got)
        else:
            gave = qty + fee if fee_ccy == base else qty
            acc.add(base, -gave)
            acc.add(quote, notional - fee if fee_ccy == quote else notional)
            acc.add_position(order.symbol, -gave)
        third = fee_ccy != base and fee_ccy != quote
        if third:
            acc.add(fee_ccy, -fee)
        if order.filled >= order.qty:
            self._close(order, FILLED, None, ts)  # releases the rest of the lock
        self.balance(base, ts, "fill")
        self.balance(quote, ts, "fill")
        if third:
            self.balance(fee_ccy, ts, "fee")

    def trade_id_next(self) -> None:
        """Issue the next trade id (a liquidation's); `last_trade_id` names it."""
        self._trades += 1

    def trades_issued(self, n: int) -> None:
        """At a restart: trade ids up to `{venue}-T{n}` were issued (a liquidation's)."""
        self._trades = max(self._trades, n)

    def last_trade_id(self) -> str:
        return f"{self.venue}-T{self._trades}"

    def price_of(self, currency: str, quote: str) -> Decimal | None:
        """The last market price of `currency` in `quote` on this venue (the
        instrument currency/quote), or None before any is known."""
        st = self._pricing.get((currency, quote))
        if st is None or st.last_px is None:
            return None
        return st.inst.round_price(st.last_px)

    def reduce_room(self, symbol: str, buy: bool) -> Decimal:
        """How much an order on this side can trade and only reduce the position."""
        net = self.acc.position(symbol)
        if buy:
            return -net if net < 0 else _ZERO
        return net if net > 0 else _ZERO

    def balance(self, currency: str, ts: int, reason: str) -> None:
        acc = self.acc
        total, locked = acc.total.get(currency, _ZERO), acc.locked.get(currency, _ZERO)
        if currency in self.margined:
            locked += self.perp.used(currency)
        self.publish(BalanceChanged(ts_event=ts, ts_recv=self.now(), venue=self.venue,
                                    currency=currency, total=total, free=total - locked,
                                    locked=locked, reason=reason))
