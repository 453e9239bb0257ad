"""Slippage models: the price a taker actually gets, and how much it may take.

Only taker executions slip (market, triggered stop-market / trailing-stop, and
limit orders that cross on entry when a book is visible); a resting limit
order fills at its own price. Every model is deterministic and rounds the
slipped price to the tick *against* the taker (up for a buy, down for a sell),
so slippage never improves a fill.

- ``none``: the market price as seen.
- ``fixed_bps``: price × (1 ± bps / 10 000).
- ``spread``: the taker crosses half the last known spread beyond the price.
  On a Quote or book event the price already is the far side, so nothing is
  added; on a Trade or Bar the price is taken as the mid and half the last known
  spread (from the last Quote/book) is added for a buy, subtracted for a sell.
  With no quote known yet there is no spread to cross.
- ``volume``: linear market impact. An execution of `qty`
  against an event showing `size` (a trade's size, the quoted size on the
  taker's side, or a bar's volume) moves the price by bps × qty / size basis
  points (the full bps when the size is unknown). Participation is capped per
  order and accumulates across events: each event the order is matched on adds
  `volume_limit_pct` % of its size to the order's allowance; the order takes
  its allowance rounded down to the step (at most what remains) and carries
  the rest to the next event. So an order never takes more than that share of
  the volume seen since it arrived, and still completes in finite events on
  any live market however small its trades are next to the step (a per-event
  cap rounded down to the step would be 0 on every event). An event whose
  size is unknown (or 0) does not cap the execution. Each simulated order sees
  the whole volume (orders do not share it).
- ``hybrid``: ``spread`` then ``volume``: the taker crosses half the last
  known spread as ``spread`` does, and the crossed price then moves by the
  ``volume`` impact (bps × qty / size), rounded to the tick against the taker
  once, at the end; participation is capped as ``volume`` caps it. Spot and
  perpetual instruments slip alike.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from adapters.sim.orders import SimOrder
from events.instruments import Instrument, to_decimal

NONE = "none"
FIXED_BPS = "fixed_bps"
SPREAD = "spread"
VOLUME = "volume"
HYBRID = "hybrid"
SLIPPAGE_MODELS = (NONE, FIXED_BPS, SPREAD, VOLUME, HYBRID)

_BPS = Decimal(10_000)
_ONE = Decimal(1)


def _away(px: Decimal, buy: bool, inst: Instrument) -> Decimal:
    """Round to the tick against the taker; a sell never goes below one tick."""
    if buy:
        return inst.round_price(px, ROUND_CEILING)
    return max(inst.round_price(px, ROUND_FLOOR), inst.tick_size)


class Slippage:
    """The ``none`` model, and the interface of the others."""

    name = NONE

    def cap(self, order: SimOrder, size: Decimal | None, inst: Instrument) -> Decimal:
        """How much of `order`'s remaining quantity one taker execution on an
        event showing `size` fills (0: none on this event). The caller fills
        exactly that, or closes the order (reduce-only, FOK): what a model
        accrues or consumes in `order.allowance` here stays true."""
        return order.remaining

    def price(self, buy: bool, px: Decimal, qty: Decimal, size: Decimal | None,
              half_spread: Decimal | None, on_book: bool, inst: Instrument) -> Decimal:
        """The slipped price of a taker execution of `qty` at market price `px`."""
        return px


class FixedBps(Slippage):
    name = FIXED_BPS

    def __init__(self, bps: float | Decimal) -> None:
        self.frac = to_decimal(bps) / _BPS

    def price(self, buy: bool, px: Decimal, qty: Decimal, size: Decimal | None,
              half_spread: Decimal | None, on_book: bool, inst: Instrument) -> Decimal:
        if not self.frac:
            return px
        return _away(px * (_ONE + self.frac if buy else _ONE - self.frac), buy, inst)


class SpreadCross(Slippage):
    name = SPREAD

    def price(self, buy: bool, px: Decimal, qty: Decimal, size: Decimal | None,
              half_spread: Decimal | None, on_book: bool, inst: Instrument) -> Decimal:
        if on_book or half_spread is None:
            return px
        return _away(px + half_spread if buy else px - half_spread, buy, inst)


class VolumeImpact(Slippage):
    name = VOLUME

    def __init__(self, bps: float | Decimal, volume_limit_pct: float | Decimal) -> None:
        self.bps = to_decimal(bps)
        self.limit = to_decimal(volume_limit_pct) / Decimal(100)

    def cap(self, order: SimOrder, size: Decimal | None, inst: Instrument) -> Decimal:
        if size is None or size <= 0:
            return order.remaining  # nothing to measure participation against
        allowance = order.allowance + size * self.limit
        qty = min(order.remaining, inst.round_qty(allowance))
        order.allowance = allowance - qty
        return qty

    def price(self, buy: bool, px: Decimal, qty: Decimal, size: Decimal | None,
              half_spread: Decimal | None, on_book: bool, inst: Instrument) -> Decimal:
        impact = self.bps if size is None or size <= 0 else self.bps * qty / size
        if not impact:
            return px
        frac = impact / _BPS
        return _away(px * (_ONE + frac if buy else _ONE - frac), buy, inst)


class Hybrid(VolumeImpact):
    name = HYBRID

    def price(self, buy: bool, px: Decimal, qty: Decimal, size: Decimal | None,
              half_spread: Decimal | None, on_book: bool, inst: Instrument) -> Decimal:
        crossed = px
        if not on_book and half_spread is not None:
            crossed = px + half_spread if buy else px - half_spread
        impact = self.bps if size is None or size <= 0 else self.bps * qty / size
        if impact:
            frac = impact / _BPS
            crossed = crossed * (_ONE + frac if buy else _ONE - frac)
        return px if crossed == px else _away(crossed, buy, inst)


def make_slippage(model: str, bps: float | Decimal, volume_limit_pct: float | Decimal
                  ) -> Slippage:
    """The named model; raises ValueError naming the bad value."""
    if model == NONE:
        return Slippage()
    if model == FIXED_BPS:
        return FixedBps(bps)
    if model == SPREAD:
        return SpreadCross()
    if model == VOLUME:
        return VolumeImpact(bps, volume_limit_pct)
    if model == HYBRID:
        return Hybrid(bps, volume_limit_pct)
    raise ValueError(f"slippage_model {model!r}: expected one of {', '.join(SLIPPAGE_MODELS)}")
