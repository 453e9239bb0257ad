"""The simulated venue's perpetual margin account: one-way positions, leverage
and margin mode per symbol, funding and liquidation.

A perpetual instrument (`inst.perpetual`, linear: settled in `inst.settle`)
holds no base or quote: its fills move only the wallet, which is the venue's
balance of the settle currency (`Accounts.total`). Per symbol the book keeps
the signed net position in contracts (`qty`, also the venue's net position
that reduce-only orders check) and its signed entry cost (sum of qty x price
of the contracts still held: average entry = cost / qty, never divided out; a
partial close removes its share of the cost rounded to 1e-12),
each strategy's share of it (from its fills), the leverage and margin mode,
the funding booked since it opened (isolated margin) and the last funding
time paid.

Arithmetic is `events.margin`'s (exact Decimal): a fill that reduces a
position realizes contract_size x (side x closed x price - cost of the closed
part at average entry) into the wallet, the fee (maker/taker rate of the
notional, in the settle currency) leaves it. Margin figures are rounded up to
1e-12. Margin used, the `locked` of the
settle currency's BalanceChanged: each position's initial margin at entry
(|cost| x contract_size / leverage), plus, isolated, its funding since, plus
the open orders' reservations. Available = wallet - margin used (unrealized
PnL does not count: a restarted venue answers as the live one did before it
sees a mark again).

An order that increases |position| reserves, per contract, its initial margin
at its price (limit), trigger (stop) or the last price (market) plus the taker
fee there; one that only reduces reserves nothing. Refusals: not enough
available margin ("-2019"), leverage above the tier's max for the resulting
notional ("-2027"), and every order of an instrument whose contract_size is
not 1 (recorded, not traded). An order that increases the position reserves
its margin on its whole quantity, even the part that first closes the old side.

Funding: a `FundingRate` of the data venue pays every position held before
its `funding_ts` (once per funding time); a symbol that never saw one pays the
venue's constant `funding_rate` every `funding_interval` from 00:00 UTC, at
its first market event at or after each funding time. One `FundingPayment`
per strategy holding the symbol (their amounts sum exactly to the account's),
then the wallet's BalanceChanged.

Liquidation: at every mark (MarkPrice once the symbol has had one, else each
trade and bar close) of a symbol with a position: cross, the wallet plus the
unrealized PnL of every cross position of that settle currency at or below
their maintenance margin liquidates all of them; isolated, the position's
margin plus its unrealized PnL at or below its maintenance margin liquidates
it. A liquidation cancels the symbol's open orders (reason "liquidation"),
closes at the breaching mark, charges `liquidation_fee_pct` of the notional
capped at what margin is left (never below 0), and publishes one
`Liquidation` per strategy holding it, then the BalanceChanged.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal
from typing import Any

from events import margin as m
from events.base import Event
from events.instruments import Instrument, to_decimal
from events.orders import BUY, LIMIT, SELL, STOP_LIMIT, STOP_MARKET, TRAILING_STOP, OrderSubmitted
from events.perp import CROSS, ISOLATED, FundingPayment, Liquidation

ZERO = Decimal(0)
_BPS = Decimal(10_000)
FEE_QUANTUM = Decimal("1e-12")
NS_PER_HOUR = 3_600 * 1_000_000_000
INSUFFICIENT_MARGIN = "-2019"
LEVERAGE_TOO_HIGH = "-2027"


def _q(x: Decimal) -> Decimal:
    return m.CTX.quantize(x, FEE_QUANTUM)


def _up(x: Decimal) -> Decimal:
    # margin held is rounded up to the quantum: every sum of it stays exact
    return x.quantize(FEE_QUANTUM, rounding=ROUND_CEILING, context=m.CTX)


class Position:
    """One perpetual symbol's position at the venue (see the module doc)."""

    __slots__ = ("inst", "qty", "cost", "leverage", "mode", "funding", "paid", "settled",
                 "opened", "shares", "mark", "marks_seen", "rates_seen")

    def __init__(self, inst: Instrument, leverage: int = 1, mode: str = CROSS) -> None:
        self.inst = inst
        self.qty = ZERO  # signed contracts
        self.cost = ZERO  # signed: sum of qty x price of the contracts held
        self.leverage = leverage
        self.mode = mode
        self.funding = ZERO  # funding booked since the position opened (isolated margin)
        self.paid = 0  # the last funding time paid (or passed while flat)
        self.settled = 0  # the last funding time a payment was made for (journaled)
        self.opened = 0  # ts of the fill that opened it (funding before it is not owed)
        self.shares: dict[str, Decimal] = {}  # strategy_id -> signed contracts
        self.mark: Decimal | None = None  # the last mark seen
        self.marks_seen = False  # MarkPrice events come for it: they are its marks
        self.rates_seen = False  # FundingRate events come for it: no constant funding

    def trade(self, strategy: str, qty: Decimal, price: Decimal, ts: int) -> Decimal:
        """Apply a signed execution; returns the PnL it realizes (exact but for
        the 60-digit share of the cost a partial close removes)."""
        q, cost = self.qty, self.cost
        share = self.shares.get(strategy, ZERO) + qty
        if share:
            self.shares[strategy] = share
        else:
            self.shares.pop(strategy, None)
        realized = ZERO
        if q and (q > 0) != (qty > 0):
            closed = min(abs(qty), abs(q))
            # the closed part's share of the entry cost, to the quantum: the
            # wallet, the PnL and the cost left stay short exact decimals
            removed = cost if closed == abs(q) else _q(m.CTX.divide(
                m.CTX.multiply(cost, closed), abs(q)))
            side = 1 if q > 0 else -1
            realized = m.CTX.multiply(self.inst.contract_size,
                                      m.CTX.subtract(side * closed * price, removed))
            cost -= removed
        new = q + qty
        if new and (not q or (new > 0) != (q > 0)):
            # opened, or flipped: the new part enters at this price
            cost = new * price
            self.opened = ts
            self.funding = ZERO
        elif q and (q > 0) == (qty > 0):
            cost += qty * price
        if not new:
            cost = ZERO
            self.funding = ZERO
        self.qty, self.cost = new, cost
        return realized

    def initial(self) -> Decimal:
        """Initial margin at entry."""
        if not self.qty:
            return ZERO
        return _up(m.initial_margin(abs(self.cost) * self.inst.contract_size, self.leverage))

    def used(self) -> Decimal:
        """Margin this position holds: its initial margin, plus (isolated) the
        funding booked since it opened."""
        if not self.qty:
            return ZERO
        extra = self.funding if self.mode == ISOLATED else ZERO
        return self.initial() + extra

    def upnl(self, mark: Decimal) -> Decimal:
        return self.inst.contract_size * (self.qty * mark - self.cost)

    def maint(self, mark: Decimal) -> Decimal:
        return m.maintenance_margin(self.inst, m.notional(self.inst, self.qty, mark))


class MarginBook:
    """The venue's perpetual positions and what changes them (fills come
    through `ledger.Ledger.fill`; marks and funding through the venue)."""

    def __init__(self, venue: str, publish: Callable[[Event], object],
                 now_ns: Callable[[], int], ledger: Any, instruments: list[Instrument], *,
                 leverage: dict[str, int], margin_mode: dict[str, str],
                 funding_rate: float | None, funding_interval_h: float,
                 liquidation_fee_pct: float) -> None:
        self.venue = venue
        self.publish = publish
        self.now = now_ns
        self.ledger = ledger
        self.acc = ledger.acc
        self.fees = ledger.fees
        self.wanted = {i.symbol: (int(leverage.get(i.symbol, 1)),
                                  margin_mode.get(i.symbol, CROSS)) for i in instruments}
        self.pos = {i.symbol: Position(i) for i in instruments}
        self.const_rate = None if funding_rate is None else to_decimal(funding_rate)
        self.interval = round(to_decimal(funding_interval_h) * NS_PER_HOUR)
        self.liq_rate = to_decimal(liquidation_fee_pct) / Decimal(100)
        # per settle currency: what the wallet was at start and what changed it
        self.initial: dict[str, Decimal] = {}
        self.realized: dict[str, Decimal] = {}
        self.fees_paid: dict[str, Decimal] = {}
        self.funding: dict[str, Decimal] = {}

    # -- margin --------------------------------------------------------------

    def used(self, ccy: str) -> Decimal:
        """Margin the positions settled in `ccy` hold (open orders' margin is
        the venue's `locked`)."""
        return sum((p.used() for p in self.pos.values() if p.inst.settle == ccy), ZERO)

    def unit(self, p: Position, px: Decimal) -> Decimal:
        """Margin reserved per contract of an order at `px`: initial margin plus
        the taker fee there."""
        notional = px * p.inst.contract_size
        return _up(m.initial_margin(notional, p.leverage) + notional * self.fees.taker_rate)

    def arrival(self, symbol: str, sub: OrderSubmitted, last: Decimal | None
                ) -> tuple[str, Decimal, str | None, str]:
        """(currency, unit reserved per contract, refusal reason, code) of an
        arriving order; `last` is the last known price."""
        p = self.pos[symbol]
        ccy = p.inst.settle
        signed = -sub.qty if sub.side == SELL else sub.qty
        after = p.qty + signed
        if p.inst.contract_size != 1:
            # quantities in contracts of another size are recorded, not traded
            return ccy, ZERO, (f"{symbol} has contract_size {p.inst.contract_size}: "
                               "only contracts of 1 are traded"), ""
        if sub.reduce_only or abs(after) <= abs(p.qty):
            return ccy, ZERO, None, ""
        px = self.order_px(sub, last)
        if px is None:
            return ccy, ZERO, "no market price known to check a market order against", ""
        t = m.tier(p.inst, m.notional(p.inst, after, px))
        if p.leverage > t.max_leverage:
            return ccy, ZERO, (f"leverage {p.leverage} exceeds the maximum {t.max_leverage} "
                               f"for a {symbol} position of that size"), LEVERAGE_TOO_HIGH
        unit = self.unit(p, px)
        need, have = sub.qty * unit, self.available(ccy)
        if need > have:
            return ccy, unit, (f"insufficient margin: need {_plain(need)} {ccy}, "
                               f"available {_plain(have)}"), INSUFFICIENT_MARGIN
        return ccy, unit, None, ""

    @staticmethod
    def order_px(sub: OrderSubmitted, last: Decimal | None,
                 price: Decimal | None = None, trigger: Decimal | None = None
                 ) -> Decimal | None:
        otype = sub.order_type
        price = sub.price if price is None else price
        trigger = sub.trigger_price if trigger is None else trigger
        if otype in (LIMIT, STOP_LIMIT) and price is not None:
            return price
        if otype == STOP_MARKET and trigger is not None:
            return trigger
        if otype == TRAILING_STOP and trigger is not None:
            return trigger
        return last

    def available(self, ccy: str) -> Decimal:
        return self.acc.free(ccy) - self.used(ccy)

    # -- fills ---------------------------------------------------------------

    def fee(self, inst: Instrument, price: Decimal, qty: Decimal, liquidity: str) -> Decimal:
        return self.fees.fee(price * inst.contract_size, qty, liquidity)

    def on_fill(self, strategy: str, inst: Instrument, buy: bool, qty: Decimal,
                price: Decimal, fee: Decimal, ts: int) -> None:
        p = self.pos[inst.symbol]
        realized = p.trade(strategy, qty if buy else -qty, price, ts)
        ccy = inst.settle
        self.acc.add(ccy, realized - fee)
        self.acc.net[inst.symbol] = p.qty
        self.realized[ccy] = self.realized.get(ccy, ZERO) + realized
        self.fees_paid[ccy] = self.fees_paid.get(ccy, ZERO) + fee

    # -- funding -------------------------------------------------------------

    def on_rate(self, symbol: str, rate: Decimal, funding_ts: int, mark: Decimal | None,
                ts: int) -> None:
        p = self.pos[symbol]
        p.rates_seen = True
        self._fund(p, rate, funding_ts, mark, ts)

    def const_due(self, p: Position, ts: int, mark: Decimal | None) -> None:
        """Constant funding for the funding time at or before `ts`, if not paid,
        at `mark`."""
        rate = self.const_rate
        if rate is None or p.rates_seen or not self.interval:
            return
        due = ts - ts % self.interval
        if due > p.paid:
            self._fund(p, rate, due, mark, ts)

    def _fund(self, p: Position, rate: Decimal, funding_ts: int, mark: Decimal | None,
              ts: int) -> None:
        if funding_ts <= p.paid:
            return
        p.paid = funding_ts
        if not p.qty or funding_ts <= p.opened or mark is None:
            return
        inst = p.inst
        ccy = inst.settle
        total = ZERO
        for strategy, share in sorted(p.shares.items()):
            amount = m.funding(inst, share, mark, rate)
            total += amount
            self.publish(FundingPayment(
                ts_event=ts, ts_recv=self.now(), venue=self.venue, symbol=inst.symbol,
                amount=amount, currency=ccy, rate=rate, mark=mark, qty=share,
                funding_ts=funding_ts, strategy_id=strategy))
        p.funding += total
        p.settled = funding_ts
        self.acc.add(ccy, total)
        self.funding[ccy] = self.funding.get(ccy, ZERO) + total
        self.ledger.balance(ccy, ts, "funding")

    # -- marks and liquidation -------------------------------------------------

    def on_mark(self, p: Position, mark: Decimal, ts: int) -> None:
        """A mark of `p`'s symbol: liquidate if it breaches maintenance."""
        p.mark = mark
        if not p.qty:
            return
        if p.mode == ISOLATED:
            if m.breached(p.used() + p.upnl(mark), p.maint(mark)):
                self._liquidate([p], ts)
            return
        ccy = p.inst.settle
        cross = [q for q in self.pos.values()
                 if q.qty and q.mode == CROSS and q.inst.settle == ccy and q.mark is not None]
        balance = self.acc.total.get(ccy, ZERO) + sum((q.upnl(q.mark) for q in cross), ZERO)  # type: ignore[arg-type]
        maint = sum((q.maint(q.mark) for q in cross), ZERO)  # type: ignore[arg-type]
        if m.breached(balance, maint):
            self._liquidate(cross, ts)

    def _liquidate(self, victims: list[Position], ts: int) -> None:
        ledger = self.ledger
        ccy = victims[0].inst.settle
        for p in victims:
            st = ledger.symbols[p.inst.symbol]
            for order in list(st.open.values()):
                ledger.cancel(order, ts, "liquidation")
            st.busy = bool(st.open or st.pending)
        # what margin is left once every victim is closed at its mark
        if victims[0].mode == ISOLATED:
            left = victims[0].used() + victims[0].upnl(victims[0].mark)  # type: ignore[arg-type]
        else:
            left = self.acc.total.get(ccy, ZERO) + sum(
                (p.upnl(p.mark) for p in victims), ZERO)  # type: ignore[arg-type]
        left = max(left, ZERO)
        for p in victims:
            mark = p.mark
            assert mark is not None
            inst = p.inst
            fee = min(_q(m.notional(inst, p.qty, mark) * self.liq_rate), left)
            left -= fee
            # strategies may hold opposite shares of the net position: each
            # closes its own (its side), the fee is split by the size closed
            shares = sorted(p.shares.items())
            size = sum((abs(q) for _, q in shares), ZERO)
            rest = fee
            total_realized = ZERO
            for i, (strategy, share) in enumerate(shares):
                side = SELL if share > 0 else BUY
                part = rest if i == len(shares) - 1 else _q(
                    m.CTX.divide(m.CTX.multiply(fee, abs(share)), size))
                rest -= part
                total_realized += p.trade(strategy, -share, mark, ts)
                ledger.trade_id_next()
                self.publish(Liquidation(
                    ts_event=ts, ts_recv=self.now(), venue=self.venue, symbol=inst.symbol,
                    side=side, qty=abs(share), price=mark, mark=mark, fee=part,
                    fee_currency=ccy, trade_id=ledger.last_trade_id(), strategy_id=strategy))
            self.acc.add(ccy, total_realized - fee)
            self.acc.net[inst.symbol] = p.qty
            self.realized[ccy] = self.realized.get(ccy, ZERO) + total_realized
            self.fees_paid[ccy] = self.fees_paid.get(ccy, ZERO) + fee
        ledger.balance(ccy, ts, "liquidation")


    # -- audit -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Positions and the wallet's account, as comparable plain data."""
        return {
            "positions": {s: (p.qty, p.cost, p.funding, p.settled, p.opened if p.qty else 0,
                              p.leverage, p.mode, tuple(sorted(p.shares.items())))
                          for s, p in sorted(self.pos.items())},
            "wallet": {c: (self.initial.get(c), self.realized.get(c, ZERO),
                           self.fees_paid.get(c, ZERO), self.funding.get(c, ZERO))
                       for c in sorted({p.inst.settle for p in self.pos.values()})},
        }

    def violations(self, spot_currencies: set[str]) -> list[str]:
        """Broken invariants of the margin account, one line each."""
        out: list[str] = []
        for symbol, p in self.pos.items():
            if self.acc.net.get(symbol, ZERO) != p.qty:
                out.append(f"{symbol}: net position {self.acc.net.get(symbol, ZERO)} but "
                           f"the margin book holds {p.qty}")
            if sum(p.shares.values(), ZERO) != p.qty:
                out.append(f"{symbol}: strategies' shares {dict(p.shares)} do not sum to "
                           f"{p.qty}")
            if not p.qty and (p.cost or p.funding):
                out.append(f"{symbol}: flat with entry cost {p.cost}, funding {p.funding}")
        for c, initial in self.initial.items():
            if c in spot_currencies:
                continue  # spot fills move it too
            expect = (initial + self.realized.get(c, ZERO) - self.fees_paid.get(c, ZERO)
                      + self.funding.get(c, ZERO))
            if self.acc.total.get(c, ZERO) != expect:
                out.append(f"{c}: wallet {self.acc.total.get(c, ZERO)} but initial + "
                           f"realized - fees + funding = {expect}")
        return out


def _plain(x: Decimal) -> str:
    return format(x.normalize(), "f") if x else "0"
