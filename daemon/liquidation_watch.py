"""Positions near liquidation: the operator hears before the venue acts.

`near(portfolio, pct)` lists each account-level perpetual position whose
liquidation price is within `pct` % of its mark (the portfolio's figures,
`events.margin` arithmetic). The kernel looks once a second and raises a
`near_liquidation` alert per (venue, symbol), rate-limited like every alert;
a `Liquidation` itself raises `liquidated`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from daemon.trading.margin_view import PerpPosition
from events.perp import Liquidation

HUNDRED = Decimal(100)
CHECK_EVERY_S = 1.0


def distance_pct(p: PerpPosition) -> Decimal | None:
    """How far the mark is from the liquidation price, in % of the mark."""
    if p.liquidation_price is None or not p.mark or not p.qty:
        return None
    return abs(p.mark - p.liquidation_price) / p.mark * HUNDRED


def near(portfolio: Any, pct: Decimal) -> list[tuple[PerpPosition, Decimal]]:
    out = []
    for p in portfolio.perp_positions():
        d = distance_pct(p)
        if d is not None and d < pct:
            out.append((p, d))
    return out


async def watch(portfolio: Any, alerts: Any, pct: float) -> None:
    """Raise `near_liquidation` for every position within `pct` %, once a second."""
    limit = Decimal(repr(pct))
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        for p, d in near(portfolio, limit):
            alerts.raise_alert(
                "near_liquidation",
                f"{p.venue}:{p.symbol} position {p.qty} is {d:.2f}% from liquidation "
                f"(mark {p.mark}, liquidation price {p.liquidation_price}, "
                f"{p.margin_mode} {p.leverage}x)",
                key=f"{p.venue}:{p.symbol}", venue=p.venue, symbol=p.symbol,
                qty=str(p.qty), mark=str(p.mark), liquidation_price=str(p.liquidation_price))


def alert_liquidations(bus: Any, alerts: Any) -> None:
    def liquidated(e: Liquidation) -> None:
        alerts.raise_alert(
            "liquidated", f"{e.venue}:{e.symbol} {e.side} {e.qty} liquidated at {e.price} "
            f"(mark {e.mark}, fee {e.fee} {e.fee_currency})", key=f"{e.venue}:{e.symbol}",
            venue=e.venue, symbol=e.symbol, strategy_id=e.strategy_id)
    bus.subscribe(Liquidation, liquidated)
