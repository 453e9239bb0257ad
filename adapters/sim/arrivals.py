"""The simulated venue's answers to requests as they arrive (a base of
`SimVenue`): an order accepted or refused with the venue's reason (grid, duplicate
id, post-only, reduce-only, funds or margin), a cancel, an amend (re-checked,
re-reserved, requeued where a real venue requeues it). When a request arrives
(after the venue's latency) and what the market then is are `SimVenue`'s."""

from __future__ import annotations

from decimal import Decimal

from adapters.sim.accounts import Accounts
from adapters.sim.fill_models import QUEUE_AWARE, join_queue
from adapters.sim.ledger import Ledger
from adapters.sim.market import SymbolState, Touch
from adapters.sim.matching import crosses
from adapters.sim.orders import LIMIT_TYPES, OPEN, STOP_TYPES, SimOrder, next_midnight_ns, validate
from adapters.sim.perps import MarginBook
from adapters.sim.reservations import after_amend, insufficient, on_arrival, plain
from events.orders import DAY, GTD, LIMIT, SELL, AmendOrder, CancelOrder, OrderSubmitted

_ZERO = Decimal(0)


class Arrivals:
    """What `SimVenue` does when a request reaches it (see the module doc)."""

    fill_model: str
    allow_short: bool
    _ledger: Ledger
    _acc: Accounts
    _perp: MarginBook | None
    _symbols: dict[str, SymbolState]

    def _accept(self, st: SymbolState, sub: OrderSubmitted, arrival: int, t: Touch) -> None:
        ledger = self._ledger
        buy = sub.side != SELL
        reason = validate(sub, st.inst, arrival)
        if reason is None and sub.client_order_id in ledger.orders:
            reason = f"duplicate client_order_id {sub.client_order_id!r}"
        if (reason is None and sub.post_only and sub.price is not None
                and crosses(buy, sub.price, t)):
            reason = "post-only would take liquidity"
        if reason is None and sub.reduce_only and ledger.reduce_room(sub.symbol, buy) <= 0:
            reason = f"reduce-only order would increase the {sub.symbol} position"
        ccy, unit, code = "", _ZERO, ""
        if reason is None and st.perp is not None:
            assert self._perp is not None
            last = (st.inst.round_price(st.last_px) if st.last_px is not None
                    else t.buy_px if buy else t.sell_px)
            ccy, unit, reason, code = self._perp.arrival(sub.symbol, sub, last)
        elif reason is None:
            ccy, unit, reason = on_arrival(st, sub, t, self._acc.free, self.allow_short)
        if reason is not None:
            ledger.refuse(sub, arrival, reason, code)
            return
        tif = sub.time_in_force
        expire = sub.expire_ts if tif == GTD else next_midnight_ns(arrival) if tif == DAY else 0
        order = ledger.accept(sub, expire, ccy, unit, arrival)
        if self.fill_model == QUEUE_AWARE and order.order_type == LIMIT:
            join_queue(order, st)

    def _cancel(self, req: CancelOrder, arrival: int) -> None:
        order = self._ledger.orders.get(req.client_order_id)
        if order is None:
            self._ledger.refuse(req, arrival, f"unknown order {req.client_order_id!r}")
        elif order.state != OPEN:
            self._ledger.refuse(req, arrival, f"order already {order.state}")
        else:
            self._ledger.cancel(order, arrival, req.reason or "requested")

    def _amend(self, st: SymbolState, req: AmendOrder, arrival: int, t: Touch) -> None:
        order = self._ledger.orders.get(req.client_order_id)
        if order is None or order.state != OPEN:
            self._ledger.refuse(req, arrival, f"unknown order {req.client_order_id!r}"
                                if order is None else f"order already {order.state}")
            return
        qty = order.qty if req.qty is None else req.qty
        price = order.price if req.price is None else req.price
        trigger = order.trigger if req.trigger_price is None else req.trigger_price
        reason = self._amend_refusal(order, req, qty, price, t)
        if st.perp is not None:
            assert self._perp is not None
            px = self._perp.order_px(order.sub, order.reserve_px and None, price, trigger)
            unit = (self._perp.unit(st.perp, px) if order.reserve_px and px is not None
                    else order.reserve_px)
            free = self._perp.available(order.reserve_ccy)
        else:
            unit = after_amend(order, price, trigger)
            free = self._acc.free(order.reserve_ccy)
        relock = (qty - order.filled) * unit - order.reserved
        if reason is None and relock > free:
            reason = insufficient(relock, order.reserve_ccy, free)
        if reason is not None:
            self._ledger.refuse(req, arrival, reason)
            return
        reprice = price != order.price
        lose_priority = reprice or qty > order.qty  # a real venue requeues these too
        order.qty, order.price, order.trigger, order.reserve_px = qty, price, trigger, unit
        if reprice and order.live:
            order.fresh = True  # it re-enters the book: it may now cross and take
        if self.fill_model == QUEUE_AWARE and lose_priority and order.live and price is not None:
            join_queue(order, st)
        self._ledger.amended(order, relock, arrival)

    def _amend_refusal(self, order: SimOrder, req: AmendOrder, qty: Decimal,
                       price: Decimal | None, t: Touch) -> str | None:
        inst = self._symbols[order.symbol].inst
        if req.price is not None and order.order_type not in LIMIT_TYPES:
            return f"a {order.order_type} order has no limit price"
        if req.trigger_price is not None and order.order_type not in STOP_TYPES:
            return f"a {order.order_type} order has no trigger price"
        if not inst.on_qty_grid(qty):
            return f"qty {qty} is not a positive multiple of step {inst.step_size}"
        if qty <= order.filled:
            return f"qty {plain(qty)} is not above the filled qty {plain(order.filled)}"
        if req.price is not None and not inst.on_price_grid(req.price):
            return f"price {req.price} is not on tick {inst.tick_size}"
        if req.trigger_price is not None and not inst.on_price_grid(req.trigger_price):
            return f"trigger price {req.trigger_price} is not on tick {inst.tick_size}"
        if (order.sub.post_only and order.live and price is not None and price != order.price
                and crosses(order.buy, price, t)):
            return "post-only would take liquidity"
        return None
