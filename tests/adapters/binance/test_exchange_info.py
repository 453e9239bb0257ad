"""exchangeInfo: the protocol doc §5 BTCUSDT payload and hand-built variants
(CANCEL_ONLY, halted statuses, MIN_NOTIONAL only, no notional, no grid)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from adapters.binance.exchange_info import (
    LotSize,
    MarketLotSize,
    Notional,
    OtherFilter,
    PriceFilter,
    decode_exchange_info,
    decode_filters,
    instruments_from_exchange_info,
    map_status,
    plain,
    rate_limits_from_exchange_info,
)
from events.instruments import CANCEL_ONLY, HALTED, TRADING, Instrument
from tests.adapters.binance.samples import DOC_EXCHANGE_INFO

DOC_PAYLOAD = DOC_EXCHANGE_INFO  # protocol doc §5, verbatim


def _btc() -> dict[str, Any]:
    return json.loads(DOC_PAYLOAD)["symbols"][0]


def _payload(*symbols: dict[str, Any]) -> bytes:
    return json.dumps({"timezone": "UTC", "serverTime": 1, "symbols": list(symbols)}).encode()


def _variant(**changes: Any) -> dict[str, Any]:
    sym = _btc()
    sym.update(changes)
    return sym


def _without(sym: dict[str, Any], *filter_types: str) -> dict[str, Any]:
    sym["filters"] = [f for f in sym["filters"] if f["filterType"] not in filter_types]
    return sym


def test_doc_payload_maps_to_exact_instrument() -> None:
    [inst] = instruments_from_exchange_info(DOC_PAYLOAD, "binance")
    assert inst == Instrument(
        venue="binance",
        symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.00001"),
        min_notional=Decimal("5"),
        min_qty=Decimal("0.00001"),
        max_qty=Decimal("9000"),
        status=TRADING,
    )
    # Exact representations, not merely equal values.
    assert str(inst.tick_size) == "0.01"
    assert str(inst.step_size) == "0.00001"
    assert str(inst.max_qty) == "9000"
    assert inst.on_price_grid(Decimal("65000.01"))
    assert not inst.on_price_grid(Decimal("65000.015"))
    assert inst.tradable


def test_doc_payload_filters_decode_typed_and_others_generic() -> None:
    info = decode_exchange_info(DOC_PAYLOAD)
    filters = decode_filters(info.symbols[0])
    assert [type(f) for f in filters] == [
        PriceFilter,
        LotSize,
        OtherFilter,
        MarketLotSize,
        OtherFilter,
        Notional,
        OtherFilter,
        OtherFilter,
    ]
    assert [f.filterType for f in filters if isinstance(f, OtherFilter)] == [
        "ICEBERG_PARTS",
        "PERCENT_PRICE_BY_SIDE",
        "MAX_NUM_ORDERS",
        "MAX_NUM_ALGO_ORDERS",
    ]
    notional = filters[5]
    assert isinstance(notional, Notional)
    assert notional.maxNotional == Decimal("9000000") and notional.avgPriceMins == 5
    assert info.serverTime == 1763735400000


def test_doc_payload_rate_limits() -> None:
    limits = rate_limits_from_exchange_info(DOC_PAYLOAD)
    assert [(r.rateLimitType, r.interval, r.intervalNum, r.limit) for r in limits] == [
        ("REQUEST_WEIGHT", "MINUTE", 1, 6000),
        ("ORDERS", "SECOND", 10, 100),
        ("ORDERS", "DAY", 1, 200000),
        ("RAW_REQUESTS", "MINUTE", 5, 300000),
    ]


@pytest.mark.parametrize(
    ("binance", "ours"),
    [
        ("TRADING", TRADING),
        ("CANCEL_ONLY", CANCEL_ONLY),
        ("HALT", HALTED),
        ("BREAK", HALTED),
        ("END_OF_DAY", HALTED),
        ("SOMETHING_NEW", HALTED),  # unknown: never trade on a guess
    ],
)
def test_status_mapping(binance: str, ours: str) -> None:
    assert map_status(binance) == ours
    [inst] = instruments_from_exchange_info(_payload(_variant(status=binance)), "binance")
    assert inst.status == ours
    assert inst.tradable is (ours == TRADING)


def test_cancel_only_symbol() -> None:
    [inst] = instruments_from_exchange_info(
        _payload(
            _variant(symbol="ETHBTC", baseAsset="ETH", quoteAsset="BTC", status="CANCEL_ONLY")
        ),
        "binance",
    )
    assert (inst.symbol, inst.base, inst.quote, inst.status) == (
        "ETHBTC",
        "ETH",
        "BTC",
        CANCEL_ONLY,
    )


def test_missing_notional_falls_back_to_min_notional() -> None:
    sym = _without(_btc(), "NOTIONAL")
    sym["filters"].append(
        {
            "filterType": "MIN_NOTIONAL",
            "minNotional": "10.00000000",
            "applyToMarket": True,
            "avgPriceMins": 5,
        }
    )
    [inst] = instruments_from_exchange_info(_payload(sym), "binance")
    assert inst.min_notional == Decimal("10") and str(inst.min_notional) == "10"


def test_notional_wins_over_min_notional() -> None:
    sym = _btc()
    sym["filters"].append({"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000"})
    [inst] = instruments_from_exchange_info(_payload(sym), "binance")
    assert inst.min_notional == Decimal("5")


def test_no_notional_filter_at_all_means_zero() -> None:
    [inst] = instruments_from_exchange_info(_payload(_without(_btc(), "NOTIONAL")), "binance")
    assert inst.min_notional == Decimal(0)


def test_zero_max_qty_disables_it() -> None:
    sym = _btc()
    sym["filters"][1]["maxQty"] = "0.00000000"
    [inst] = instruments_from_exchange_info(_payload(sym), "binance")
    assert inst.max_qty is None


@pytest.mark.parametrize("drop", ["PRICE_FILTER", "LOT_SIZE"])
def test_symbol_without_grid_is_left_out(drop: str) -> None:
    good = _variant(symbol="ETHUSDT", baseAsset="ETH")
    out = instruments_from_exchange_info(_payload(_without(_btc(), drop), good), "binance")
    assert [i.symbol for i in out] == ["ETHUSDT"]


def test_zero_tick_size_is_left_out() -> None:
    sym = _btc()
    sym["filters"][0]["tickSize"] = "0.00000000"
    assert instruments_from_exchange_info(_payload(sym), "binance") == []


def test_unknown_keys_and_filters_are_ignored() -> None:
    sym = _variant(otoAllowed=True, amendAllowed=True, pegInstructionsAllowed=False)
    sym["filters"].append({"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10})
    sym["filters"].append({"filterType": "FROM_THE_FUTURE", "x": [1, {"y": None}]})
    [inst] = instruments_from_exchange_info(_payload(sym), "binance")
    assert inst.symbol == "BTCUSDT"


def test_known_filter_with_wrong_type_fails_loudly() -> None:
    sym = _btc()
    sym["filters"][0]["tickSize"] = [1]
    with pytest.raises(msgspec.ValidationError, match="tickSize"):
        instruments_from_exchange_info(_payload(sym), "binance")


def test_empty_symbols() -> None:
    assert instruments_from_exchange_info(b'{"symbols":[]}', "binance") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.01000000", "0.01"),
        ("1000000.00000000", "1000000"),
        ("0.00000000", "0"),
        ("128.52621715", "128.52621715"),
        ("100", "100"),
    ],
)
def test_plain_strips_trailing_zeros_without_exponent(text: str, expected: str) -> None:
    assert str(plain(Decimal(text))) == expected
