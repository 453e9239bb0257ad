"""Binance spot `GET /api/v3/exchangeInfo`: the payload in Binance's own field
names, and its translation into our `Instrument`s and rate limits.

Filters are a tagged union on `filterType`. msgspec has no fallback tag, so
each filter arrives as raw JSON, its tag is peeked at, and only the filters we
use are decoded into typed structs; every other filter type (PERCENT_PRICE,
ICEBERG_PARTS, MAX_NUM_ORDERS, ones Binance adds later...) becomes an
`OtherFilter` and is ignored. Prices and quantities decode straight to Decimal.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from events.instruments import CANCEL_ONLY, HALTED, TRADING, Instrument

# --- filters -----------------------------------------------------------------


class PriceFilter(msgspec.Struct, frozen=True, tag_field="filterType", tag="PRICE_FILTER"):
    minPrice: Decimal = Decimal(0)
    maxPrice: Decimal = Decimal(0)
    tickSize: Decimal = Decimal(0)


class LotSize(msgspec.Struct, frozen=True, tag_field="filterType", tag="LOT_SIZE"):
    minQty: Decimal = Decimal(0)
    maxQty: Decimal = Decimal(0)
    stepSize: Decimal = Decimal(0)


class MarketLotSize(msgspec.Struct, frozen=True, tag_field="filterType", tag="MARKET_LOT_SIZE"):
    minQty: Decimal = Decimal(0)
    maxQty: Decimal = Decimal(0)
    stepSize: Decimal = Decimal(0)  # "0" = unchecked


class Notional(msgspec.Struct, frozen=True, tag_field="filterType", tag="NOTIONAL"):
    minNotional: Decimal = Decimal(0)
    applyMinToMarket: bool = True
    maxNotional: Decimal = Decimal(0)
    applyMaxToMarket: bool = False
    avgPriceMins: int = 0


class MinNotional(msgspec.Struct, frozen=True, tag_field="filterType", tag="MIN_NOTIONAL"):
    """The older one-sided form of NOTIONAL."""

    minNotional: Decimal = Decimal(0)
    applyToMarket: bool = True
    avgPriceMins: int = 0


class OtherFilter(msgspec.Struct, frozen=True):
    """Any filter type we do not use; kept only by name."""

    filterType: str


KnownFilter = PriceFilter | LotSize | MarketLotSize | Notional | MinNotional
Filter = KnownFilter | OtherFilter

_KNOWN_TAGS = frozenset({"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL", "MIN_NOTIONAL"})

# --- symbols and the response ------------------------------------------------


class SymbolInfo(msgspec.Struct, frozen=True):
    symbol: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: list[msgspec.Raw] = []
    baseAssetPrecision: int = 8
    quoteAssetPrecision: int = 8
    orderTypes: list[str] = []
    isSpotTradingAllowed: bool = True


class RateLimit(msgspec.Struct, frozen=True):
    rateLimitType: str  # REQUEST_WEIGHT | ORDERS | RAW_REQUESTS
    interval: str  # SECOND | MINUTE | HOUR | DAY
    intervalNum: int
    limit: int


class ExchangeInfo(msgspec.Struct, frozen=True):
    symbols: list[SymbolInfo] = []
    rateLimits: list[RateLimit] = []
    timezone: str = "UTC"
    serverTime: int = 0  # ms


_INFO_DECODER = msgspec.json.Decoder(ExchangeInfo)
_TAG_DECODER = msgspec.json.Decoder(OtherFilter)
_FILTER_DECODER = msgspec.json.Decoder(KnownFilter)


def decode_exchange_info(raw: bytes) -> ExchangeInfo:
    return _INFO_DECODER.decode(raw)


def decode_filters(symbol: SymbolInfo) -> list[Filter]:
    """The symbol's filters, typed where we use them, `OtherFilter` otherwise."""
    out: list[Filter] = []
    for raw in symbol.filters:
        tagged = _TAG_DECODER.decode(raw)
        out.append(_FILTER_DECODER.decode(raw) if tagged.filterType in _KNOWN_TAGS else tagged)
    return out


# --- translation ---------------------------------------------------------------

# enums.md symbol status. END_OF_DAY and BREAK accept nothing, like HALT.
_STATUS = {
    "TRADING": TRADING,
    "CANCEL_ONLY": CANCEL_ONLY,
    "HALT": HALTED,
    "BREAK": HALTED,
    "END_OF_DAY": HALTED,
}


def map_status(status: str) -> str:
    """Our instrument status for a Binance symbol status; unknown ones halt."""
    return _STATUS.get(status, HALTED)


def plain(value: Decimal) -> Decimal:
    """`value` without trailing fractional zeros and never in exponent form:
    "0.01000000" -> 0.01, "1000000.00000000" -> 1000000, "0.00000000" -> 0."""
    d = value.normalize()
    if d.as_tuple().exponent > 0:  # type: ignore[operator]  # normalize gave 1E+6
        d = d.quantize(Decimal(1))
    return d


def instrument_from_symbol(symbol: SymbolInfo, venue: str) -> Instrument | None:
    """The Instrument for one symbol, or None when it has no usable price or
    quantity grid (PRICE_FILTER/LOT_SIZE missing or disabled with "0")."""
    price: PriceFilter | None = None
    lot: LotSize | None = None
    notional: Notional | None = None
    min_notional: MinNotional | None = None
    for f in decode_filters(symbol):
        if isinstance(f, PriceFilter):
            price = f
        elif isinstance(f, LotSize):
            lot = f
        elif isinstance(f, Notional):
            notional = f
        elif isinstance(f, MinNotional):
            min_notional = f
    if price is None or lot is None or price.tickSize <= 0 or lot.stepSize <= 0:
        return None
    # NOTIONAL supersedes MIN_NOTIONAL when a symbol carries both.
    if notional is not None:
        floor = notional.minNotional
    elif min_notional is not None:
        floor = min_notional.minNotional
    else:
        floor = Decimal(0)
    return Instrument(
        venue=venue,
        symbol=symbol.symbol,
        base=symbol.baseAsset,
        quote=symbol.quoteAsset,
        tick_size=plain(price.tickSize),
        step_size=plain(lot.stepSize),
        min_notional=plain(floor),
        min_qty=plain(lot.minQty),
        max_qty=plain(lot.maxQty) if lot.maxQty > 0 else None,  # 0 disables the check
        status=map_status(symbol.status),
    )


def instruments_from_exchange_info(raw: bytes, venue: str) -> list[Instrument]:
    """Instruments for every symbol in an exchangeInfo response, in its order.

    Symbols without a usable price or quantity grid are left out: we could not
    place a valid order on them anyway.
    """
    info = decode_exchange_info(raw)
    out: list[Instrument] = []
    for symbol in info.symbols:
        inst = instrument_from_symbol(symbol, venue)
        if inst is not None:
            out.append(inst)
    return out


def rate_limits_from_exchange_info(raw: bytes) -> list[RateLimit]:
    return list(decode_exchange_info(raw).rateLimits)
