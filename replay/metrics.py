"""Performance metrics of a replay: the equity-series statistics and the
round-trip trade ledger behind `report.json`'s `metrics`.

Everything here is a pure function of its inputs (or, for `TradeLedger`, of
the fills fed to it in order), so the same replay gives the same numbers.
Series math runs in numpy float64; money sums run in `Decimal`.

Definitions (these are the contract `report.json` documents):

total_return
    final equity / initial equity - 1, with both equities exact `Decimal`s
    (final = initial + net PnL); null when the initial equity is not positive.

returns (the input of sharpe and sortino)
    The caller samples equity irregularly (e.g. once per minute of event time
    while events flow, and once at the end). The samples are resampled to a
    fixed period P: the period the caller sampled at, or, when not given, the
    median gap between consecutive samples. The grid is t0, t0 + P, ...,
    t0 + K*P with K = ceil((t_last - t0) / P), so the last grid point covers
    the final sample; each grid point takes the last sample at or before it
    (a quiet stretch with no samples reads as flat equity). Returns are
    simple: r_k = E_k / E_{k-1} - 1. Any non-positive equity on the grid makes
    returns (and so sharpe and sortino) undefined.

annualisation
    Crypto trades every day, so a year is 365 days of 86 400 s:
    periods_per_year = 365 * 86 400 s / P.

sharpe
    mean(r) / std(r, ddof=1) * sqrt(periods_per_year), risk-free rate 0.
    Null with fewer than two returns or when std is zero: flat equity has no
    ratio, and a std below 1e-12 is float noise on a constant series, not
    risk.

sortino
    mean(r) / DD * sqrt(periods_per_year), with the downside deviation
    DD = sqrt(mean(min(r, 0)^2)) over all n returns (target 0). Null with
    fewer than two returns or when no return is negative (DD = 0).

max_drawdown
    The largest peak-to-trough fall of the sampled equity (the raw samples,
    not the resampled grid, so no trough is skipped), as a positive fraction
    of the running peak: max_t (peak_t - E_t) / peak_t. 0.0 when equity never
    falls; null with no samples or no positive peak.

trades (round trips)
    Per (strategy, venue, symbol), fills are folded with average-cost
    accounting. A trade opens when the position leaves zero and closes when it
    returns to zero or flips sign; a flipping fill closes the old trade with
    the part that reaches zero and opens the next with the rest, its fee split
    between the two in proportion to quantity. A trade's PnL is the realized
    PnL over its life (sum of closed qty * (exit price - average cost), sign
    adjusted for shorts) minus all fees of its fills. Because the cost basis is
    carried as a sum and the last close removes exactly what remains, a round
    trip's PnL is exact however many partial closes it had. A position still
    open at the end is not a trade (its realized PnL still counts in the PnL
    breakdowns). Fees are taken to be in the quote currency.

win_rate
    winning trades (PnL > 0) / trades; a PnL of exactly zero is not a win.
    Null with no trades.

profit_factor
    gross profit / gross loss (sum of winning PnLs / |sum of losing PnLs|).
    Null when there is no losing trade (infinite or 0/0; JSON has no inf),
    0.0 when there are losses and no wins.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from events.orders import BUY, Fill

NS_PER_S = 1_000_000_000
YEAR_NS = 365 * 86_400 * NS_PER_S
# Below this a return series' std is float noise on a constant series.
STD_EPSILON = 1e-12

ZERO = Decimal(0)
# Decimal precision for the ledger and PnL sums: sums and products of exchange
# prices and quantities stay exact far beyond the default 28 digits, so only
# the pro-rata divisions of partial closes can round.
EXACT_PREC = 60


def exact_context() -> decimal.Context:
    """A Decimal context for `with decimal.localcontext(exact_context()):`."""
    return decimal.Context(prec=EXACT_PREC, rounding=decimal.ROUND_HALF_EVEN)


# -- equity series ---------------------------------------------------------------


def infer_period_ns(ts_ns: np.ndarray) -> int | None:
    """The median positive gap between samples, or None with fewer than two
    distinct timestamps. The median shrugs off the odd final, partial sample
    and the gaps where no events (so no samples) came."""
    gaps = np.diff(ts_ns)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return None
    return int(np.median(gaps))


def resample(ts_ns: np.ndarray, equity: np.ndarray, period_ns: int) -> np.ndarray:
    """Equity on the grid t0 + k*P, k = 0..ceil((t_last - t0)/P), each point the
    last sample at or before it. `ts_ns` must be non-decreasing."""
    if period_ns <= 0:
        raise ValueError(f"period must be positive, got {period_ns} ns")
    if ts_ns.size == 0:
        return np.empty(0)
    t0 = int(ts_ns[0])
    steps = -(-(int(ts_ns[-1]) - t0) // period_ns)  # ceil without float error
    grid = t0 + np.arange(steps + 1, dtype=np.int64) * period_ns
    idx = np.searchsorted(ts_ns, grid, side="right") - 1
    return equity[idx]


def simple_returns(values: np.ndarray) -> np.ndarray | None:
    """r_k = v_k / v_{k-1} - 1, or None when a base is not positive (a return
    on zero or negative equity means nothing)."""
    if values.size < 2:
        return np.empty(0)
    if np.any(values[:-1] <= 0):
        return None
    return values[1:] / values[:-1] - 1.0


def periods_per_year(period_ns: int) -> float:
    """365-day year (crypto never closes) divided by the sampling period."""
    return YEAR_NS / period_ns


def sharpe(returns: np.ndarray, per_year: float) -> float | None:
    """Annualised Sharpe ratio, risk-free 0, sample std (ddof=1); None when undefined."""
    if returns.size < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if not std > STD_EPSILON:
        return None
    return _finite(float(np.mean(returns)) / std * math.sqrt(per_year))


def sortino(returns: np.ndarray, per_year: float) -> float | None:
    """Annualised Sortino ratio, target 0, downside deviation over all returns."""
    if returns.size < 2:
        return None
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 0.0:
        return None
    return _finite(float(np.mean(returns)) / downside * math.sqrt(per_year))


def drawdowns(equity: np.ndarray) -> np.ndarray:
    """(running peak - equity) / running peak per sample, NaN while the peak is
    not positive (a fraction of nothing is undefined)."""
    if equity.size == 0:
        return np.empty(0)
    peak = np.maximum.accumulate(equity)
    out = np.full(equity.shape, np.nan)
    ok = peak > 0
    out[ok] = (peak[ok] - equity[ok]) / peak[ok]
    return out


def max_drawdown(dd: np.ndarray) -> float | None:
    """The largest drawdown of a `drawdowns` series, None if none is defined."""
    defined = dd[~np.isnan(dd)]
    if defined.size == 0:
        return None
    return float(defined.max())


def total_return(initial: Decimal, final: Decimal) -> float | None:
    """final / initial - 1, exact until the last conversion to float."""
    if initial <= 0:
        return None
    return float(final / initial - 1)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# -- round trips -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed trade: position from zero back to zero (or through it)."""

    strategy_id: str
    venue: str
    symbol: str
    direction: str  # LONG | SHORT
    opened_ns: int
    closed_ns: int
    max_qty: Decimal  # largest absolute position held during the trade
    fills: int  # fills that touched it (a flipping fill touches two trades)
    realized: Decimal  # gross of fees
    fees: Decimal

    @property
    def pnl(self) -> Decimal:
        return self.realized - self.fees


@dataclass(slots=True)
class Book:
    """Average-cost state of one (strategy, venue, symbol).

    `cost` is the signed sum of qty * price of the open position (negative for
    a short), so the average cost is cost / qty and the last close can take
    out exactly what is left. `realized` and `fees` are lifetime totals;
    `trade_*` belong to the open trade only.
    """

    qty: Decimal = ZERO
    cost: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0
    trade_realized: Decimal = ZERO
    trade_fees: Decimal = ZERO
    trade_fills: int = 0
    trade_opened_ns: int = 0
    trade_max_qty: Decimal = ZERO
    trade_direction: str = ""

    def unrealized(self, mark: Decimal) -> Decimal:
        """Open position marked at `mark`, against its average cost."""
        return self.qty * mark - self.cost


BookKey = tuple[str, str, str]  # (strategy_id, venue, symbol)


@dataclass(slots=True)
class TradeLedger:
    """Folds fills, in order, into per-(strategy, venue, symbol) books and the
    round trips they close."""

    books: dict[BookKey, Book] = field(default_factory=dict)
    closed: list[RoundTrip] = field(default_factory=list)

    def apply(self, fill: Fill) -> None:
        key = (fill.strategy_id, fill.venue, fill.symbol)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = Book()
        signed = fill.qty if fill.side == BUY else -fill.qty
        book.fills += 1
        book.fees += fill.fee
        if signed == 0:  # nothing traded; only the fee (if any) lands on the open trade
            book.trade_fees += fill.fee
            return
        remaining, fee = signed, fill.fee
        if book.qty != 0 and (book.qty > 0) != (signed > 0):
            # Reduces (and maybe flips) the position: the closing part first.
            closing = -book.qty if abs(signed) >= abs(book.qty) else signed
            closing_fee = fee if closing == signed else fee * abs(closing) / abs(signed)
            self._reduce(book, closing, fill.price, closing_fee)
            if book.qty == 0:
                self._close(book, key, fill.ts_event)
            remaining, fee = signed - closing, fee - closing_fee
            if remaining == 0:
                return
        if book.qty == 0:
            book.trade_opened_ns = fill.ts_event
            book.trade_direction = "LONG" if remaining > 0 else "SHORT"
        book.qty += remaining
        book.cost += remaining * fill.price
        book.trade_fees += fee
        book.trade_fills += 1
        book.trade_max_qty = max(book.trade_max_qty, abs(book.qty))

    @staticmethod
    def _reduce(book: Book, closing: Decimal, price: Decimal, fee: Decimal) -> None:
        # The last close removes the whole remaining cost, so rounding in the
        # partial closes' pro-rata division never survives a round trip.
        if closing == -book.qty:
            removed = book.cost
        else:
            removed = book.cost * abs(closing) / abs(book.qty)
        pnl = -closing * price - removed
        book.qty += closing
        book.cost -= removed
        book.realized += pnl
        book.trade_realized += pnl
        book.trade_fees += fee
        book.trade_fills += 1

    def _close(self, book: Book, key: BookKey, ts: int) -> None:
        strategy_id, venue, symbol = key
        self.closed.append(
            RoundTrip(
                strategy_id=strategy_id,
                venue=venue,
                symbol=symbol,
                direction=book.trade_direction,
                opened_ns=book.trade_opened_ns,
                closed_ns=ts,
                max_qty=book.trade_max_qty,
                fills=book.trade_fills,
                realized=book.trade_realized,
                fees=book.trade_fees,
            )
        )
        book.cost = ZERO
        book.trade_realized = ZERO
        book.trade_fees = ZERO
        book.trade_fills = 0
        book.trade_max_qty = ZERO


@dataclass(frozen=True, slots=True)
class TradeStats:
    trades: int
    wins: int
    gross_profit: Decimal
    gross_loss: Decimal  # positive

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def profit_factor(self) -> float | None:
        if self.gross_loss == 0:
            return None
        return float(self.gross_profit / self.gross_loss)


def trade_stats(trades: Iterable[RoundTrip]) -> TradeStats:
    """Count, winners, gross profit and gross loss of closed trades."""
    n = wins = 0
    profit = loss = ZERO
    for t in trades:
        n += 1
        pnl = t.pnl
        if pnl > 0:
            wins += 1
            profit += pnl
        elif pnl < 0:
            loss -= pnl
    return TradeStats(trades=n, wins=wins, gross_profit=profit, gross_loss=loss)


def equity_metrics(
    ts_ns: Sequence[int], equity: Sequence[Decimal], period_ns: int | None
) -> dict[str, float | int | None]:
    """sharpe, sortino and max_drawdown of a sampled equity curve, with the
    return period used (seconds) and the number of returns."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    eq = np.asarray([float(e) for e in equity], dtype=np.float64)
    period = period_ns if period_ns is not None else infer_period_ns(ts)
    out: dict[str, float | int | None] = {
        "sharpe": None,
        "sortino": None,
        "max_drawdown": max_drawdown(drawdowns(eq)),
        "return_period_s": period / NS_PER_S if period else None,
        "returns": 0,
    }
    if period:
        returns = simple_returns(resample(ts, eq, period))
        if returns is not None:
            per_year = periods_per_year(period)
            out["returns"] = int(returns.size)
            out["sharpe"] = sharpe(returns, per_year)
            out["sortino"] = sortino(returns, per_year)
    return out


def unrealized_by_book(
    books: Mapping[BookKey, Book], marks: Mapping[str, Decimal] | None
) -> dict[BookKey, Decimal | None]:
    """Each book's unrealized PnL: zero when flat, marked when a mark for its
    symbol is known, None (unknown) otherwise."""
    out: dict[BookKey, Decimal | None] = {}
    for key, book in books.items():
        if book.qty == 0:
            out[key] = ZERO
        elif marks is not None and key[2] in marks:
            out[key] = book.unrealized(marks[key[2]])
        else:
            out[key] = None
    return out
