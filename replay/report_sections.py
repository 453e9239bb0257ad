"""The report page's trading sections: the benchmark's legend, a price chart
per traded symbol with every fill marked (entries filled, exits hollow; buys
point up, sells down), the returns per day and the round trips.

Built on `replay.report_html`'s chart and table helpers; the data comes from
`replay.report_series` and the builder's trade ledger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from replay.metrics import RoundTrip
from replay.report_html import (
    Marker,
    _axis_num,
    _chart,
    _int,
    _pct,
    _signed,
    _table,
    _time_label,
)
from replay.report_series import PriceSeries

# The page stays small with many trades: the full list is trades.csv's.
MAX_TRADE_ROWS = 1000

BUY_COLOR, SELL_COLOR = "#137333", "#b3261e"


def benchmark_legend(bench: Mapping[str, Any] | None) -> list[str]:
    """The legend naming the equity chart's two lines (only with a benchmark)."""
    if not bench:
        return []
    names = ", ".join(bench.get("symbols", ()))
    ret = _pct(bench.get("total_return"))
    return [
        '<div class="legend"><i style="border-color:#1a5fb4"></i>strategy'
        f'<i class="dash" style="border-color:#8a93a3"></i>buy and hold {escape(names)}: '
        f"final {escape(str(bench.get('final_equity')))}"
        f"{'' if ret is None else f' ({escape(ret)})'}</div>"
    ]


def price_sections(prices: Sequence[PriceSeries]) -> list[str]:
    """One chart per traded symbol: its sampled price and its fills."""
    out: list[str] = []
    for p in prices:
        markers = [
            Marker(ts_ns=f.ts_ns, value=f.price, up=f.side == "BUY", filled=f.kind == "entry",
                   color=BUY_COLOR if f.side == "BUY" else SELL_COLOR,
                   css=f"fill-marker {f.kind} {f.side.lower()}",
                   title=f"{_time_label(f.ts_ns)} {f.strategy_id} {f.kind} {f.side} "
                         f"{f.qty} @ {f.price!r}")
            for f in p.fills
        ]
        out.append(f"<h2>Price: {escape(p.symbol)}</h2>")
        out.append(
            '<div class="legend">sampled mark; ▲ buy ▼ sell; filled = entry, '
            f"hollow = exit; {len(p.fills):,} fills</div>"
        )
        ts, price = p.ts_ns, p.price
        if price.size == 0 and markers:  # never marked: draw the fills' prices alone
            ts = np.asarray([m.ts_ns for m in markers], dtype=np.int64)
            price = np.asarray([m.value for m in markers], dtype=np.float64)
        out.append(_chart(ts, price, height=280, color="#3d4a5c", fill=False, fmt=_axis_num,
                          markers=markers, empty=f"no price sampled for {p.symbol}"))
    return out


def daily_returns_section(days: Sequence[Mapping[str, Any]]) -> list[str]:
    """The returns per UTC day, as a table with a bar per day."""
    if not days:
        return []
    worst = max((abs(d["return"]) for d in days if d.get("return") is not None), default=0.0)
    rows = []
    for d in days:
        r = d.get("return")
        # four decimals of a percent: a day's return on a large account is small
        rows.append((d["date"], d["equity"], _signed(None if r is None else f"{r * 100:.4f}%"),
                     _Bar(r, worst)))
    return ["<h2>Returns per day (UTC)</h2>",
            '<div class="bars">' + _table(("day", "closing equity", "return", ""), rows)
            + "</div>"]


class _Bar(str):
    """A table cell's text for a return bar (a row of blocks scaled to the
    largest absolute return), so the table reads as a bar chart offline."""

    def __new__(cls, r: float | None, worst: float) -> _Bar:
        if r is None or worst == 0:
            return super().__new__(cls, "")
        n = max(1, round(abs(r) / worst * 20)) if r else 0
        return super().__new__(cls, ("-" if r < 0 else "+") + "█" * n if n else "")


def trades_section(trades: Sequence[RoundTrip]) -> list[str]:
    """The round trips (trades.csv's rows), the first `MAX_TRADE_ROWS` of them."""
    rows = [
        (t.strategy_id, t.symbol, t.direction, _time_label(t.opened_ns),
         _time_label(t.closed_ns), format(t.max_qty, "f"), _int(t.fills),
         _signed(format(t.realized, "f")), format(t.fees, "f"), _signed(format(t.pnl, "f")))
        for t in trades[:MAX_TRADE_ROWS]
    ]
    note = ([f'<p class="muted">the first {MAX_TRADE_ROWS:,} of {len(trades):,}; '
             "all in trades.csv</p>"] if len(trades) > MAX_TRADE_ROWS else [])
    return [
        f"<h2>Trades (round trips: {len(trades):,})</h2>",
        _table(("strategy", "symbol", "direction", "opened (UTC)", "closed (UTC)", "max qty",
                "fills", "realized", "fees", "pnl"), rows, empty="no closed trades"),
        *note,
    ]
