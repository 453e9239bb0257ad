"""The USD-M user data stream and REST history into tapeloop events. No I/O.

Frames arrive unwrapped (`{"e": ..., ...}`) on `<streams>/ws/<listenKey>`.

    ORDER_TRADE_UPDATE   `o` rewritten as Spot's `ExecutionReport` and fed to
                         Spot's `UserStreamTranslator`, so acks, fills (trade id
                         `t`, commission `n` in `N`), cancels and expiries obey
                         the same duplicate rules as Spot's, stream and REST
                         alike. An order of type `LIQUIDATION`, or whose client
                         id starts "autoclose-" (Binance's ADL/liquidation
                         closes), is not ours: its executions become one
                         `Liquidation` per trade id, never a Fill.
    ACCOUNT_UPDATE       `B` sets `balances_wanted`: the stream carries the wallet
                         balance but not the available one (what open orders and
                         positions leave free), so the venue reads both from
                         `GET /fapi/v3/balance` (`balance_events`) rather than
                         publish a free balance that overstates what is free.
                         Reason FUNDING_FEE with exactly one position in `P` ->
                         FundingPayment(amount = the margin asset's `bc`); with
                         none or several (a cross account's funding names no
                         symbol) `income_wanted` is set and the venue reads the
                         income history instead.
    MARGIN_CALL          one line in `alerts` per position (the venue alerts).
    ACCOUNT_CONFIG_UPDATE `ac` -> LeverageChanged.
    listenKeyExpired     `expired` is set: the venue reconnects and reconciles.

Funding payments are identified by (symbol, funding time on the hour): both the
stream (`T`) and the income history (`time`) state the settlement a moment
after the funding hour, and a FundingPayment carries no Binance transfer id,
so this is the key that survives a restart (`seed_funding` with the journal's
payments). `rate`/`mark` are the last settled rate and mark the venue told us
(`note_rate`), or 0 when unknown (income history states neither).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec

from adapters.binance.user_stream import ExecutionReport, UserStreamTranslator, _BoundedSet
from events.base import Event
from events.perp import FundingPayment, LeverageChanged, Liquidation
from events.state import BalanceChanged

MS = 1_000_000
HOUR_MS = 3_600_000
_ZERO = Decimal(0)
AUTOCLOSE = "autoclose-"


class OrderUpdate(msgspec.Struct, gc=False):
    s: str
    c: str
    S: str
    o: str
    q: Decimal
    p: Decimal
    x: str
    X: str
    i: int
    l: Decimal  # noqa: E741
    z: Decimal
    L: Decimal
    T: int
    f: str = "GTC"
    n: Decimal = _ZERO
    N: str | None = None
    t: int = -1
    m: bool = False
    R: bool = False  # reduce only
    rp: Decimal = _ZERO  # realized profit of this trade
    ap: Decimal = _ZERO


class BalanceRow(msgspec.Struct, gc=False):
    a: str
    wb: Decimal
    cw: Decimal = _ZERO
    bc: Decimal = _ZERO


class PositionRow(msgspec.Struct, gc=False):
    s: str
    pa: Decimal
    ep: Decimal = _ZERO
    ps: str = "BOTH"


class AccountData(msgspec.Struct, gc=False):
    m: str
    B: list[BalanceRow] = []
    P: list[PositionRow] = []


class ConfigData(msgspec.Struct, gc=False):
    s: str = ""
    l: int = 0  # noqa: E741


class MarginCallRow(msgspec.Struct, gc=False):
    s: str
    pa: Decimal = _ZERO
    mp: Decimal = _ZERO
    mm: Decimal = _ZERO


class UserFrame(msgspec.Struct, gc=False):
    e: str = ""
    E: int = 0
    T: int = 0
    o: OrderUpdate | None = None
    a: AccountData | None = None
    ac: ConfigData | None = None
    p: list[MarginCallRow] = []
    cw: Decimal = _ZERO


_FRAME = msgspec.json.Decoder(UserFrame)


def funding_hour(ts_ms: int) -> int:
    """The funding time (ns) a settlement stamped `ts_ms` belongs to: Binance
    funds on the hour and states the settlement moments after it."""
    return ts_ms // HOUR_MS * HOUR_MS * MS


class UsdmUserTranslator:
    """Translates USD-M user-stream frames and REST history; see the module docstring."""

    def __init__(self, venue: str, spot: UserStreamTranslator | None = None) -> None:
        self.venue = venue
        self.orders = spot or UserStreamTranslator(venue)
        self._liquidations = _BoundedSet(100_000)
        self._funding = _BoundedSet(1_000_000)
        self.rates: dict[str, tuple[Decimal, Decimal]] = {}  # symbol -> (rate, mark)
        self.marks: dict[str, float] = {}  # symbol -> the last mark price streamed
        self.alerts: list[str] = []
        self.income_wanted = False
        self.balances_wanted = False
        self.expired = False
        self.unknown: dict[str, int] = {}

    # -- state the venue feeds in -----------------------------------------------------

    def seed_funding(self, payments: Iterable[FundingPayment]) -> None:
        """Payments already journaled: never published again."""
        for p in payments:
            self._funding.add((p.symbol, p.funding_ts))

    def note_rate(self, symbol: str, rate: Decimal, mark: Decimal) -> None:
        self.rates[symbol] = (rate, mark)

    # -- the stream -------------------------------------------------------------------

    def translate(self, raw: bytes, ts_recv: int) -> list[Event]:
        f = _FRAME.decode(raw)
        if f.e == "ORDER_TRADE_UPDATE" and f.o is not None:
            return self.order_update(f.o, f.E, ts_recv)
        if f.e == "ACCOUNT_UPDATE" and f.a is not None:
            return self._account(f.a, f.T or f.E, ts_recv)
        if f.e == "ACCOUNT_CONFIG_UPDATE" and f.ac is not None and f.ac.s:
            return [LeverageChanged(ts_event=(f.T or f.E) * MS, ts_recv=ts_recv,
                                    venue=self.venue, symbol=f.ac.s, leverage=f.ac.l)]
        if f.e == "MARGIN_CALL":
            for r in f.p:
                self.alerts.append(
                    f"margin call on {self.venue} {r.s}: position {r.pa}, mark {r.mp}, "
                    f"maintenance margin {r.mm}, cross wallet {f.cw}")
            return []
        if f.e == "listenKeyExpired":
            self.expired = True
            return []
        self.unknown[f.e or "<no event>"] = self.unknown.get(f.e or "<no event>", 0) + 1
        return []

    def order_update(self, o: OrderUpdate, event_ms: int, ts_recv: int) -> list[Event]:
        if o.o == "LIQUIDATION" or o.c.startswith(AUTOCLOSE):
            if o.x not in ("TRADE", "CALCULATED") or o.l <= 0 or not self._liquidations.add(
                    (o.s, o.t)):
                return []
            last = self.marks.get(o.s)
            mark = Decimal(repr(last)) if last else o.L  # the mark that breached, if known
            return [Liquidation(ts_event=o.T * MS, ts_recv=ts_recv, venue=self.venue,
                                symbol=o.s, side=o.S, qty=o.l, price=o.L, mark=mark,
                                fee=o.n, fee_currency=o.N or "", trade_id=str(o.t))]
        report = ExecutionReport(
            e="executionReport", E=event_ms, s=o.s, c=o.c, S=o.S, o=o.o, f=o.f, q=o.q, p=o.p,
            x="EXPIRED" if o.x == "EXPIRED" else o.x, X=o.X, i=o.i, l=o.l, z=o.z, L=o.L,
            n=o.n, T=o.T, t=o.t, N=o.N, m=o.m)
        return self.orders.translate_report(report, ts_recv)

    def _account(self, a: AccountData, ts_ms: int, ts_recv: int) -> list[Event]:
        out: list[Event] = []
        if a.m == "FUNDING_FEE":
            if len(a.P) == 1 and len(a.B) == 1:
                pos, bal = a.P[0], a.B[0]
                out += self._payment(pos.s, bal.bc, bal.a, pos.pa, ts_ms, ts_recv)
            else:
                self.income_wanted = True
        if a.B:
            self.balances_wanted = True
        return out

    def _payment(self, symbol: str, amount: Decimal, asset: str, qty: Decimal, ts_ms: int,
                 ts_recv: int) -> list[Event]:
        ts = funding_hour(ts_ms)
        if not self._funding.add((symbol, ts)):
            return []
        rate, mark = self.rates.get(symbol, (_ZERO, _ZERO))
        return [FundingPayment(ts_event=ts_ms * MS, ts_recv=ts_recv, venue=self.venue,
                               symbol=symbol, amount=amount, currency=asset, rate=rate,
                               mark=mark, qty=qty, funding_ts=ts)]

    # -- REST history -----------------------------------------------------------------

    def income(self, rows: list[dict[str, Any]], ts_recv: int,
               positions: dict[str, Decimal] | None = None) -> list[Event]:
        """`GET /fapi/v1/income?incomeType=FUNDING_FEE` rows (oldest first) as the
        payments not yet published. `positions`: the signed position per symbol
        when known (the payment's qty), else 0."""
        out: list[Event] = []
        for r in sorted(rows, key=lambda r: (int(r["time"]), int(r.get("tranId", 0)))):
            if r.get("incomeType", "FUNDING_FEE") != "FUNDING_FEE" or not r.get("symbol"):
                continue
            qty = (positions or {}).get(r["symbol"], _ZERO)
            out += self._payment(r["symbol"], Decimal(str(r["income"])), r["asset"], qty,
                                 int(r["time"]), ts_recv)
        self.income_wanted = False
        return out


def balance_events(venue: str, rows: list[dict[str, Any]], ts_ms: int, ts_recv: int,
                   assets: Iterable[str]) -> list[Event]:
    """`GET /fapi/v3/balance` (or v2) rows for `assets` as BalanceChanged:
    total = walletBalance, free = availableBalance, locked = total - free."""
    wanted = set(assets)
    out: list[Event] = []
    for r in rows:
        if r["asset"] not in wanted:
            continue
        total, free = Decimal(str(r["balance"])), Decimal(str(r["availableBalance"]))
        out.append(BalanceChanged(ts_event=ts_ms * MS, ts_recv=ts_recv, venue=venue,
                                  currency=r["asset"], total=total, free=free,
                                  locked=total - free, reason="reconcile"))
    return out


def positions_of(rows: list[dict[str, Any]]) -> dict[str, Decimal]:
    """`GET /fapi/v3/positionRisk` (or v2) rows: signed position per symbol
    (one-way mode: positionSide BOTH), zero positions left out."""
    out: dict[str, Decimal] = {}
    for r in rows:
        qty = Decimal(str(r["positionAmt"]))
        if qty != 0:
            out[r["symbol"]] = out.get(r["symbol"], _ZERO) + qty
    return out


def position_diff(venue: str, binance: dict[str, Decimal],
                  ours: dict[str, Decimal]) -> list[str]:
    """One line per symbol whose position Binance and our fold disagree on."""
    return [f"{venue} {s}: Binance holds {binance.get(s, _ZERO)} contracts, our fills "
            f"add up to {ours.get(s, _ZERO)}"
            for s in sorted(set(binance) | set(ours))
            if binance.get(s, _ZERO) != ours.get(s, _ZERO)]
