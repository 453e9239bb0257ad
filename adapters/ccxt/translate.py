"""ccxt's unified order and trade dicts as our order events: the one translator.

Every source of order facts for a ccxt venue (`watch_orders`, `watch_my_trades`,
the answers of `create_order`/`cancel_order`/`fetch_order`, the polls and the
reconciliation's `fetch_open_orders`/`fetch_my_trades`) goes through one
`CcxtTranslator`, so the same fact reported twice, or facts arriving out of
order, change nothing:

- an order dict gives `OrderAccepted` (it carries the exchange's order id), then
  its end when its status is final: `canceled` → `OrderCanceled`, `expired` →
  `OrderExpired`, `rejected` → `OrderRejected`; `closed` (filled) ends through its
  fills. The fills an order dict embeds (`trades`) are translated as trades.
- a trade dict gives one `Fill` keyed by the exchange's trade id. ccxt's trades
  name the exchange order id, not ours: a trade whose order we have not learnt
  yet is kept and released when its order dict arrives (a `watch_my_trades`
  update racing its `watch_orders` update).
- numbers: ccxt parses the exchange's decimal text into floats; the float's
  shortest repr is that text again (up to 15 significant digits), so
  `Decimal(repr(x))` is exact, never binary noise (ccxt #663/#28408).

The translator remembers which facts it produced (bounded) and emits each once;
what the OMS already holds (a fill folded from the journal before a restart) is
filtered by the venue's `publish_orders`, as in the Binance adapter.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from typing import Any

from events.base import Event
from events.orders import Fill, OrderAccepted, OrderCanceled, OrderExpired, OrderRejected

MS = 1_000_000
_REMEMBER = 100_000  # facts remembered for deduplication (orders live far fewer)


def dec(x: Any) -> Decimal:
    """A ccxt number (float, int or decimal text) as the exact Decimal it was sent as."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, float):
        return Decimal(repr(x))
    return Decimal(str(x))


def ts_ns(ms: Any, fallback: int) -> int:
    """ccxt's millisecond timestamp as ns; `fallback` when the exchange gave none."""
    return int(ms) * MS if isinstance(ms, int | float) and ms > 0 else fallback


class _Seen:
    """The last `cap` keys added (oldest forgotten first)."""

    __slots__ = ("_cap", "_keys")

    def __init__(self, cap: int = _REMEMBER) -> None:
        self._cap = cap
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Insert `key`; False when it was there already."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._cap:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys


class CcxtTranslator:
    """Order and trade dicts of one venue → our events; see the module docstring.

    `strategy_of(client_order_id)` names the strategy owning one of our orders,
    or None for an order that is not ours (it is then not translated).
    `client_id_of(exchange order id)`: ours as the OMS learnt it (a previous
    process may have learnt it: this translator's own map starts empty)."""

    def __init__(self, venue: str, strategy_of: Callable[[str], str | None],
                 client_id_of: Callable[[str], str | None] = lambda oid: None) -> None:
        self.venue = venue
        self.strategy_of = strategy_of
        self.client_id_of = client_id_of
        self.client_ids: dict[str, str] = {}  # exchange order id -> our client order id
        self._waiting: dict[str, dict[str, dict[str, Any]]] = {}  # order id -> trades
        self._seen = _Seen()

    # -- orders -----------------------------------------------------------------------

    def orders(self, orders: Iterable[dict[str, Any]], ts_recv: int) -> list[Event]:
        out: list[Event] = []
        for o in orders:
            out.extend(self.order(o, ts_recv))
        return out

    def order(self, o: dict[str, Any], ts_recv: int) -> list[Event]:
        """Events for one ccxt order dict (and the trades it embeds)."""
        cid = o.get("clientOrderId") or ""
        oid = str(o.get("id") or "")
        if not cid and oid:
            cid = self.client_ids.get(oid, "")
        sid = self.strategy_of(cid) if cid else None
        if sid is None:
            return []
        symbol = o.get("symbol") or ""
        ts = ts_ns(o.get("lastUpdateTimestamp") or o.get("timestamp"), ts_recv)
        out: list[Event] = []
        status = o.get("status")
        if oid:
            self.client_ids[oid] = cid
            if status != "rejected" and self._seen.add(("accepted", cid)):
                out.append(OrderAccepted(ts_event=ts, ts_recv=ts_recv, venue=self.venue,
                                         symbol=symbol, strategy_id=sid, client_order_id=cid,
                                         venue_order_id=oid))
            # trades that came before their order: theirs now
            for t in self._waiting.pop(oid, {}).values():
                out.extend(self._fill(t, cid, sid, ts_recv))
        for t in o.get("trades") or ():
            # an answer's fills (binance FULL) carry neither side nor time: the order's
            out.extend(self._fill({**t, "order": oid, "symbol": t.get("symbol") or symbol,
                                   "side": t.get("side") or o.get("side"),
                                   "timestamp": t.get("timestamp")
                                   or o.get("lastTradeTimestamp")}, cid, sid, ts_recv))
        end = self._end(status, o, cid, sid, symbol, oid, ts, ts_recv)
        if end is not None and self._seen.add(("end", cid)):
            out.append(end)
        return out

    def _end(self, status: Any, o: dict[str, Any], cid: str, sid: str, symbol: str, oid: str,
             ts: int, ts_recv: int) -> Event | None:
        kw: dict[str, Any] = dict(ts_event=ts, ts_recv=ts_recv, venue=self.venue,
                                  symbol=symbol, strategy_id=sid, client_order_id=cid)
        if status == "canceled":
            return OrderCanceled(**kw, venue_order_id=oid, reason="canceled at the exchange")
        if status == "expired":
            return OrderExpired(**kw, venue_order_id=oid, reason="expired at the exchange")
        if status == "rejected":
            info = o.get("info")
            reason = f"rejected by the exchange: {info}"[:200] if info else \
                "rejected by the exchange"
            return OrderRejected(**kw, reason=reason)
        return None

    # -- trades -----------------------------------------------------------------------

    def trades(self, trades: Iterable[dict[str, Any]], ts_recv: int) -> list[Event]:
        out: list[Event] = []
        for t in trades:
            out.extend(self.trade(t, ts_recv))
        return out

    def trade(self, t: dict[str, Any], ts_recv: int) -> list[Event]:
        """A `Fill` for one ccxt trade dict of ours; none yet when its order is unknown."""
        oid = str(t.get("order") or "")
        cid = t.get("clientOrderId") or self.client_ids.get(oid, "") \
            or (self.client_id_of(oid) if oid else "") or ""
        if not cid:
            if oid and t.get("id") is not None:
                self._waiting.setdefault(oid, {})[str(t["id"])] = t
            return []
        if oid:
            self.client_ids.setdefault(oid, cid)
        sid = self.strategy_of(cid)
        return [] if sid is None else self._fill(t, cid, sid, ts_recv)

    def _fill(self, t: dict[str, Any], cid: str, sid: str, ts_recv: int) -> list[Event]:
        tid = t.get("id")
        if tid is None or not self._seen.add(("fill", self.venue, str(tid))):
            return []
        fee = t.get("fee") or {}
        side = str(t.get("side") or "").upper()
        liquidity = "MAKER" if t.get("takerOrMaker") == "maker" else "TAKER"
        return [Fill(
            ts_event=ts_ns(t.get("timestamp"), ts_recv), ts_recv=ts_recv, venue=self.venue,
            symbol=t.get("symbol") or "", strategy_id=sid, client_order_id=cid,
            trade_id=str(tid), side=side, qty=dec(t["amount"]), price=dec(t["price"]),
            fee=dec(fee.get("cost") or 0), fee_currency=fee.get("currency") or "",
            liquidity=liquidity, venue_order_id=str(t.get("order") or ""))]

    def last_fill_ms(self, trades: Iterable[dict[str, Any]]) -> int | None:
        """The latest timestamp among `trades` (for the next `since=`)."""
        stamps = [t["timestamp"] for t in trades if isinstance(t.get("timestamp"), int)]
        return max(stamps) if stamps else None
