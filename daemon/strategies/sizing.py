"""Position sizing: pure functions from account numbers to an order quantity.

Every function returns a non-negative `Decimal` rounded DOWN to `step` (never
more than the rule allows), and 0 when the rule says "don't trade". Inputs may
be Decimal, int or float; floats are taken at their shortest repr
(`events.instruments.to_decimal`), so `0.1` means one tenth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal

from events.instruments import to_decimal

__all__ = [
    "fixed",
    "fixed_fractional",
    "kelly_fraction",
    "capped_kelly",
    "optimal_f",
    "optimal_f_qty",
    "round_down",
    "volatility_target",
]

Number = Decimal | float | int


def round_down(qty: Number, step: Number) -> Decimal:
    """The largest multiple of `step` not above `qty` (and never below 0)."""
    q, s = to_decimal(qty), to_decimal(step)
    if s <= 0:
        raise ValueError(f"step must be positive, got {step!r}")
    if q <= 0:
        return Decimal(0)
    return (q / s).quantize(Decimal(1), rounding=ROUND_DOWN) * s


def fixed(qty: Number, step: Number) -> Decimal:
    """Always the same quantity (on the step grid)."""
    return round_down(qty, step)


def fixed_fractional(
    equity: Number, risk_fraction: Number, entry_price: Number, stop_price: Number, step: Number
) -> Decimal:
    """Risk `risk_fraction` of equity between entry and stop:
    qty = equity × risk_fraction / |entry - stop|."""
    distance = abs(to_decimal(entry_price) - to_decimal(stop_price))
    if distance == 0:
        raise ValueError("stop price equals entry price: the risk per unit is zero")
    return round_down(to_decimal(equity) * to_decimal(risk_fraction) / distance, step)


def volatility_target(
    equity: Number,
    price: Number,
    target_vol: Number,
    realised_vol: Number,
    step: Number,
    max_leverage: Number | None = None,
) -> Decimal:
    """Scale exposure so the position's volatility is `target_vol`:
    qty = target_vol / realised_vol × equity / price, with the notional capped at
    `max_leverage` × equity if given. Both vols in the same units (e.g. annualised)."""
    vol = to_decimal(realised_vol)
    if vol <= 0:
        return Decimal(0)  # no measured risk yet: no basis for a size
    leverage = to_decimal(target_vol) / vol
    if max_leverage is not None:
        leverage = min(leverage, to_decimal(max_leverage))
    return round_down(leverage * to_decimal(equity) / to_decimal(price), step)


def kelly_fraction(win_rate: Number, payoff: Number) -> Decimal:
    """Kelly's f* = p - (1 - p) / b for win probability p and payoff ratio b
    (average win / average loss). Negative means the bet has no edge."""
    p, b = to_decimal(win_rate), to_decimal(payoff)
    if not 0 <= p <= 1:
        raise ValueError(f"win_rate must be in [0, 1], got {win_rate!r}")
    if b <= 0:
        raise ValueError(f"payoff must be positive, got {payoff!r}")
    return p - (1 - p) / b


def capped_kelly(
    equity: Number,
    price: Number,
    win_rate: Number,
    payoff: Number,
    step: Number,
    cap: Number = Decimal("0.25"),
) -> Decimal:
    """Kelly sizing with the fraction clipped to [0, cap] (full Kelly is far too
    aggressive for estimated inputs): qty = f × equity / price."""
    f = min(max(kelly_fraction(win_rate, payoff), Decimal(0)), to_decimal(cap))
    return round_down(f * to_decimal(equity) / to_decimal(price), step)


def _log_twr(f: float, hprs: Sequence[float]) -> float:
    # log of Vince's terminal wealth relative: sum(log(1 + f × (-pnl / worst)))
    total = 0.0
    for h in hprs:
        x = 1.0 + f * h
        if x <= 0.0:
            return -math.inf
        total += math.log(x)
    return total


def optimal_f(pnls: Sequence[Number], tolerance: float = 1e-9) -> float:
    """Ralph Vince's optimal f: the f in (0, 1] maximising
    TWR(f) = prod(1 + f × (-pnl_i / worst_loss)) over past trade PnLs.

    Log TWR is concave in f, so a golden-section search finds the maximum.
    Raises ValueError without a losing trade (f is then unbounded).
    """
    values = [float(to_decimal(p)) for p in pnls]
    worst = min(values, default=0.0)
    if worst >= 0.0:
        raise ValueError("optimal f needs at least one losing trade")
    hprs = [p / -worst for p in values]
    lo, hi = 0.0, 1.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _log_twr(a, hprs), _log_twr(b, hprs)
    while hi - lo > tolerance:
        if fa < fb:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _log_twr(b, hprs)
        else:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _log_twr(a, hprs)
    f = (lo + hi) / 2.0
    # No edge: the best f is 0 (TWR only falls as f grows).
    return 0.0 if _log_twr(f, hprs) <= 0.0 else f


def optimal_f_qty(equity: Number, pnls: Sequence[Number], step: Number) -> Decimal:
    """Units to trade under optimal f: equity / (|worst loss per unit| / f).
    `pnls` are per-unit trade results (in the quote currency)."""
    f = optimal_f(pnls)
    if f == 0.0:
        return Decimal(0)
    worst = -min(to_decimal(p) for p in pnls)
    return round_down(to_decimal(equity) * to_decimal(f) / worst, step)
