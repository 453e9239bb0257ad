"""Binance USD-M `GET /fapi/v1/exchangeInfo` and `GET /fapi/v1/leverageBracket`
into perpetual `Instrument`s, and how a configured instrument may differ.

Only PERPETUAL contracts become instruments (quarterly ones are left out).
Grids: PRICE_FILTER `tickSize`, LOT_SIZE `stepSize`/`minQty`/`maxQty`, and
MIN_NOTIONAL's `notional` (futures name the field differently from Spot's
`minNotional`). Margin tiers are the brackets as Binance states them:
`notionalCap` -> cap, `maintMarginRatio` -> maint_rate, `initialLeverage` ->
max_leverage and `cum` -> maint_amount (Binance's own continuity constant, so
our maintenance margin equals theirs to the cent). Brackets arrive as JSON
numbers; msgspec decodes them straight into Decimal from their text, so no
float ever touches them.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from adapters.binance.exchange_info import plain
from events.instruments import HALTED, PERPETUAL, TRADING, Instrument, MarginTier

_ZERO = Decimal(0)


class _Filter(msgspec.Struct, frozen=True):
    filterType: str
    tickSize: Decimal = _ZERO
    stepSize: Decimal = _ZERO
    minQty: Decimal = _ZERO
    maxQty: Decimal = _ZERO
    notional: Decimal = _ZERO


class FuturesSymbol(msgspec.Struct, frozen=True):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    contractType: str = ""
    marginAsset: str = ""
    filters: list[_Filter] = []


class FuturesInfo(msgspec.Struct, frozen=True):
    symbols: list[FuturesSymbol] = []


class Bracket(msgspec.Struct, frozen=True):
    notionalCap: Decimal
    maintMarginRatio: Decimal
    initialLeverage: int
    cum: Decimal = _ZERO
    notionalFloor: Decimal = _ZERO


class SymbolBrackets(msgspec.Struct, frozen=True):
    symbol: str
    brackets: list[Bracket]


_INFO = msgspec.json.Decoder(FuturesInfo)
_BRACKETS = msgspec.json.Decoder(list[SymbolBrackets] | SymbolBrackets)


def margin_tiers(brackets: list[Bracket]) -> tuple[MarginTier, ...]:
    """Binance's brackets as tiers in ascending cap order. ValueError when the
    caps do not ascend or a rate is outside [0, 1) (a payload we cannot trust)."""
    out: list[MarginTier] = []
    for b in sorted(brackets, key=lambda b: b.notionalCap):
        if out and b.notionalCap <= out[-1].cap:
            raise ValueError(f"leverage brackets repeat the cap {b.notionalCap}")
        if not _ZERO <= b.maintMarginRatio < 1 or b.initialLeverage < 1:
            raise ValueError(f"leverage bracket {b} is out of range")
        out.append(MarginTier(cap=plain(b.notionalCap), maint_rate=plain(b.maintMarginRatio),
                              max_leverage=b.initialLeverage, maint_amount=plain(b.cum)))
    return tuple(out)


def brackets_by_symbol(raw: bytes) -> dict[str, tuple[MarginTier, ...]]:
    """`GET /fapi/v1/leverageBracket` (all symbols, a list; or one symbol's object)."""
    decoded = _BRACKETS.decode(raw)
    rows = decoded if isinstance(decoded, list) else [decoded]
    return {r.symbol: margin_tiers(r.brackets) for r in rows}


def perpetual_instruments(info_raw: bytes, brackets_raw: bytes, venue: str) -> list[Instrument]:
    """The PERPETUAL contracts of an exchangeInfo answer with their margin tiers,
    in its order. A contract without a usable grid or without brackets is left
    out: no order on it could be checked."""
    tiers = brackets_by_symbol(brackets_raw)
    out: list[Instrument] = []
    for s in _INFO.decode(info_raw).symbols:
        if s.contractType != "PERPETUAL" or s.symbol not in tiers or not tiers[s.symbol]:
            continue
        f = {x.filterType: x for x in s.filters}
        price, lot = f.get("PRICE_FILTER"), f.get("LOT_SIZE")
        if price is None or lot is None or price.tickSize <= 0 or lot.stepSize <= 0:
            continue
        floor = f["MIN_NOTIONAL"].notional if "MIN_NOTIONAL" in f else _ZERO
        t = tiers[s.symbol]
        out.append(Instrument(
            venue=venue, symbol=s.symbol, base=s.baseAsset, quote=s.quoteAsset,
            tick_size=plain(price.tickSize), step_size=plain(lot.stepSize),
            min_notional=plain(floor), min_qty=plain(lot.minQty),
            max_qty=plain(lot.maxQty) if lot.maxQty > 0 else None,
            status=TRADING if s.status == "TRADING" else HALTED,
            kind=PERPETUAL, contract_size=Decimal(1), margin_asset=s.marginAsset or s.quoteAsset,
            max_leverage=max(x.max_leverage for x in t), margin_tiers=t))
    return out


_COMPARED = ("kind", "tick_size", "step_size", "min_notional", "contract_size", "settle")


def disagreement(ours: Instrument, theirs: Instrument | None, leverage: int = 1) -> str | None:
    """One line saying how a configured instrument disagrees with Binance's, or
    None. Margin tiers are compared only when the config lists more than one
    (a single `maintenance_margin_rate` tier is a simulation default, replaced
    by Binance's brackets); `leverage` must be allowed by the first bracket."""
    where = f"[[instruments]] {ours.venue}:{ours.symbol}"
    if theirs is None:
        return f"{where}: Binance USD-M lists no PERPETUAL contract {ours.symbol}"
    for key in _COMPARED:
        mine, binance = getattr(ours, key), getattr(theirs, key)
        if mine != binance:
            return f"{where}: {key} = {mine} but Binance says {binance}"
    if len(ours.margin_tiers) > 1 and ours.margin_tiers != theirs.margin_tiers:
        return f"{where}: margin_tiers differ from Binance's leverage brackets"
    if theirs.margin_tiers and leverage > theirs.margin_tiers[0].max_leverage:
        return (f"{where}: leverage = {leverage} but Binance allows at most "
                f"{theirs.margin_tiers[0].max_leverage}")
    return None
