"""What `tapeloop top` draws: the dashboard's state between refreshes and its frame.

`Board` keeps the daemon's last answers (`/status`, `/positions`, `/orders`), the
equity seen at each refresh (for the sparkline) and the event rates by type (the
difference of `/status`'s `events_by_type` between two refreshes); `Board.render()`
is one rich renderable. While the daemon does not answer, the frame says
"reconnecting" above the last state it showed (dimmed: it is stale).

Money arrives as the API's Decimal strings and is shown as such: the dashboard never
does arithmetic on it, except to place the sparkline's bars (Decimal, too).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from daemon.commands.control_client import text, uptime

SPARK = "▁▂▃▄▅▆▇█"
HISTORY = 120  # equity samples the sparkline spans (two minutes at one a second)
MAX_ROWS = 10  # rows per table; the rest is counted
MAX_FILLS = 8
MAX_RATES = 6

_TRADING_STYLE = {"active": "bold green", "reducing": "bold yellow", "halted": "bold red"}
_STATUS_STYLE = {"ok": "green", "running": "green", "connected": "green", "live": "green",
                 "simulated": "green", "starting": "yellow", "stopping": "yellow",
                 "connecting": "yellow", "resyncing": "yellow", "reconnecting": "yellow",
                 "stopped": "red", "failed": "red", "disconnected": "red"}


def sparkline(values: Sequence[Decimal]) -> str:
    """One bar per value, scaled between the lowest and the highest."""
    if not values:
        return ""
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARK[len(SPARK) // 2] * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[int((v - lo) * top / (hi - lo))] for v in values)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


class Board:
    """The dashboard's state: `update()` after each answer, `lost()` when none came."""

    def __init__(self, url: str | None = None, interval: float = 1.0) -> None:
        self.url = url
        self.interval = interval
        self.status: dict[str, Any] | None = None
        self.positions: list[dict[str, Any]] = []
        self.orders: list[dict[str, Any]] = []
        self.equity: deque[Decimal] = deque(maxlen=HISTORY)
        self.rates: dict[str, float] = {}
        self.error: str | None = None
        self.down_since: float | None = None
        self._counts: tuple[Any, float, dict[str, int]] | None = None  # (pid, when, counts)

    def update(self, status: dict[str, Any], positions: list[dict[str, Any]],
               orders: list[dict[str, Any]], now: float) -> None:
        self.status, self.positions, self.orders = status, positions, orders
        self.error = self.down_since = None
        equity = _decimal(status.get("equity"))
        if equity is not None:
            self.equity.append(equity)
        counts = {str(k): int(v) for k, v in (status.get("events_by_type") or {}).items()}
        pid = status.get("pid")
        if self._counts is not None and self._counts[0] == pid and now > self._counts[1]:
            _, then, before = self._counts
            self.rates = {k: (n - before.get(k, 0)) / (now - then) for k, n in counts.items()}
        else:
            self.rates = {}  # a new daemon (or the first answer): rates from the next one
        self._counts = (pid, now, counts)

    def lost(self, error: str, now: float) -> None:
        self.error = error
        if self.down_since is None:
            self.down_since = now

    # -- the frame ----------------------------------------------------------------------

    def render(self, now: float | None = None) -> RenderableType:
        now = time.monotonic() if now is None else now
        parts: list[RenderableType] = [self._header(now)]
        if self.status is not None:
            body = Group(
                _side_by_side(self._equity(), self._flow()),
                _side_by_side(self._strategies(), self._venues()),
                self._positions(), self._orders(), self._fills(),
            )
            parts.append(Text("(last known state)", style="dim") if self.error else Text(""))
            parts.append(body)
        parts.append(Text(f"q quits · every {text(self.interval)}s · "
                          f"{time.strftime('%H:%M:%S')}", style="dim"))
        return Group(*parts)

    def _header(self, now: float) -> Text:
        if self.error is not None:
            down = int(now - (self.down_since or now))
            return Text(f" reconnecting to {self.url or 'the daemon'} ({down}s): {self.error} ",
                        style="bold white on red")
        s = self.status or {}
        head = Text("tapeloop top  ", style="bold")
        head.append(f"{self.url}  pid {s.get('pid')}  up {uptime(s.get('uptime_s') or 0)}  ")
        head.append(str(s.get("status")), style=_STATUS_STYLE.get(str(s.get("status")), ""))
        trading = s.get("trading_state")
        if trading:
            head.append("  trading ")
            head.append(str(trading).upper(), style=_TRADING_STYLE.get(str(trading), "bold"))
            if s.get("trading_reason"):
                head.append(f" ({s['trading_reason']})")
        return head

    def _equity(self) -> Table:
        s = self.status or {}
        grid = _panel("equity")
        currency = s.get("account_currency") or ""
        grid.add_row(Text(f"{text(s.get('equity'))} {currency}".strip(), style="bold"))
        if self.equity:
            grid.add_row(Text(sparkline(list(self.equity)), style="cyan"))
            grid.add_row(Text(f"low {min(self.equity)}  high {max(self.equity)}", style="dim"))
        unvalued = s.get("unvalued") or []
        if unvalued:
            grid.add_row(Text("left out: " + ", ".join(
                f"{u.get('balance')} {u.get('currency')}" for u in unvalued), style="yellow"))
        return grid

    def _flow(self) -> Table:
        s = self.status or {}
        grid = _panel("events and journal")
        grid.add_row(f"events {s.get('events_total')}  "
                     f"({text(s.get('events_per_second'))}/s)  fills {s.get('fills', 0)}  "
                     f"open orders {s.get('open_orders', 0)}")
        ranked = sorted(self.rates.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_RATES]
        if ranked:
            grid.add_row("  ".join(f"{name} {r:.1f}/s" for name, r in ranked))
        j = s.get("journal")
        if j:
            written, synced = j.get("written_seq"), j.get("synced_seq")
            lag = written - synced if isinstance(written, int) and isinstance(synced, int) else None
            grid.add_row(f"journal written {written}  synced {synced}  "
                         f"unsynced {text(lag)}  backlog {j.get('backlog_bytes')} B")
        return grid

    def _strategies(self) -> Table:
        s = self.status or {}
        strategies, pnl = s.get("strategies") or {}, s.get("pnl") or {}
        keys = ["realized", "unrealized", "fees", "pnl"]
        table = _table("strategies", ["STRATEGY", "STATUS", *(k.upper() for k in keys)],
                       right=2)
        for sid in sorted({*strategies, *pnl}):
            status = str(strategies.get(sid, "-"))
            table.add_row(sid, Text(status, style=_STATUS_STYLE.get(status, "")),
                          *(text(pnl.get(sid, {}).get(k)) for k in keys))
        return table

    def _venues(self) -> Table:
        table = _table("venues", ["VENUE", "STATUS", "RECONNECTS"], right=2)
        for name, v in sorted(((self.status or {}).get("venues") or {}).items()):
            status = str(v.get("status"))
            table.add_row(name, Text(status, style=_STATUS_STYLE.get(status, "")),
                          text(v.get("reconnects")))
        return table

    def _positions(self) -> RenderableType:
        cols = ["VENUE", "SYMBOL", "STRATEGY", "QTY", "AVG_PRICE", "MARK", "UNREALIZED",
                "REALIZED"]
        keys = ["venue", "symbol", "strategy_id", "qty", "avg_price", "mark", "unrealized_pnl",
                "realized_pnl"]
        return _rows("positions", cols, keys, self.positions, right=3, empty="no open positions")

    def _orders(self) -> RenderableType:
        cols = ["CLIENT_ORDER_ID", "STRATEGY", "SYMBOL", "SIDE", "TYPE", "QTY", "PRICE",
                "FILLED", "STATE"]
        keys = ["client_order_id", "strategy_id", "symbol", "side", "order_type", "qty", "price",
                "filled_qty", "state"]
        return _rows("open orders", cols, keys, self.orders, right=5, empty="no open orders")

    def _fills(self) -> RenderableType:
        fills = [dict(f, time=_clock(f.get("ts_event")),
                      fee_text=f"{f.get('fee')} {f.get('fee_currency')}")
                 for f in ((self.status or {}).get("last_fills") or [])[:MAX_FILLS]]
        cols = ["TIME", "STRATEGY", "SYMBOL", "SIDE", "QTY", "PRICE", "FEE", "LIQUIDITY"]
        keys = ["time", "strategy_id", "symbol", "side", "qty", "price", "fee_text", "liquidity"]
        return _rows("last fills", cols, keys, fills, right=4, empty="no fills yet")


def _clock(ts_ns: Any) -> str:
    if not isinstance(ts_ns, int):
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / 1e9)) + f".{ts_ns // 1_000_000 % 1000:03d}"


def _panel(title: str) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.title = title
    grid.title_justify = "left"
    grid.title_style = "bold"
    grid.add_column()
    return grid


def _table(title: str, columns: Sequence[str], *, right: int) -> Table:
    """A compact table; columns from index `right` on are right-aligned (numbers)."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_edge=False)
    for i, col in enumerate(columns):
        # fold, never "…": a narrow terminal must not cut digits off a number
        table.add_column(col, justify="right" if i >= right else "left", overflow="fold")
    return table


def _rows(title: str, cols: Sequence[str], keys: Sequence[str], rows: Sequence[dict[str, Any]],
          *, right: int, empty: str) -> RenderableType:
    if not rows:
        return Text(f"{title}: {empty}", style="dim")
    table = _table(title, cols, right=right)
    for row in rows[:MAX_ROWS]:
        table.add_row(*(text(row.get(k)) for k in keys))
    if len(rows) > MAX_ROWS:
        table.caption = f"and {len(rows) - MAX_ROWS} more"
    return table


def _side_by_side(left: RenderableType, right: RenderableType) -> Columns:
    # Side by side where the terminal is wide enough, else one under the other.
    return Columns([left, right], padding=(0, 4))
