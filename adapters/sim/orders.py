"""The simulated venue's record of one order, and the checks an order must pass
when it arrives.

Adapters may not import `daemon/`, so the order vocabulary (the same strings
as `daemon.trading.api`) is repeated here.

An order is `live` once it can execute: at acceptance for MARKET and LIMIT,
when triggered for the stop types. `fresh` marks its first matching
opportunity (the arrival event, or the trigger event of a stop): that is where
a limit order that crosses is a taker, and where IOC/FOK are settled.
"""

from __future__ import annotations

from decimal import Decimal

from events.instruments import Instrument
from events.orders import (
    BUY,
    GTD,
    LIMIT,
    ORDER_TYPES,
    SELL,
    STOP_LIMIT,
    STOP_MARKET,
    TIME_IN_FORCE,
    TRAILING_STOP,
    OrderSubmitted,
)

STOP_TYPES = frozenset({STOP_MARKET, STOP_LIMIT, TRAILING_STOP})
LIMIT_TYPES = frozenset({LIMIT, STOP_LIMIT})  # execute at `price` or better

# order states at the venue
OPEN = "open"
FILLED = "filled"
CANCELED = "canceled"
EXPIRED = "expired"

NS_PER_DAY = 86_400 * 1_000_000_000
_ZERO = Decimal(0)


def next_midnight_ns(ts_ns: int) -> int:
    """The first 00:00 UTC strictly after `ts_ns` (when a DAY order expires)."""
    return (ts_ns // NS_PER_DAY + 1) * NS_PER_DAY


class SimOrder:
    """Mutable venue-side state of an accepted order."""

    __slots__ = ("sub", "client_order_id", "venue_order_id", "symbol", "side", "buy",
                 "order_type", "tif", "reduce_only", "qty", "price", "trigger", "offset",
                 "filled", "state", "live", "fresh", "queue_ahead", "extreme", "expire_ns",
                 "reserve_ccy", "reserve_px", "reserved", "allowance")

    def __init__(self, sub: OrderSubmitted, venue_order_id: str, expire_ns: int) -> None:
        self.sub = sub
        self.client_order_id = sub.client_order_id
        self.venue_order_id = venue_order_id
        self.symbol = sub.symbol
        self.side = sub.side
        self.buy = sub.side == BUY
        self.order_type = sub.order_type
        self.tif = sub.time_in_force
        self.reduce_only = sub.reduce_only
        self.qty: Decimal = sub.qty
        self.price: Decimal | None = sub.price
        self.trigger: Decimal | None = sub.trigger_price
        self.offset: Decimal | None = sub.trailing_offset
        self.filled = _ZERO
        self.state = OPEN
        self.live = sub.order_type not in STOP_TYPES
        self.fresh = self.live
        # queue_aware: displayed size ahead of us at our price; None = unknown
        # (our level is behind the visible top of book)
        self.queue_ahead: Decimal | None = None
        self.extreme: Decimal | None = None  # trailing stop: best price since acceptance
        self.expire_ns = expire_ns  # 0 = never
        # the reservation: `reserved` units of `reserve_ccy` are locked,
        # `reserve_px` of them per unit of remaining quantity
        self.reserve_ccy = ""
        self.reserve_px = _ZERO
        self.reserved = _ZERO
        # the "volume" slippage model: participation accrued from the volume
        # seen since arrival and not yet taken (see `slippage.VolumeImpact`)
        self.allowance = _ZERO

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def takes(self) -> bool:
        """Executes at the market once live (market, stop-market, trailing stop)."""
        return self.order_type not in LIMIT_TYPES


def validate(sub: OrderSubmitted, inst: Instrument, arrival_ns: int) -> str | None:
    """Why the venue refuses `sub` on its own terms (None: it passes).
    Balance, post-only and reduce-only need market state and are checked by
    the venue."""
    if not inst.tradable:
        return f"{inst.symbol} is not trading (status {inst.status})"
    if sub.side not in (BUY, SELL):
        return f"unknown side {sub.side!r}"
    otype = sub.order_type
    if otype not in ORDER_TYPES:
        return f"unknown order type {otype!r}"
    if sub.time_in_force not in TIME_IN_FORCE:
        return f"unknown time in force {sub.time_in_force!r}"
    if not inst.on_qty_grid(sub.qty):
        return f"qty {sub.qty} is not a positive multiple of step {inst.step_size}"
    if inst.min_qty and sub.qty < inst.min_qty:
        return f"qty {sub.qty} below min qty {inst.min_qty}"
    if inst.max_qty is not None and sub.qty > inst.max_qty:
        return f"qty {sub.qty} above max qty {inst.max_qty}"
    if otype in LIMIT_TYPES:
        if sub.price is None:
            return f"{otype} needs a price"
        if not inst.on_price_grid(sub.price):
            return f"price {sub.price} is not on tick {inst.tick_size}"
    if otype in (STOP_MARKET, STOP_LIMIT):
        if sub.trigger_price is None:
            return f"{otype} needs a trigger price"
    if sub.trigger_price is not None and otype in STOP_TYPES:
        if not inst.on_price_grid(sub.trigger_price):
            return f"trigger price {sub.trigger_price} is not on tick {inst.tick_size}"
    if otype == TRAILING_STOP and (sub.trailing_offset is None or sub.trailing_offset <= 0):
        return "TRAILING_STOP needs a positive trailing_offset"
    if sub.post_only and otype != LIMIT:
        return "post-only needs a LIMIT order"
    ref = sub.price if otype in LIMIT_TYPES else sub.trigger_price
    if ref is not None and inst.min_notional and sub.qty * ref < inst.min_notional:
        return f"notional {sub.qty * ref} below min notional {inst.min_notional}"
    if sub.time_in_force == GTD and sub.expire_ts <= arrival_ns:
        return f"GTD expire_ts {sub.expire_ts} is not after arrival {arrival_ns}"
    return None
