"""Binance Spot user data stream: WS-API payloads into tapeloop order/balance events.

No I/O: the adapter feeds every text frame of the `userDataStream.subscribe[.signature]`
subscription to `UserStreamTranslator.translate(raw, ts_recv)` and publishes what
comes back. Reference: section 7 of `binance-spot-protocol.md`.

Wire shape. Events arrive wrapped, `{"subscriptionId":0,"event":{"e":...}}`; an
unwrapped `{"e":...}` payload (the retired listenKey stream) is accepted too. A
frame that is neither (a WS-API reply such as `{"id":1,"status":200,...}`) yields
`[]` and is counted under `"<no event>"` in `unknown`.

Mapping of `executionReport` (`x` execution type / `X` order status):

    x                 X                          event
    NEW               NEW | PENDING_NEW          OrderAccepted(venue_order_id=str(i))
    TRADE             PARTIALLY_FILLED | FILLED  Fill(trade_id=str(t), qty=l, price=L, fee=n,
                                                      fee_currency=N or "", side=S,
                                                      liquidity=MAKER if m else TAKER)
                                                 (no extra event on FILLED: the OMS
                                                 derives the state from the fills)
    CANCELED          CANCELED                   OrderCanceled(venue_order_id=str(i))
    EXPIRED           EXPIRED | EXPIRED_IN_MATCH OrderExpired(venue_order_id=str(i), reason)
    TRADE_PREVENTION  EXPIRED | EXPIRED_IN_MATCH OrderExpired (self-trade prevention)
    TRADE_PREVENTION  NEW | PARTIALLY_FILLED     nothing (STP DECREMENT: the order lives on
                                                 with less quantity; counted, reconcile)
    REJECTED          REJECTED                   OrderRejected(reason=r, code="")
    REPLACED          (unchanged)                OrderAmended(qty=q, price=p, trigger=P)
                                                 (the doc lists REPLACED only as an enum
                                                 value; this mapping is best effort)

The expiry reason (`eR`, or "SELF_TRADE_PREVENTION" for STP expiries) is the
`OrderExpired.reason`, and also kept in `last_expiry_reason[client_order_id]`.

Client order id: `C` (the original id) when it is non-empty, else `c` — on a cancel
`c` is the cancel request's own id. `strategy_id = strategy_of(client_order_id)`.
`ts_event` is the transaction time `T` (ms → ns) for executionReport and balanceUpdate,
the account update time `u` for outboundAccountPosition (falling back to `E`).

Balances. `outboundAccountPosition` yields one `BalanceChanged` per asset
(`total = f + l`, `free = f`, `locked = l`, reason "account"). `balanceUpdate` only
carries a signed delta (deposit, withdrawal, transfer) and is followed by an
`outboundAccountPosition` holding the absolute balance, so it yields no event: it is
kept as a `BalanceDelta` record in the bounded `balance_deltas` deque for
reconciliation (`drain_balance_deltas()`).

Duplicates and reordering. The stream may replay or reorder reports (reconnects,
REST reconciliation feeding the same translator):
- a report whose execution id `(s, I)` was already translated yields nothing;
- a Fill whose trade `(s, t)` was already translated is not emitted again; a new
  trade is always emitted, even after the order closed (a fill is a fact);
- every other report must move the order's state forwards, by rank
  PENDING_NEW = NEW < PARTIALLY_FILLED < FILLED = CANCELED = EXPIRED = REJECTED;
  one that does not yields nothing. So a NEW arriving after a TRADE emits no
  OrderAccepted — the fill already implied acceptance (and carries venue_order_id) —
  and a second terminal report (e.g. CANCELED after FILLED) is dropped.
  REPLACED is emitted only while the order is open.
All these memories are bounded: closed orders are forgotten after `max_closed` more
orders close, open orders beyond `max_open` are forgotten oldest first, and the
trade/execution id sets keep the last `max_ids`. A forgotten order's late duplicate
would be translated again; the OMS tolerates that by its own trade-id check.

Unknown event types (`eventStreamTerminated`, `listStatus`, ...) yield `[]` and are
counted in `unknown`. Malformed payloads raise `msgspec.DecodeError` /
`msgspec.ValidationError` for the caller to log and skip.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from decimal import Decimal

import msgspec

from events.base import Event
from events.orders import (
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
)
from events.state import BalanceChanged

MS = 1_000_000
MAKER = "MAKER"
TAKER = "TAKER"
STP_REASON = "SELF_TRADE_PREVENTION"
_ZERO = Decimal(0)


# -- wire structs (Binance field names) ----------------------------------------------


class UserStreamEnvelope(msgspec.Struct, gc=False):
    """`{"subscriptionId":0,"event":{...}}`; `e` is set instead on an unwrapped event."""

    subscriptionId: int | None = None
    event: msgspec.Raw = msgspec.Raw(b"")
    e: str = ""


class _Head(msgspec.Struct, gc=False):
    e: str = ""


class ExecutionReport(msgspec.Struct, gc=False):
    e: str
    E: int  # event time, ms
    s: str  # symbol
    c: str  # client order id (on a cancel: the cancel's id)
    S: str  # side
    o: str  # order type
    f: str  # time in force
    q: Decimal  # order qty
    p: Decimal  # price
    x: str  # execution type
    X: str  # order status
    i: int  # order id
    l: Decimal  # noqa: E741  last executed qty
    z: Decimal  # cumulative filled qty
    L: Decimal  # last executed price
    n: Decimal  # commission ("0" if none)
    T: int  # transaction time, ms
    t: int = -1  # trade id (-1 if no trade)
    N: str | None = None  # commission asset
    C: str = ""  # original client order id (cancels)
    r: str = "NONE"  # reject reason
    P: Decimal = _ZERO  # stop price
    I: int = -1  # noqa: E741  execution id
    m: bool = False  # maker side
    w: bool = False  # on book
    g: int = -1  # order list id
    Z: Decimal = _ZERO  # cumulative quote qty
    O: int = 0  # noqa: E741  creation time
    V: str = ""  # STP mode
    eR: str = ""  # expiry reason (since 2026-03-26)


class AccountBalance(msgspec.Struct, gc=False):
    a: str  # asset
    f: Decimal  # free
    l: Decimal  # noqa: E741  locked


class OutboundAccountPosition(msgspec.Struct, gc=False):
    e: str
    E: int
    u: int = 0  # last account update time, ms
    B: list[AccountBalance] = []


class BalanceUpdate(msgspec.Struct, gc=False):
    e: str
    E: int
    a: str  # asset
    d: Decimal  # signed delta
    T: int = 0  # clear time, ms


class BalanceDelta(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A `balanceUpdate`: a signed change of one asset, kept for reconciliation."""

    ts_event: int
    ts_recv: int
    venue: str
    currency: str
    delta: Decimal


_envelope = msgspec.json.Decoder(UserStreamEnvelope)
_head = msgspec.json.Decoder(_Head)
_execution_report = msgspec.json.Decoder(ExecutionReport)
_account_position = msgspec.json.Decoder(OutboundAccountPosition)
_balance_update = msgspec.json.Decoder(BalanceUpdate)


# -- order state ranks ---------------------------------------------------------------

_RANK = {
    "PENDING_NEW": 1,
    "NEW": 1,
    "PARTIALLY_FILLED": 2,
    "FILLED": 3,
    "CANCELED": 3,
    "PENDING_CANCEL": 2,
    "EXPIRED": 3,
    "EXPIRED_IN_MATCH": 3,
    "REJECTED": 3,
}
_TERMINAL = 3
_EXPIRED_STATUSES = frozenset({"EXPIRED", "EXPIRED_IN_MATCH"})


def default_strategy_of(client_order_id: str) -> str:
    """Our ids are "<strategy>-<n>": the text before the last "-" ("" if none)."""
    return client_order_id.rpartition("-")[0]


class _BoundedSet:
    """A set that remembers only its last `cap` insertions."""

    __slots__ = ("_cap", "_order", "_set")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._set: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def add(self, key: Hashable) -> bool:
        """Insert `key`; False if it was already there."""
        if key in self._set:
            return False
        self._set.add(key)
        self._order.append(key)
        if len(self._order) > self._cap:
            self._set.discard(self._order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __len__(self) -> int:
        return len(self._set)


class UserStreamTranslator:
    """Translates user-data-stream frames into events; see the module docstring."""

    def __init__(
        self,
        venue: str,
        strategy_of: Callable[[str], str] = default_strategy_of,
        *,
        max_open: int = 100_000,
        max_closed: int = 10_000,
        max_ids: int = 200_000,
        max_deltas: int = 10_000,
    ) -> None:
        self.venue = venue
        self.strategy_of = strategy_of
        self._max_open = max_open
        self._max_closed = max_closed
        self._rank: OrderedDict[tuple[str, object], int] = OrderedDict()  # open orders
        self._closed: OrderedDict[tuple[str, object], None] = OrderedDict()
        self._trades = _BoundedSet(max_ids)
        self._executions = _BoundedSet(max_ids)
        self.balance_deltas: deque[BalanceDelta] = deque(maxlen=max_deltas)
        self.last_expiry_reason: OrderedDict[str, str] = OrderedDict()
        self.unknown: Counter[str] = Counter()  # event types not translated
        self.dropped: Counter[str] = Counter()  # duplicate / stale reports, by kind

    # -- public ----------------------------------------------------------------------

    def translate(self, raw: bytes, ts_recv: int) -> list[Event]:
        env = _envelope.decode(raw)
        body: bytes | msgspec.Raw
        if env.event:
            body = env.event
            etype = _head.decode(body).e
        elif env.e:
            body, etype = raw, env.e
        else:
            self.unknown["<no event>"] += 1
            return []
        if etype == "executionReport":
            return self.translate_report(_execution_report.decode(body), ts_recv)
        if etype == "outboundAccountPosition":
            return self._account(_account_position.decode(body), ts_recv)
        if etype == "balanceUpdate":
            u = _balance_update.decode(body)
            self.balance_deltas.append(BalanceDelta(
                ts_event=(u.T or u.E) * MS, ts_recv=ts_recv, venue=self.venue,
                currency=u.a, delta=u.d,
            ))
            return []
        self.unknown[etype] += 1
        return []

    def drain_balance_deltas(self) -> list[BalanceDelta]:
        out = list(self.balance_deltas)
        self.balance_deltas.clear()
        return out

    def order_rank(self, symbol: str, order_id: int) -> int:
        """The furthest state seen for an order: 0 unknown, 1 open, 2 partially filled,
        3 closed."""
        return self._prev_rank((symbol, order_id))

    def _prev_rank(self, key: tuple[str, object]) -> int:
        if key in self._closed:
            return _TERMINAL
        return self._rank.get(key, 0)

    # -- executionReport ---------------------------------------------------------------

    def translate_report(self, m: ExecutionReport, ts_recv: int) -> list[Event]:
        """One execution report (from the stream, or built from a REST answer by
        `adapters.binance.rest_events`) through the same duplicate rules."""
        if m.I >= 0 and not self._executions.add((m.s, m.I)):
            self.dropped["execution"] += 1
            return []
        key: tuple[str, object] = (m.s, m.i if m.i >= 0 else (m.C or m.c))
        prev = self._prev_rank(key)
        new = _RANK.get(m.X, 0)
        cid = m.C or m.c
        ts_event = m.T * MS if m.T else m.E * MS
        x = m.x

        if x == "TRADE":
            self._advance(key, prev, new)
            if m.t < 0 or not self._trades.add((m.s, m.t)):
                self.dropped["trade"] += 1
                return []
            return [Fill(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=self.strategy_of(cid), client_order_id=cid,
                trade_id=str(m.t), side=m.S, qty=m.l, price=m.L, fee=m.n,
                fee_currency=m.N or "", liquidity=MAKER if m.m else TAKER,
                venue_order_id=str(m.i),
            )]

        if x == "REPLACED":
            if prev >= _TERMINAL:
                self.dropped["stale"] += 1
                return []
            self._advance(key, prev, new)
            return [OrderAmended(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=self.strategy_of(cid), client_order_id=cid, qty=m.q,
                price=m.p or None, trigger_price=m.P or None,
            )]

        if x == "TRADE_PREVENTION" and m.X not in _EXPIRED_STATUSES:
            # STP DECREMENT: the order lives on with reduced quantity.
            self.unknown["TRADE_PREVENTION/" + m.X] += 1
            return []

        if new <= prev:
            self.dropped["stale"] += 1
            return []
        self._advance(key, prev, new)
        sid = self.strategy_of(cid)
        if x == "NEW":
            return [OrderAccepted(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=sid, client_order_id=cid, venue_order_id=str(m.i),
            )]
        if x == "CANCELED":
            return [OrderCanceled(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=sid, client_order_id=cid, venue_order_id=str(m.i),
            )]
        if x in ("EXPIRED", "TRADE_PREVENTION"):
            stp = x == "TRADE_PREVENTION" or m.X == "EXPIRED_IN_MATCH"
            reason = m.eR or (STP_REASON if stp else "")
            self._remember_reason(cid, reason)
            return [OrderExpired(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=sid, client_order_id=cid, venue_order_id=str(m.i),
                reason=reason,
            )]
        if x == "REJECTED":
            return [OrderRejected(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, symbol=m.s,
                strategy_id=sid, client_order_id=cid, reason=m.r, code="",
            )]
        self.unknown["executionReport/" + x] += 1
        return []

    def _advance(self, key: tuple[str, object], prev: int, new: int) -> None:
        if new <= prev:
            return
        if new >= _TERMINAL:
            self._rank.pop(key, None)
            self._closed[key] = None
            if len(self._closed) > self._max_closed:
                self._closed.popitem(last=False)
            return
        self._rank[key] = new
        if len(self._rank) > self._max_open:
            self._rank.popitem(last=False)

    def _remember_reason(self, cid: str, reason: str) -> None:
        self.last_expiry_reason[cid] = reason
        self.last_expiry_reason.move_to_end(cid)
        if len(self.last_expiry_reason) > self._max_closed:
            self.last_expiry_reason.popitem(last=False)

    # -- balances ----------------------------------------------------------------------

    def _account(self, m: OutboundAccountPosition, ts_recv: int) -> list[Event]:
        ts_event = (m.u or m.E) * MS
        return [
            BalanceChanged(
                ts_event=ts_event, ts_recv=ts_recv, venue=self.venue, currency=b.a,
                total=b.f + b.l, free=b.f, locked=b.l, reason="account",
            )
            for b in m.B
        ]
