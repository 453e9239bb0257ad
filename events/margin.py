"""Perpetual margin arithmetic: linear (USDT-margined) contracts, one-way positions.

Pure, exact `Decimal` functions shared by the portfolio (the account's view),
the simulated venue (which liquidates) and the risk checks, so the three agree
to the last digit. Binance USD-M's rules, for a signed position `qty` (in
contracts of `contract_size` base units) entered at average price `entry`:

- notional             = |qty| x contract_size x price
- unrealized PnL       = qty x contract_size x (mark - entry)
- initial margin       = notional at entry / leverage
- maintenance margin   = notional at mark x maint_rate - maint_amount, with the
                         rate and amount of the tier the notional falls in
                         (Binance's leverage brackets; `maint_amount` is `cum`)
- funding received     = -(qty x contract_size x mark x rate): with a positive
                         rate longs pay and shorts receive
- cross margin: the margin balance is the wallet plus the unrealized PnL of
  every cross position; the account is liquidated when its margin balance is at
  or below the sum of their maintenance margins (margin ratio >= 100 %).
- isolated margin: a position's own margin is what was put up at entry
  (initial margin) plus the funding booked since; it is liquidated when that
  plus its unrealized PnL is at or below its maintenance margin.
- liquidation price (Binance's published formula, solved per tier):
      LP = (WB - TMM + UPNL + cum - side x size x entry) / (size x mmr - side x size)
  with WB the wallet (cross) or the position's margin (isolated), TMM and UPNL
  the other cross positions' maintenance margin and unrealized PnL (0 when
  isolated), size = |qty| x contract_size and side +1 long, -1 short.

Divisions (initial margin, the liquidation price) run under a 60-digit context
and are the only figures here that can round.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal

from events.instruments import Instrument, MarginTier

__all__ = ["CTX", "breached", "funding", "initial_margin", "liquidation_price",
           "maintenance_margin", "margin_ratio", "notional", "ratio", "tier", "tiers",
           "unrealized"]

CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
ZERO = Decimal(0)
ONE = Decimal(1)
UNBOUNDED = Decimal("1e30")  # the cap of the last tier


def tiers(rows: Iterable[tuple[Decimal, Decimal, int]]) -> tuple[MarginTier, ...]:
    """Tiers from (cap, maint_rate, max_leverage) rows in ascending cap order,
    each with the `maint_amount` that keeps maintenance margin continuous:
    amount_i = amount_(i-1) + cap_(i-1) x (rate_i - rate_(i-1)). ValueError
    when the caps do not ascend or a rate is outside [0, 1)."""
    out: list[MarginTier] = []
    prev_cap, prev_rate, amount = ZERO, ZERO, ZERO
    for cap, rate, lev in rows:
        cap, rate = Decimal(cap), Decimal(rate)
        if cap <= prev_cap:
            raise ValueError(f"margin tier caps must ascend: {cap} after {prev_cap}")
        if not ZERO <= rate < ONE:
            raise ValueError(f"maintenance margin rate {rate} is outside [0, 1)")
        if int(lev) < 1:
            raise ValueError(f"max leverage {lev} is below 1")
        if out:
            amount = CTX.add(amount, CTX.multiply(prev_cap, rate - prev_rate))
        out.append(MarginTier(cap=cap, maint_rate=rate, max_leverage=int(lev),
                              maint_amount=amount))
        prev_cap, prev_rate = cap, rate
    return tuple(out)


def tier(inst: Instrument, notional_: Decimal) -> MarginTier:
    """The tier a position of `notional_` falls in (the last one beyond every cap)."""
    if not inst.margin_tiers:
        raise ValueError(f"{inst.symbol} on {inst.venue} has no margin tiers "
                         "(not a perpetual?)")
    for t in inst.margin_tiers:
        if notional_ <= t.cap:
            return t
    return inst.margin_tiers[-1]


def notional(inst: Instrument, qty: Decimal, price: Decimal) -> Decimal:
    return CTX.multiply(CTX.multiply(abs(qty), inst.contract_size), price)


def unrealized(inst: Instrument, qty: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    """qty x contract_size x (mark - entry), exact."""
    return CTX.multiply(CTX.multiply(qty, inst.contract_size), CTX.subtract(mark, entry))


def initial_margin(notional_: Decimal, leverage: int) -> Decimal:
    if leverage < 1:
        raise ValueError(f"leverage {leverage} is below 1")
    return _tidy(CTX.divide(notional_, Decimal(leverage)))


def maintenance_margin(inst: Instrument, notional_: Decimal) -> Decimal:
    """notional x maint_rate - maint_amount of its tier (never below 0), exact."""
    if not notional_:
        return ZERO
    t = tier(inst, notional_)
    return max(ZERO, CTX.subtract(CTX.multiply(notional_, t.maint_rate), t.maint_amount))


def funding(inst: Instrument, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What a signed position `qty` receives at one funding time (+ received,
    - paid), exact: -(qty x contract_size x mark x rate)."""
    return -CTX.multiply(CTX.multiply(CTX.multiply(qty, inst.contract_size), mark), rate)


def breached(margin_balance: Decimal, maint: Decimal) -> bool:
    """Whether margin is at or below maintenance (the venue liquidates)."""
    return maint > 0 and margin_balance <= maint


def margin_ratio(margin_balance: Decimal, maint: Decimal) -> Decimal | None:
    """maintenance / margin balance (Binance's margin ratio; liquidation at 1);
    None when there is no position or the margin balance is not positive."""
    if not maint or margin_balance <= 0:
        return None
    return ratio(maint, margin_balance)


RATIO_QUANTUM = Decimal("1e-10")


def ratio(part: Decimal, whole: Decimal) -> Decimal:
    """part / whole to 10 decimals (a ratio shown and compared, not money)."""
    return _tidy(CTX.divide(part, whole).quantize(RATIO_QUANTUM, context=CTX))


def liquidation_price(inst: Instrument, qty: Decimal, entry: Decimal, wallet: Decimal,
                      other_maint: Decimal = ZERO, other_upnl: Decimal = ZERO
                      ) -> Decimal | None:
    """The mark at which the position's margin meets maintenance (see the module
    doc): the solution whose notional lies in the tier it was solved with. None
    for a flat position, or when no positive price liquidates it (a long whose
    margin covers a fall to zero)."""
    if not qty:
        return None
    side = ONE if qty > 0 else -ONE
    size = CTX.multiply(abs(qty), inst.contract_size)
    base = CTX.subtract(CTX.add(CTX.subtract(wallet, other_maint), other_upnl),
                        CTX.multiply(CTX.multiply(side, size), entry))
    floor = ZERO
    candidates = []
    for t in inst.margin_tiers:
        den = CTX.subtract(CTX.multiply(size, t.maint_rate), CTX.multiply(side, size))
        if den:
            price = CTX.divide(CTX.add(base, t.maint_amount), den)
            n = CTX.multiply(size, price)
            if price > 0 and floor < n <= t.cap:
                return _tidy(price)
            candidates.append(price)
        floor = t.cap
    # No tier contains its own solution (it can only happen at a tier's edge):
    # the first tier's answer is the one a small position sees.
    if candidates and candidates[0] > 0:
        return _tidy(candidates[0])
    return None


def _tidy(value: Decimal) -> Decimal:
    if value == value.to_integral_value():
        return value.quantize(ONE, context=CTX)
    return value.normalize(CTX)
