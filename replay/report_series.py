"""The report's derived series: per traded symbol, the price sampled at each
equity sample and the fills to mark on it (entry or exit); the buy-and-hold
benchmark; the returns per UTC day.

All of it is computed once in `ReportBuilder.write` from what the builder
already holds (the fills, the equity samples and the marks taken beside
them): nothing here runs per market event.

Benchmark: the initial equity split equally over the traded symbols quoted in
the account currency, each share bought at the symbol's first sampled mark
(held as cash until the symbol has one) and valued at each sample's mark
(the last known one when a sample has none), to 1e-8 of the currency. A symbol quoted in another
currency is left out rather than valued at 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import numpy as np

from events.orders import Fill
from replay.metrics import exact_context

NS_PER_DAY = 86_400 * 1_000_000_000
# The benchmark's units are a non-terminating quotient: its values are stated
# to 1e-8 of the account currency (more than any currency's minor unit).
BENCHMARK_QUANTUM = Decimal("1e-8")


@dataclass(frozen=True, slots=True)
class FillMark:
    """One fill as drawn on its symbol's price chart."""

    ts_ns: int
    price: float
    side: str  # BUY | SELL
    kind: str  # entry (opens or adds to a position) | exit (reduces, closes or flips it)
    qty: str
    strategy_id: str


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """A traded symbol's sampled marks (float, for drawing) and its fills."""

    symbol: str
    ts_ns: np.ndarray
    price: np.ndarray
    fills: list[FillMark]


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Buy and hold of the traded symbols: its value at each equity sample."""

    symbols: list[str]
    first_prices: dict[str, Decimal]
    values: list[Decimal]

    def json(self, dec: Callable[[Decimal], str], initial: Decimal) -> dict[str, object]:
        final = self.values[-1]
        with localcontext(exact_context()):
            ret = float(final / initial - 1) if initial else None
        return {
            "symbols": self.symbols,
            "first_prices": {s: dec(p) for s, p in self.first_prices.items()},
            "final_equity": dec(final),
            "total_return": ret,
        }


def traded_symbols(fills: Sequence[Fill]) -> list[str]:
    return sorted({f.symbol for f in fills})


def price_series(
    fills: Sequence[Fill], ts_ns: Sequence[int], marks: Sequence[Mapping[str, Decimal] | None]
) -> list[PriceSeries]:
    """Per traded symbol (sorted), its sampled marks and its fills, each fill
    classed entry or exit by the symbol's net position (all strategies)."""
    out = []
    for symbol in traded_symbols(fills):
        pts = [(t, float(m[symbol])) for t, m in zip(ts_ns, marks, strict=True)
               if m is not None and m.get(symbol) is not None]
        pos = Decimal(0)
        drawn = []
        for f in fills:
            if f.symbol != symbol:
                continue
            delta = f.qty if f.side == "BUY" else -f.qty
            kind = "entry" if pos == 0 or (pos > 0) == (delta > 0) else "exit"
            pos += delta
            drawn.append(FillMark(f.ts_event, float(f.price), f.side, kind, format(f.qty, "f"),
                                  f.strategy_id))
        out.append(PriceSeries(
            symbol,
            np.asarray([t for t, _ in pts], dtype=np.int64),
            np.asarray([p for _, p in pts], dtype=np.float64),
            drawn,
        ))
    return out


def benchmark(
    fills: Sequence[Fill],
    marks: Sequence[Mapping[str, Decimal] | None],
    initial: Decimal,
    quotes: Mapping[str, str] | None,
    currency: str | None,
) -> Benchmark | None:
    """Buy and hold (see the module docstring) at each equity sample; None when
    no traded symbol in the account currency was ever marked."""
    symbols = [s for s in traded_symbols(fills)
               if quotes is None or (currency is not None and quotes.get(s) == currency)]
    first: dict[str, Decimal] = {}
    for m in marks:
        for s in symbols:
            if s not in first and m is not None and m.get(s) is not None:
                first[s] = m[s]
    symbols = [s for s in symbols if s in first]
    if not symbols:
        return None
    values = []
    with localcontext(exact_context()):
        share = initial / len(symbols)
        held = {s: share / first[s] for s in symbols}  # units bought at the first mark
        last: dict[str, Decimal] = {}
        value = Decimal(0)
        changed = True  # the first sample is always valued
        for m in marks:
            if m is not None:
                for s in symbols:
                    mark = m.get(s)
                    if mark is not None and last.get(s) != mark:
                        last[s] = mark
                        changed = True
            if changed:  # (a night's samples repeat their marks: most rows reuse the value)
                value = sum((held[s] * last[s] if s in last else share for s in symbols),
                            Decimal(0)).quantize(BENCHMARK_QUANTUM)
                changed = False
            values.append(value)
    return Benchmark(symbols, {s: first[s] for s in symbols}, values)


def daily_returns(
    ts_ns: Sequence[int], equity: Sequence[Decimal], dec: Callable[[Decimal], str]
) -> list[dict[str, object]]:
    """Per UTC day with samples: its closing equity (the day's last sample) and
    its return against the previous day's close (the first sample for the
    first day; null when that is zero)."""
    closes: list[tuple[int, Decimal]] = []
    for t, e in zip(ts_ns, equity, strict=True):
        day = t // NS_PER_DAY
        if closes and closes[-1][0] == day:
            closes[-1] = (day, e)
        else:
            closes.append((day, e))
    out: list[dict[str, object]] = []
    prev = equity[0] if equity else Decimal(0)
    with localcontext(exact_context()):
        for day, close in closes:
            out.append({
                "date": datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d"),
                "equity": dec(close),
                "return": float(close / prev - 1) if prev else None,
            })
            prev = close
    return out
