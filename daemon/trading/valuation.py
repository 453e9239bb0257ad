"""The portfolio's figures in the account currency and per currency: equity,
PnL, daily PnL and what cannot be valued. A base of `Portfolio`: it reads the
positions, balances and marks the fold keeps and changes none of them.

Each currency is converted into the account currency through the marks
(`daemon.trading.money.Converter`: an instrument linking it to the account
currency, a multi-hop path, or a configured rate). A currency with no such
conversion is *unvalued*: left out of the account's figures, listed by
`unvalued()`, and logged once per currency (`portfolio.unvalued`); it is never
counted at 1. `pnl_by_currency` and `daily_pnl_by_currency` give the figures
per currency, unconverted. A figure in the account currency is the sum of its
currencies' parts, each converted at the current marks: for an account whose
instruments are all quoted in the account currency nothing is converted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal, localcontext
from typing import Any

import structlog

from daemon.trading.average_cost import CTX, ZERO, Lot, tidy
from daemon.trading.money import Converter, Pnl, Unvalued

__all__ = ["Amounts", "Valuation"]

log = structlog.get_logger("tapeloop.portfolio")

Amounts = dict[tuple[str, str], Decimal]  # (venue, currency) -> amount


class Valuation:
    """Account-currency and per-currency queries over a portfolio's state."""

    # kept by the portfolio's fold (see `daemon.trading.portfolio`)
    account_currency: str | None
    _money: Converter
    _warned: set[str]
    _positions: dict[tuple[str, str], dict[str, Lot]]
    _balances: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]
    _quote: dict[tuple[str, str], str]
    _baselines: dict[tuple[str, str, str], Decimal]
    _fee_baselines: dict[tuple[str, str, str, str], Decimal]
    _now_ns: Callable[[], int]
    last_price: Callable[[str, str], Decimal | None]
    _roll_day: Callable[[int], None]
    perp_unrealized: Callable[[str | None], dict[tuple[str, str], Decimal]]
    has_any_position: Callable[[], bool]
    state_version: int
    mark_version: int
    _day: int | None
    _day_end: int
    # daily_pnls' last answer: ((strategy, state_version, day), mark_version or
    # None when the marks do not matter, the pair)
    _daily_pnls: tuple[tuple[str, int, int | None], int | None,
                       tuple[Decimal, Decimal]] | None = None

    def to_account(self, amount: Decimal, currency: str, venue: str) -> Decimal | None:
        """`amount` of `currency` (on `venue`) in the account currency, at the
        current marks; None when the currency cannot be valued."""
        if currency == self.account_currency:
            return amount
        return self._money.convert(amount, currency, venue)

    def why_unvalued(self, venue: str, currency: str) -> str:
        """Why `to_account` has no value for `currency`: one phrase."""
        return self._money.describe(venue, currency)

    def _in_account(self, account_part: Decimal, others: Amounts | None) -> Decimal:
        """account_part plus every other (venue, currency) amount converted; the
        unvalued ones are left out (and logged once per currency). Runs under
        `CTX`."""
        total = account_part
        if others:
            for (venue, currency), amount in sorted(others.items()):
                value = self._money.convert(amount, currency, venue)
                if value is None:
                    if amount:
                        self._warn_unvalued(venue, currency)
                    continue
                total += value
        return tidy(total)

    def _warn_unvalued(self, venue: str, currency: str) -> None:
        if currency not in self._warned:
            self._warned.add(currency)
            log.warning("portfolio.unvalued", currency=currency, venue=venue,
                        account_currency=self.account_currency,
                        reason=self._money.describe(venue, currency),
                        effect="left out of equity and PnL in the account currency")

    def _pnl_parts(self, strategy_id: str | None, venue: str | None, *, daily: bool,
                   split: bool = False) -> tuple[Decimal, Amounts | None]:
        """realized - fees + unrealized (since the day's start when `daily`) of
        the positions in scope: the account currency's part, and the other
        currencies' by (venue, currency) (every currency there when `split`).
        A plain loop (risk asks the daily figure on every evaluation while a
        position is open); runs under `CTX`."""
        return self._pnl_scopes(strategy_id, venue, daily=daily, split=split)[0]

    def _pnl_scopes(self, strategy_id: str | None, venue: str | None, *, daily: bool,
                    split: bool = False, also: str | None = None
                    ) -> list[tuple[Decimal, Amounts | None]]:
        """`_pnl_parts` for `strategy_id`'s scope and, with `also`, then for that
        strategy's own, in one pass: each scope adds the same values in the same
        order as its own pass would."""
        account = None if split else self.account_currency
        baselines, fee_baselines = self._baselines, self._fee_baselines
        quote = self._quote
        rows: list[list[Any]] = [[ZERO, None], [ZERO, None]]
        for key, by_sid in self._positions.items():
            v, s = key
            if venue is not None and v != venue:
                continue
            mark = self.last_price(v, s)
            currency = quote.get(key, "")
            for sid, pos in by_sid.items():
                if strategy_id is not None and sid != strategy_id:
                    continue
                value = pos.total(mark)
                if daily:
                    value -= baselines.get((v, s, sid), ZERO)
                fees = None
                if pos.other_fees:
                    fees = [(c, fee - fee_baselines.get((v, s, sid, c), ZERO) if daily else fee)
                            for c, fee in pos.other_fees.items()]
                _book(rows[0], account, v, currency, value, fees)
                if sid == also:
                    _book(rows[1], account, v, currency, value, fees)
        return [(rows[0][0], rows[0][1]), (rows[1][0], rows[1][1])]

    def pnl(self, strategy_id: str | None = None, venue: str | None = None) -> Decimal:
        """realized - fees + unrealized over the positions in scope, in the
        account currency (valued parts): a strategy's contribution to equity
        (the account's when `strategy_id` is None)."""
        with localcontext(CTX):
            total, others = self._pnl_parts(strategy_id, venue, daily=False)
            return self._in_account(total, others)

    def daily_pnl(self, strategy_id: str | None = None, venue: str | None = None) -> Decimal:
        """PnL since the start of the current UTC day, in the account currency
        (valued parts; see the module doc)."""
        self._roll_day(self._now_ns())
        with localcontext(CTX):
            total, others = self._pnl_parts(strategy_id, venue, daily=True)
            return self._in_account(total, others) if others else tidy(total)

    def daily_pnls(self, strategy_id: str) -> tuple[Decimal, Decimal]:
        """(`daily_pnl()`, `daily_pnl(strategy_id)`) in one pass over the positions:
        risk compares both with their limits on every order.

        Remembered until the state changes (`state_version`), the day rolls, or,
        when the figures depend on the marks (a position open anywhere, an amount
        in another currency to convert), a mark moves (`mark_version`): with every
        position flat the day's PnL is realized - fees, whatever the prices do."""
        now = self._now_ns()
        if now >= self._day_end:  # (else the day holds: what _roll_day would find)
            self._roll_day(now)
        key = (strategy_id, self.state_version, self._day)
        cached = self._daily_pnls
        if cached is not None and cached[0] == key \
                and (cached[1] is None or cached[1] == self.mark_version):
            return cached[2]
        with localcontext(CTX):
            (total, others), (own, own_others) = self._pnl_scopes(None, None, daily=True,
                                                                  also=strategy_id)
            pair = (self._in_account(total, others) if others else tidy(total),
                    self._in_account(own, own_others) if own_others else tidy(own))
        marks = self.mark_version if others or own_others or self.has_any_position() \
            else None
        self._daily_pnls = (key, marks, pair)
        return pair

    def daily_pnl_by_currency(self, strategy_id: str | None = None,
                              venue: str | None = None) -> dict[str, Decimal]:
        """PnL since the start of the current UTC day, per currency, unconverted."""
        self._roll_day(self._now_ns())
        out: dict[str, Decimal] = {}
        with localcontext(CTX):
            _none, parts = self._pnl_parts(strategy_id, venue, daily=True, split=True)
            for (_v, currency), amount in (parts or {}).items():
                out[currency] = out.get(currency, ZERO) + amount
        return {c: tidy(out[c]) for c in sorted(out)}

    def pnl_by_currency(self, strategy_id: str | None = None,
                        venue: str | None = None) -> dict[str, Pnl]:
        """Realized, unrealized and fees per currency (a position's in its
        quote currency, third-currency fees in theirs), unconverted."""
        by_key = self._pnl_by_key(strategy_id, venue)
        sums: dict[str, list[Decimal]] = {}
        with localcontext(CTX):
            for (_v, currency), row in by_key.items():
                total = sums.setdefault(currency, [ZERO, ZERO, ZERO, ZERO])
                for i in range(4):
                    total[i] += row[i]
        return {c: Pnl(realized=tidy(r), unrealized=tidy(u), fees=tidy(f), funding=tidy(fu))
                for c, (r, u, f, fu) in sorted(sums.items())}

    def pnl_summary(self, strategy_id: str | None = None, venue: str | None = None) -> Pnl:
        """Realized, unrealized and fees of the positions in scope, each
        converted into the account currency (valued currencies only)."""
        by_key = self._pnl_by_key(strategy_id, venue)
        realized: Amounts = {k: row[0] for k, row in by_key.items()}
        unrealized: Amounts = {k: row[1] for k, row in by_key.items()}
        fees: Amounts = {k: row[2] for k, row in by_key.items()}
        funding: Amounts = {k: row[3] for k, row in by_key.items()}
        with localcontext(CTX):
            return Pnl(realized=self._in_account(ZERO, realized),
                       unrealized=self._in_account(ZERO, unrealized),
                       fees=self._in_account(ZERO, fees),
                       funding=self._in_account(ZERO, funding))

    def _pnl_by_key(self, strategy_id: str | None, venue: str | None
                    ) -> dict[tuple[str, str], list[Decimal]]:
        """[realized, unrealized, fees, funding] per (venue, currency) over the
        positions in scope, in the order they first traded."""
        out: dict[tuple[str, str], list[Decimal]] = {}
        with localcontext(CTX):
            for (v, s), by_sid in self._positions.items():
                if venue is not None and v != venue:
                    continue
                mark = self.last_price(v, s)
                key = (v, self._quote.get((v, s), ""))
                for sid, pos in by_sid.items():
                    if strategy_id is not None and sid != strategy_id:
                        continue
                    row = out.setdefault(key, [ZERO, ZERO, ZERO, ZERO])
                    row[0] += pos.realized
                    row[1] += pos.unrealized(mark)
                    row[2] += pos.fees
                    row[3] += pos.funding
                    for c, fee in (pos.other_fees or {}).items():
                        out.setdefault((v, c), [ZERO, ZERO, ZERO, ZERO])[2] += fee
        return out

    def equity(self, venue: str | None = None) -> Decimal:
        """Balances valued in the account currency at the marks, plus the
        perpetual positions' unrealized PnL (a perpetual moves no base balance:
        its wallet holds what is realized), one venue or all; unvalued
        currencies are left out (see `unvalued`)."""
        account, rate = self.account_currency, self._money.rate
        total = ZERO
        amounts = dict(self._balances)
        for key, upnl in self.perp_unrealized(venue).items():
            held = amounts.get(key, (ZERO, ZERO, ZERO))
            amounts[key] = (held[0] + upnl, held[1], held[2])
        with localcontext(CTX):
            for (v, currency), (amount, _free, _locked) in amounts.items():
                if venue not in (None, v) or not amount:
                    continue
                if currency == account:
                    total += amount
                elif (value := rate(v, currency)) is not None:
                    total += amount * value  # exact: 60 digits hold any balance x price
                else:
                    self._warn_unvalued(v, currency)
            return tidy(total)

    def unvalued(self, venue: str | None = None) -> list[Unvalued]:
        """What the account holds or has booked in a currency with no value in
        the account currency: per (venue, currency), the balance and the PnL
        there. Empty when everything is valued."""
        held: dict[tuple[str, str], list[Decimal]] = {}
        for (v, currency), (amount, _free, _locked) in self._balances.items():
            if venue in (None, v) and amount:
                held.setdefault((v, currency), [ZERO, ZERO])[0] = amount
        with localcontext(CTX):
            _account, others = self._pnl_parts(None, venue, daily=False)
        for key, amount in (others or {}).items():
            if amount:
                held.setdefault(key, [ZERO, ZERO])[1] = tidy(amount)
        out = []
        for (v, currency), (amount, pnl) in sorted(held.items()):
            if currency != self.account_currency and self._money.rate(v, currency) is None:
                out.append(Unvalued(venue=v, currency=currency, balance=amount, pnl=pnl,
                                    reason=self._money.describe(v, currency)))
        return out

    def equity_by_strategy(self) -> dict[str, Decimal]:
        """Each strategy's contribution to equity (`pnl(strategy_id)`), by id, from
        one pass over the positions: a pass per strategy made every equity sample
        of a portfolio cost strategies x positions. Each strategy's figure adds the
        same values in the same order as `pnl(strategy_id)` (tests hold them equal)."""
        account, quote = self.account_currency, self._quote
        parts: dict[str, list[Any]] = {}  # sid -> [account part, other currencies]
        with localcontext(CTX):
            for key, by_sid in self._positions.items():
                v = key[0]
                mark = self.last_price(v, key[1])
                currency = quote.get(key, "")
                for sid, pos in by_sid.items():
                    row = parts.get(sid)
                    if row is None:
                        row = parts[sid] = [ZERO, None]
                    _book(row, account, v, currency, pos.total(mark),
                          pos.other_fees.items() if pos.other_fees else None)
            return {sid: self._in_account(*parts[sid]) for sid in sorted(parts)}

    def final_report(self, initial_equity: Decimal) -> dict[str, Any]:
        """The account at the end of a run, as `replay.report` takes it: positions
        and marks by symbol (summed over venues and strategies), realized PnL
        (gross of fees), unrealized PnL and fees in the account currency, the
        starting equity, the account currency, PnL per currency and what could
        not be valued."""
        positions: dict[str, Decimal] = {}
        marks: dict[str, Decimal] = {}
        with localcontext(CTX):
            for (venue, symbol), by_sid in self._positions.items():
                mark = self.last_price(venue, symbol)
                if mark is not None:
                    marks[symbol] = mark
                for pos in by_sid.values():
                    positions[symbol] = positions.get(symbol, ZERO) + pos.qty
        summary = self.pnl_summary()
        return {"positions": positions, "realized": summary.realized,
                "unrealized": summary.unrealized, "fees": summary.fees,
                "funding": summary.funding,
                "initial_equity": initial_equity, "marks": marks,
                "currency": self.account_currency, "pnl_by_currency": self.pnl_by_currency(),
                "unvalued": self.unvalued()}


def _book(row: list[Any], account: str | None, venue: str, currency: str, value: Decimal,
          fees: Iterable[tuple[str, Decimal]] | None) -> None:
    """Add a position's value (in `currency`) and its fees in other currencies to
    `row` = [the account currency's part, the other (venue, currency) amounts or
    None]; runs under `CTX`. Every PnL scope books its positions through here, so
    each adds the same values in the same order."""
    if currency == account:
        row[0] += value
    else:
        others = row[1] = {} if row[1] is None else row[1]
        others[(venue, currency)] = others.get((venue, currency), ZERO) + value
    if fees is not None:
        for c, fee in fees:
            if c == account:
                row[0] -= fee
            else:
                others = row[1] = {} if row[1] is None else row[1]
                others[(venue, c)] = others.get((venue, c), ZERO) - fee
