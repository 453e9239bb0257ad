"""CCXT markets as tapeloop instruments, exactly (pure: no network, no ccxt import).

A ccxt market states its grid in `precision` under the exchange's `precisionMode`:

- TICK_SIZE (4; binance, bybit, okx, kraken, coinbase... in ccxt 4.5): `precision.price`
  and `precision.amount` ARE the tick and the step, as floats. A float goes through
  its shortest repr (`to_decimal`: 1e-05 is Decimal("0.00001"), never binary noise).
- DECIMAL_PLACES (2; older ccxt and ccxt's own binance fixture): a digit count `d`,
  so the grid is 10**-d (d may be 0 or negative: a step of 1 or 10).
- SIGNIFICANT_DIGITS (3; bitfinex): the grid depends on the price (5 significant
  digits is a tick of 1 at 12,345 and of 0.001 at 12.345). A tapeloop instrument has
  one fixed grid, so such a market is not traded: it maps with the finest grid
  (1e-12) for recording, and `refused` says why (placing on a guessed grid would be
  rejected by the exchange, or worse, rounded by it).

Limits: `limits.cost.min` is the min notional, `limits.amount.min`/`max` the quantity
bounds (None is no bound). `active` False maps to CANCEL_ONLY.

Spot markets and linear perpetuals are traded. A `swap` with `linear` true and a
`settle` currency is a perpetual instrument: contracts of `contractSize`, margined in
`settle`, up to `limits.leverage.max` (20 when not stated), one maintenance tier at
the market's `maintenanceMarginRate` (0.005 when ccxt does not state one; the venue's
own brackets are richer). It is traded only with a contract size of 1 (tapeloop
books quantities in contracts of one base unit). Inverse swaps, dated futures and
options map (their contract size kept) with a refusal: recorded, not traded.

The instrument's symbol is the CCXT unified symbol (`BTC/USDT`, `BTC/USDT:USDT`), the
name the user writes in the config and ccxt takes in every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from events.instruments import CANCEL_ONLY, PERPETUAL, TRADING, Instrument, to_decimal
from events.margin import tiers

DECIMAL_PLACES = 2  # ccxt.base.decimal_to_precision's constants
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4
MODES = {DECIMAL_PLACES: "DECIMAL_PLACES", SIGNIFICANT_DIGITS: "SIGNIFICANT_DIGITS",
         TICK_SIZE: "TICK_SIZE"}
FINEST = Decimal("1e-12")  # the finest grid tapeloop rounds on (config_checks)
DEFAULT_LEVERAGE = 20  # when a perpetual states no maximum leverage
DEFAULT_MAINT_RATE = Decimal("0.005")  # when ccxt states no maintenance margin rate
ONE_TIER_CAP = Decimal("1e30")  # a single tier covers every notional (as daemon.config)


class MarketError(ValueError):
    """A market tapeloop cannot take: the message is one line naming it."""


@dataclass(frozen=True, slots=True)
class Market:
    """What tapeloop takes of one ccxt market."""

    instrument: Instrument
    kind: str  # spot | swap | future | option
    contract_size: Decimal
    refused: str | None = None  # why it cannot be traded (it can still be recorded)


def grid(value: Any, mode: int, where: str) -> Decimal:
    """The exact step a `precision` entry states under `mode`."""
    if value is None or isinstance(value, bool):
        raise MarketError(f"{where}: no precision stated")
    if mode == TICK_SIZE:
        step = _number(value)
        if step is None or not step.is_finite() or step <= 0:
            raise MarketError(f"{where}: tick size {value!r} is not a positive number")
        return step
    if mode == DECIMAL_PLACES:
        digits = _number(value)
        if digits is None or not digits.is_finite() or digits != digits.to_integral_value():
            raise MarketError(f"{where}: {value!r} is not a whole number of decimal places")
        return Decimal(1).scaleb(-int(digits))
    raise MarketError(f"{where}: precisionMode {MODES.get(mode, mode)} has no fixed grid")


def _number(value: Any) -> Decimal | None:
    if not isinstance(value, float | int | str):
        return None
    try:
        return to_decimal(value)
    except ArithmeticError:  # decimal.InvalidOperation: not a number
        return None


def market_kind(market: Mapping[str, Any]) -> str:
    for kind in ("spot", "swap", "future", "option"):
        if market.get(kind):
            return kind
    return str(market.get("type") or "spot")


def _bound(limits: Mapping[str, Any], what: str, end: str) -> Decimal | None:
    value = (limits.get(what) or {}).get(end)
    if value is None:
        return None
    number = to_decimal(value)
    return number if number.is_finite() and number >= 0 else None


def instrument_from_market(venue: str, market: Mapping[str, Any], precision_mode: int
                           ) -> Market:
    """The instrument of one ccxt market on `venue` (see the module doc)."""
    symbol = str(market.get("symbol") or "")
    where = f"{venue} {symbol or market.get('id')!r}"
    if not symbol or not market.get("base") or not market.get("quote"):
        raise MarketError(f"{where}: a market without symbol, base or quote")
    precision = market.get("precision") or {}
    refused = None
    if precision_mode == SIGNIFICANT_DIGITS:
        tick = step = FINEST
        refused = (f"{where}: its exchange states prices in significant digits (a grid "
                   "that moves with the price); tapeloop trades on a fixed grid, so it "
                   "records this market but does not trade it")
    else:
        try:
            tick = grid(precision.get("price"), precision_mode, f"{where}: precision.price")
            step = grid(precision.get("amount"), precision_mode, f"{where}: precision.amount")
        except MarketError as exc:  # e.g. an expired future listed without a grid
            tick = step = FINEST
            refused = f"{exc}: recorded, not traded"
    limits = market.get("limits") or {}
    kind = market_kind(market)
    contract = to_decimal(market["contractSize"]) if market.get("contractSize") else Decimal(1)
    perpetual = kind == "swap" and market.get("linear") is True and bool(market.get("settle"))
    if perpetual and refused is None and contract != 1:
        refused = (f"{where}: a perpetual of contract size {contract}; tapeloop trades "
                   "contracts of one base unit: recorded, not traded")
    elif not perpetual and kind != "spot" and refused is None:
        what = "an inverse swap" if kind == "swap" else f"a {kind} market"
        refused = (f"{where}: {what}; tapeloop trades spot markets and linear perpetuals "
                   "only: recorded, not traded")
    active = market.get("active") is not False
    perp: dict[str, Any] = {}
    if perpetual:
        leverage = _leverage(limits)
        rate = _maint_rate(market, where)
        perp = dict(kind=PERPETUAL, contract_size=contract, margin_asset=str(market["settle"]),
                    max_leverage=leverage, margin_tiers=tiers([(ONE_TIER_CAP, rate, leverage)]))
    instrument = Instrument(
        venue=venue, symbol=symbol, base=str(market["base"]), quote=str(market["quote"]),
        tick_size=tick, step_size=step,
        min_notional=_bound(limits, "cost", "min") or Decimal(0),
        min_qty=_bound(limits, "amount", "min") or Decimal(0),
        max_qty=_bound(limits, "amount", "max") or None,
        status=TRADING if active and refused is None else CANCEL_ONLY,
        **perp,
    )
    return Market(instrument, kind, contract, refused)


def _leverage(limits: Mapping[str, Any]) -> int:
    """`limits.leverage.max` as a whole leverage (DEFAULT_LEVERAGE when not stated);
    a fractional maximum (bybit states 100.00, some 12.5) rounds down."""
    value = _number((limits.get("leverage") or {}).get("max"))
    if value is None or not value.is_finite() or value < 1:
        return DEFAULT_LEVERAGE
    return int(value)


def _maint_rate(market: Mapping[str, Any], where: str) -> Decimal:
    value = market.get("maintenanceMarginRate")
    if value is None:
        return DEFAULT_MAINT_RATE
    rate = _number(value)
    if rate is None or not rate.is_finite() or not 0 <= rate < 1:
        raise MarketError(f"{where}: maintenanceMarginRate {value!r} is not a rate in [0, 1)")
    return rate


def markets_for(venue: str, markets: Mapping[str, Mapping[str, Any]], precision_mode: int,
                symbols: Iterable[str]) -> list[Market]:
    """The named unified symbols' markets; a symbol the exchange does not list is one
    line, with the unified symbol when the name given is the exchange's own id."""
    out = []
    for symbol in dict.fromkeys(symbols):
        market = markets.get(symbol)
        if market is None:
            by_id = [s for s, m in markets.items() if m.get("id") == symbol]
            hint = (f"; ccxt calls it {by_id[0]!r}" if len(by_id) == 1
                    else "; write ccxt's unified symbol, e.g. 'BTC/USDT'")
            raise MarketError(f"venue {venue!r}: the exchange lists no market {symbol!r}{hint}")
        out.append(instrument_from_market(venue, market, precision_mode))
    return out


def disagreement(configured: Instrument, market: Instrument) -> str | None:
    """Where a config `[[instruments]]` entry and the exchange's market differ, as
    one line naming the key and both values; None when they agree."""
    for key in ("kind", "base", "quote", "tick_size", "step_size", "min_notional",
                "contract_size"):
        mine, theirs = getattr(configured, key), getattr(market, key)
        if mine != theirs:
            return (f"instrument {configured.venue}/{configured.symbol}: {key} is {mine} in "
                    f"the config but {theirs} on the exchange")
    return None
