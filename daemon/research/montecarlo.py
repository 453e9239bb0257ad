"""Monte Carlo of a run's closed trades: a seeded bootstrap of their PnLs.

The method (`monte_carlo`): a run closed n round trips with PnLs p_1..p_n (net of
fees, in the account currency). One path draws n trades from them uniformly with
replacement (`Generator(PCG64(seed)).integers`, path after path) and applies them in
the drawn order to the initial equity E: equity_k = E + p_(1) + ... + p_(k). Per
path: the final return equity_n / E - 1 and the max drawdown, the largest
(running peak - equity) / running peak with the peak starting at E (a positive
fraction, as report.json's `metrics.max_drawdown`; it exceeds 1 when equity goes
below zero). Over all paths: the 5th, 25th, 50th, 75th and 95th percentiles of
both (numpy's linear interpolation), the probability of a loss (the share of paths
ending below E), a 20-bin histogram of the final returns, and the observed path
(the trades in the order they closed) for comparison.

The bootstrap keeps each trade's size and sign and forgets their order: it shows how
much of the curve was the luck of the sequence, not whether the edge is real.

Exact and the same on every machine: the PnLs are scaled to integers (their decimal
places), so every path's equity is an exact int64 sum; floats appear only in the
final divisions, which IEEE 754 rounds the same everywhere, and in percentiles of
those. The paths are drawn in fixed-size chunks (bounded memory) from one stream, so
a seed gives the same numbers whatever the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from numbers import Integral
from typing import Any, Protocol

import numpy as np

PERCENTILES = (5, 25, 50, 75, 95)
# Each path keeps 24 bytes (final PnL, return, drawdown): a million is 24 MB and a
# few seconds; more would say nothing a million does not.
MAX_RUNS = 1_000_000
HISTOGRAM_BINS = 20
METHOD = "bootstrap of closed-trade PnLs, with replacement, same count per path"

# Paths are drawn and reduced this many cells (paths x trades) at a time: about
# 16 MB of int64 per array, whatever the number of paths.
_CHUNK_CELLS = 2_000_000
# Scaled PnLs and initial equity stay below this, so no int64 path sum overflows.
_INT_LIMIT = 2**62
_MAX_PLACES = 18


def monte_carlo(trade_pnls: Sequence[Decimal], initial_equity: Decimal, runs: int,
                seed: int) -> dict[str, Any]:
    """The bootstrap of `trade_pnls` (see the module docstring) over `runs` paths
    drawn with `seed`. JSON-able: percentiles under "p5".."p95" (floats); with fewer
    than 2 trades or a non-positive initial equity there is nothing to resample,
    the figures are None and "note" says why."""
    if isinstance(runs, bool) or not isinstance(runs, Integral) or not 1 <= runs <= MAX_RUNS:
        raise ValueError(f"runs must be an integer from 1 to {MAX_RUNS:,}, got {runs!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    runs, seed = int(runs), int(seed)  # numpy integers too, as plain ints in the result
    pnls = [Decimal(p) for p in trade_pnls]
    n = len(pnls)
    equity = Decimal(initial_equity)
    if equity <= 0:
        return _empty(runs, seed, n, equity, f"initial equity {_text(equity)} is not positive")
    if n < 2:
        return _empty(runs, seed, n, equity,
                      f"{n} closed trade{'' if n == 1 else 's'}: at least 2 are needed "
                      "to resample")
    scaled, e = _scaled(pnls, equity)
    rng = np.random.Generator(np.random.PCG64(seed))
    finals = np.empty(runs, dtype=np.int64)
    max_dd = np.empty(runs, dtype=np.float64)
    rows = max(1, _CHUNK_CELLS // n)
    for start in range(0, runs, rows):
        stop = min(runs, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int64)
        finals[start:stop], max_dd[start:stop] = _paths(scaled[idx], e)
    returns = finals.astype(np.float64) / float(e)
    observed_final, observed_dd = _paths(scaled[np.newaxis, :], e)
    counts, edges = np.histogram(returns, bins=HISTOGRAM_BINS)
    return {
        "method": METHOD,
        "runs": runs,
        "seed": seed,
        "trades": n,
        "initial_equity": _text(equity),
        "note": None,
        "final_return": _percentiles(returns),
        "max_drawdown": _percentiles(max_dd),
        "loss_probability": float(np.count_nonzero(finals < 0)) / runs,
        "observed": {"final_return": float(observed_final[0]) / float(e),
                     "max_drawdown": float(observed_dd[0])},
        "histogram": {"edges": [float(x) for x in edges],
                      "counts": [int(c) for c in counts]},
    }


class _Trade(Protocol):
    """What a closed trade needs to be resampled (read-only, as `RoundTrip` has it)."""

    @property
    def venue(self) -> str: ...

    @property
    def symbol(self) -> str: ...

    @property
    def pnl(self) -> Decimal: ...


def monte_carlo_of_trades(trades: Iterable[_Trade], settlement: Callable[[str, str], str | None],
                          account_currency: str | None, initial_equity: Decimal, runs: int,
                          seed: int) -> dict[str, Any]:
    """`monte_carlo` of a run's round trips (`replay.metrics.RoundTrip`s, in the
    order they closed). `settlement(venue, symbol)` is the currency a trade's PnL
    is in; PnLs in another currency than the account's are not converted (no rate
    is valued at 1), so such a run gets a result with a note instead."""
    trades = list(trades)
    foreign = sorted({c or "?" for t in trades
                      if (c := settlement(t.venue, t.symbol)) != account_currency})
    if account_currency is None or foreign:
        why = (f"trade PnLs in {', '.join(foreign)}, not the account currency "
               f"{account_currency}: not resampled" if account_currency is not None
               else "no account currency: trade PnLs are not resampled")
        return _empty(runs, seed, len(trades), Decimal(initial_equity), why)
    return monte_carlo([t.pnl for t in trades], initial_equity, runs, seed)


def parse_runs(text: str, option: str = "--monte-carlo") -> int:
    """A positive path count from the command line; ValueError is one line."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: not a positive integer") from None
    if value < 1:
        raise ValueError(f"{option} {text!r}: not a positive integer")
    if value > MAX_RUNS:
        raise ValueError(f"{option} {text!r}: at most {MAX_RUNS:,} paths")
    return value


def parse_seed(text: str, option: str = "--mc-seed") -> int:
    """A seed from the command line: an integer from 0 to 2**64 - 1."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: not an integer from 0 to 2**64-1") from None
    if not 0 <= value < 2**64:
        raise ValueError(f"{option} {text!r}: not an integer from 0 to 2**64-1")
    return value


# -- internals ---------------------------------------------------------------------------


def _paths(pnl: np.ndarray, e: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's final PnL (exact int64) and max drawdown, for paths of scaled
    PnLs starting at scaled equity `e`."""
    equity = np.cumsum(pnl, axis=1, dtype=np.int64)
    equity += e
    peak = np.maximum.accumulate(equity, axis=1)
    np.maximum(peak, e, out=peak)  # the peak starts at the initial equity
    dd = (peak - equity).astype(np.float64)
    dd /= peak  # peak >= e > 0
    return equity[:, -1] - e, dd.max(axis=1)


def _scaled(pnls: list[Decimal], equity: Decimal) -> tuple[np.ndarray, int]:
    """The PnLs and the equity as integers of one unit (10**-places), with as many
    places as the most precise of them has, fewer only if the path sums could
    overflow int64 (then rounded half-even to the places that fit)."""
    places = min(_MAX_PLACES, max(_places(x) for x in (*pnls, equity)))
    biggest = max(abs(x) for x in pnls)
    while places > 0 and (abs(equity) + biggest * len(pnls)).scaleb(places) >= _INT_LIMIT:
        places -= 1
    unit = Decimal(1).scaleb(-places)
    ints = [int(p.quantize(unit).scaleb(places)) for p in pnls]
    e = int(equity.quantize(unit).scaleb(places))
    if abs(e) + max(abs(i) for i in ints) * len(ints) >= _INT_LIMIT:
        raise ValueError("trade PnLs too large to resample exactly")
    return np.asarray(ints, dtype=np.int64), e


def _places(x: Decimal) -> int:
    exponent = x.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _percentiles(values: np.ndarray) -> dict[str, float]:
    qs = np.percentile(values, PERCENTILES)
    return {f"p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)}


def _empty(runs: int, seed: int, trades: int, equity: Decimal, note: str) -> dict[str, Any]:
    none = {f"p{p}": None for p in PERCENTILES}
    return {"method": METHOD, "runs": runs, "seed": seed, "trades": trades,
            "initial_equity": _text(equity), "note": note, "final_return": dict(none),
            "max_drawdown": dict(none), "loss_probability": None, "observed": None,
            "histogram": None}


def _text(x: Decimal) -> str:
    return format(abs(x) if x == 0 else x, "f")
