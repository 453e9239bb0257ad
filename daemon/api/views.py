"""The control API's JSON shapes: orders, positions, margin, fills, and the
encoder that writes Decimals as strings (exact money, never a float)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

from events.instruments import to_decimal


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(data: Any) -> str:
    """JSON with Decimals as strings."""
    return json.dumps(data, default=_json_default)



def order_view(o: Any) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id, "strategy_id": o.strategy_id, "venue": o.venue,
        "symbol": o.symbol, "side": o.side, "order_type": getattr(o, "order_type", None),
        "qty": o.qty, "price": o.price, "filled_qty": o.filled_qty, "state": o.state,
        "is_open": o.is_open,
    }


def fill_view(f: Any) -> dict[str, Any]:
    return {
        "ts_event": f.ts_event, "seq": f.seq, "venue": f.venue, "symbol": f.symbol,
        "strategy_id": f.strategy_id, "client_order_id": f.client_order_id,
        "trade_id": f.trade_id, "side": f.side, "qty": f.qty, "price": f.price, "fee": f.fee,
        "fee_currency": f.fee_currency, "liquidity": f.liquidity,
    }


def position_view(portfolio: Any, p: Any) -> dict[str, Any]:
    last_price = getattr(portfolio, "last_price", None)
    return {
        "venue": p.venue, "symbol": p.symbol, "strategy_id": p.strategy_id, "qty": p.qty,
        "avg_price": p.avg_price,
        "mark": last_price(p.venue, p.symbol) if last_price is not None else None,
        "unrealized_pnl": portfolio.unrealized_pnl(p.venue, p.symbol, p.strategy_id),
        "realized_pnl": p.realized_pnl, "fees": p.fees,
    }


def margin_view(node: Any) -> dict[str, Any]:
    """The perpetuals: each margin account, each account-level position with its
    margin, liquidation price and funding, and when funding is next due (the
    venue's MarkPrice says; else the venue's configured constant schedule)."""
    portfolio = node.portfolio
    positions = []
    for p in portfolio.perp_positions():
        row = msgspec.to_builtins(p, builtin_types=(Decimal,))
        row["next_funding"] = next_funding(node, portfolio, p.venue, p.symbol)
        positions.append(row)
    return {"accounts": [msgspec.to_builtins(a, builtin_types=(Decimal,))
                         for a in portfolio.margin()],
            "positions": positions}


def next_funding(node: Any, portfolio: Any, venue: str, symbol: str) -> dict[str, Any] | None:
    """{rate, ts_ns, source} of the next funding of `symbol`, or None if unknown."""
    outlook = portfolio.funding_outlook(venue, symbol)
    if outlook is not None:
        rate, ts = outlook
        return {"rate": rate, "ts_ns": ts, "source": "venue"}
    try:
        vcfg = node.config.venue(venue)
    except (AttributeError, KeyError):
        return None
    if vcfg.funding_rate is None:
        return None
    period = round(vcfg.funding_interval_h * 3_600 * 1_000_000_000)
    now = node.clock.now_ns()
    return {"rate": to_decimal(vcfg.funding_rate), "ts_ns": (now // period + 1) * period,
            "source": "config"}


def unvalued_view(portfolio: Any) -> list[dict[str, Any]]:
    """Money the account's figures leave out for want of a conversion mark."""
    return [{"venue": u.venue, "currency": u.currency, "balance": u.balance, "pnl": u.pnl,
             "reason": u.reason} for u in portfolio.unvalued()]
