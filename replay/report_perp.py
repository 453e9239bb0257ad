"""The replay report's perpetual-futures section: funding, liquidations and
margin usage.

`PerpetualsReport` collects, during a replay, every `FundingPayment` and
`Liquidation` the bus carries and the account's margin usage at each equity
sample (`Portfolio.margin_usage()`: initial margin in use / margin balance,
account-wide, None when the account holds no perpetual). `section()` is
report.json's `perpetuals`:

  funding       {paid, received, net, currency, payments, by_currency, by_symbol}
                paid and received are positive sums (paid: amounts < 0), net =
                received - paid, exact decimal text. Funding is booked in each
                symbol's margin asset: `paid`/`received`/`net` and `currency` are
                those of the one currency when there is one, null with several
                (then `by_currency` states each; nothing is converted).
                by_symbol {symbol: {currency, paid, received, net, payments}}
  liquidations  [{ts_event, venue, symbol, side, qty, price, mark, fee,
                  fee_currency, strategy_id}] in event order
  margin_usage  {max, mean, samples, csv}: floats over the samples that had a
                value (null when none); the series is `margin.csv` beside
                equity.csv (ts, ts_ns, margin_usage as exact decimal text,
                empty where the portfolio had no value).

A run that saw no funding, no liquidation and no margin usage (spot only) has
no section and no margin.csv, so its report is what it was before perpetuals.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from events.perp import FundingPayment, Liquidation
from replay.metrics import ZERO

MARGIN_CSV = "margin.csv"


class PerpetualsReport:
    """Funding, liquidations and margin usage of one replay; see the module docstring.
    The hot path only appends."""

    def __init__(self) -> None:
        self._funding: list[FundingPayment] = []
        self._liquidations: list[Liquidation] = []
        self._usage_ts: list[int] = []
        self._usage: list[Decimal | None] = []
        self._any_usage = False

    def add_funding(self, payment: FundingPayment) -> None:
        self._funding.append(payment)

    def add_liquidation(self, liquidation: Liquidation) -> None:
        self._liquidations.append(liquidation)

    def add_margin_usage(self, ts_ns: int, usage: Decimal | None) -> None:
        """The account's margin usage at an equity sample (None: no value)."""
        self._usage_ts.append(ts_ns)
        self._usage.append(usage)
        self._any_usage = self._any_usage or usage is not None

    @property
    def empty(self) -> bool:
        """Nothing perpetual happened: the report has no such section."""
        return not (self._funding or self._liquidations or self._any_usage)

    def section(self, dec: Callable[[Decimal], str]) -> dict[str, Any] | None:
        """report.json's `perpetuals` (None when `empty`); `dec` is the report's
        exact decimal text. Call inside the report's exact Decimal context."""
        if self.empty:
            return None
        values = [u for u in self._usage if u is not None]
        floats = np.asarray([float(u) for u in values], dtype=np.float64)
        return {
            "funding": self._funding_json(dec),
            "liquidations": [
                {"ts_event": x.ts_event, "venue": x.venue, "symbol": x.symbol,
                 "side": x.side, "qty": dec(x.qty), "price": dec(x.price),
                 "mark": dec(x.mark), "fee": dec(x.fee), "fee_currency": x.fee_currency,
                 "strategy_id": x.strategy_id}
                for x in self._liquidations
            ],
            "margin_usage": {
                "max": float(floats.max()) if floats.size else None,
                "mean": float(floats.mean()) if floats.size else None,
                "samples": len(values),
                "csv": MARGIN_CSV,
            },
        }

    def _funding_json(self, dec: Callable[[Decimal], str]) -> dict[str, Any]:
        by_symbol: dict[str, _Sums] = {}
        by_currency: dict[str, _Sums] = {}
        for p in self._funding:
            by_symbol.setdefault(p.symbol, _Sums(p.currency)).add(p.amount)
            by_currency.setdefault(p.currency, _Sums(p.currency)).add(p.amount)
        one = next(iter(by_currency.values())) if len(by_currency) == 1 else None
        return {
            "payments": len(self._funding),
            "currency": one.currency if one else None,
            "paid": dec(one.paid) if one else None,
            "received": dec(one.received) if one else None,
            "net": dec(one.received - one.paid) if one else None,
            "by_currency": {c: s.json(dec) for c, s in sorted(by_currency.items())},
            "by_symbol": {sym: s.json(dec) for sym, s in sorted(by_symbol.items())},
        }

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """The margin usage samples that had a value: (ts ns, usage as floats),
        for the HTML chart."""
        keep = [(t, float(u)) for t, u in zip(self._usage_ts, self._usage, strict=True)
                if u is not None]
        return (np.asarray([t for t, _ in keep], dtype=np.int64),
                np.asarray([u for _, u in keep], dtype=np.float64))

    def write_csv(self, path: Path, dec: Callable[[Decimal], str],
                  iso: Callable[[int], str]) -> None:
        """margin.csv: every sample, exact; an empty cell where there was no value."""
        lines = ["ts,ts_ns,margin_usage"]
        lines += [f"{iso(t)},{t},{'' if u is None else dec(u)}"
                  for t, u in zip(self._usage_ts, self._usage, strict=True)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class _Sums:
    """Funding paid and received in one currency, and the number of payments."""

    __slots__ = ("currency", "paid", "payments", "received")

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.paid = ZERO
        self.received = ZERO
        self.payments = 0

    def add(self, amount: Decimal) -> None:
        self.payments += 1
        if amount < 0:
            self.paid -= amount
        else:
            self.received += amount

    def json(self, dec: Callable[[Decimal], str]) -> dict[str, Any]:
        return {"currency": self.currency, "paid": dec(self.paid),
                "received": dec(self.received), "net": dec(self.received - self.paid),
                "payments": self.payments}
