# ruff: noqa: E501  (BY_HAND is a table, one market a row)
"""CCXT's own market fixtures (../shared/data/ccxt/markets, MIT) mapped to instruments,
checked against values computed by hand from each fixture's `precision` and `limits`
(binance's fixture states digit counts, the others step sizes)."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.ccxt.markets import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    MarketError,
    disagreement,
    grid,
    instrument_from_market,
    markets_for,
)
from events.instruments import CANCEL_ONLY, TRADING, Instrument
from tests.conftest import SHARED_DATA

FIXTURES = SHARED_DATA / "ccxt" / "markets"
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} not found")
MODE = {"binance": DECIMAL_PLACES, "bybit": TICK_SIZE, "okx": TICK_SIZE, "kraken": TICK_SIZE,
        "coinbase": TICK_SIZE}


def markets(exchange: str) -> dict:
    return json.loads(Path(FIXTURES / f"{exchange}.json").read_text())


# exchange, symbol -> (kind, tick, step, min notional, min qty, max qty, contract, traded)
BY_HAND = {
    ("binance", "BTC/USDT"): ("spot", D("0.01"), D("0.00001"), D(5), D("0.00001"), D(9000), D(1), True),
    ("binance", "XRP/USDT"): ("spot", D("0.0001"), D(1), D(5), D(1), D(9222449), D(1), True),
    ("binance", "BTC/USDT:USDT"): ("swap", D("0.1"), D("0.001"), D(5), D("0.001"), D(1000), D(1), True),
    ("binance", "BTC/USD:BTC"): ("swap", D("0.1"), D(1), D(0), D(1), D(1000000), D(100), False),
    ("bybit", "BTC/USDT"): ("spot", D("0.1"), D("0.000001"), D(5), D("0.000011"), D(83), D(1), True),
    ("okx", "ADA/USDT"): ("spot", D("0.0001"), D("0.0001"), D(0), D(10), None, D(1), True),
    ("okx", "DOGE/USDT:USDT"): ("swap", D("0.00001"), D("0.1"), D(0), D("0.1"), None, D(1000), False),
    ("okx", "BTC/USD:BTC"): ("swap", D("0.1"), D(1), D(0), D(1), None, D(100), False),
    ("kraken", "ADA/USDT"): ("spot", D("0.000001"), D("0.00000001"), D(0), D(20), None, D(1), True),
    ("kraken", "XRP/USD"): ("spot", D("0.00001"), D("0.00000001"), D("0.5"), D(10), None, D(1), True),
    ("coinbase", "BTC/USDC"): ("spot", D("0.01"), D("0.00000001"), D(1), D("0.00000001"), D(3400), D(1), True),
    ("coinbase", "DOGE/USDT"): ("spot", D("0.0001"), D("0.1"), D(1), D("0.1"), D(142083900), D(1), True),
}


@pytest.mark.parametrize(("exchange", "symbol"), list(BY_HAND), ids=lambda v: str(v))
def test_fixture_markets_map_to_the_hand_computed_grid(exchange: str, symbol: str) -> None:
    kind, tick, step, notional, min_qty, max_qty, contract, traded = BY_HAND[exchange, symbol]
    got = instrument_from_market(exchange, markets(exchange)[symbol], MODE[exchange])
    i = got.instrument
    assert (i.venue, i.symbol) == (exchange, symbol)
    assert (got.kind, i.tick_size, i.step_size, i.min_notional, i.min_qty, i.max_qty,
            got.contract_size) == (kind, tick, step, notional, min_qty, max_qty, contract)
    # exact: the same digits as written by hand, no binary noise in the exponent
    assert str(i.tick_size) == str(tick) or i.tick_size == tick
    assert i.tradable is traded and (got.refused is None) is traded
    if not traded:
        assert i.status == CANCEL_ONLY and "\n" not in (got.refused or "")


# exchange, symbol -> (contract size, settle, max leverage, traded) of linear perpetuals
PERPS = {
    ("binance", "BTC/USDT:USDT"): (D(1), "USDT", 20, True),  # limits.leverage {}: 20
    ("bybit", "BTC/USDT:USDT"): (D(1), "USDT", 100, True),
    ("coinbase", "ADA/USDC:USDC"): (D(1), "USDC", 20, True),  # leverage max null: 20
    ("okx", "BTC/USDT:USDT"): (D("0.01"), "USDT", 100, False),
    ("okx", "DOGE/USDT:USDT"): (D(1000), "USDT", 50, False),
}


@pytest.mark.parametrize(("exchange", "symbol"), list(PERPS), ids=lambda v: str(v))
def test_linear_swaps_are_perpetuals(exchange: str, symbol: str) -> None:
    contract, settle, leverage, traded = PERPS[exchange, symbol]
    got = instrument_from_market(exchange, markets(exchange)[symbol], MODE[exchange])
    i = got.instrument
    assert (i.kind, i.perpetual, i.contract_size, i.margin_asset, i.settle, i.max_leverage) == (
        "perpetual", True, contract, settle, settle, leverage)
    [tier] = i.margin_tiers
    assert (tier.maint_rate, tier.max_leverage, tier.maint_amount) == (D("0.005"), leverage, 0)
    assert tier.cap >= D("1e30")
    assert i.tradable is traded and (got.refused is None) is traded
    if not traded:
        assert f"contract size {contract}" in (got.refused or "")


def test_a_stated_maintenance_margin_rate_is_the_tier() -> None:
    market = {**markets("bybit")["BTC/USDT:USDT"], "maintenanceMarginRate": 0.004}
    [tier] = instrument_from_market("bybit", market, TICK_SIZE).instrument.margin_tiers
    assert tier.maint_rate == D("0.004")
    bad = {**market, "maintenanceMarginRate": 1.5}
    with pytest.raises(MarketError, match=r"maintenanceMarginRate 1.5 is not a rate"):
        instrument_from_market("bybit", bad, TICK_SIZE)


@pytest.mark.parametrize("exchange", sorted(MODE))
def test_only_linear_swaps_with_a_settle_currency_are_perpetuals(exchange: str) -> None:
    """Inverse swaps, dated futures and options stay recorded only, never perpetuals."""
    for symbol, market in markets(exchange).items():
        got = instrument_from_market(exchange, market, MODE[exchange])
        linear_swap = got.kind == "swap" and market.get("linear") is True
        assert got.instrument.perpetual is (linear_swap and bool(market.get("settle"))), symbol
        if got.kind != "spot" and not got.instrument.perpetual:
            assert not got.instrument.tradable and got.refused, symbol
            assert "recorded, not traded" in got.refused, symbol


@pytest.mark.parametrize("exchange", sorted(MODE))
def test_every_fixture_market_maps_onto_its_own_grid(exchange: str) -> None:
    """Every market of every fixture maps; its min quantity and price bounds sit on the
    grid it maps to where the exchange says so (a sanity check on the mapping)."""
    for symbol, market in markets(exchange).items():
        got = instrument_from_market(exchange, market, MODE[exchange]).instrument
        assert got.tick_size > 0 and got.step_size > 0, symbol
        assert got.tick_size == got.tick_size.normalize() or got.tick_size >= 1, symbol
        price_min = ((market.get("limits") or {}).get("price") or {}).get("min")
        if price_min and MODE[exchange] == TICK_SIZE:
            assert D(repr(float(price_min))) % got.tick_size == 0, symbol


@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_a_float_tick_is_its_shortest_repr(value: float) -> None:
    assert grid(value, TICK_SIZE, "x") == D(repr(value))
    assert float(grid(value, TICK_SIZE, "x")) == value


@given(st.integers(-3, 18))
def test_decimal_places_are_a_power_of_ten(digits: int) -> None:
    assert grid(digits, DECIMAL_PLACES, "x") == D(10) ** -digits
    assert grid(float(digits), DECIMAL_PLACES, "x") == D(10) ** -digits


@pytest.mark.parametrize(("value", "mode"), [(0, TICK_SIZE), (-0.1, TICK_SIZE), (None, TICK_SIZE),
                                             (float("nan"), TICK_SIZE), (2.5, DECIMAL_PLACES),
                                             ("x", DECIMAL_PLACES)])
def test_a_bad_precision_is_one_line(value: object, mode: int) -> None:
    with pytest.raises(MarketError) as err:
        grid(value, mode, "okx 'BTC/USDT': precision.price")
    assert str(err.value).startswith("okx 'BTC/USDT': precision.price: ")
    assert "\n" not in str(err.value)


def test_significant_digits_markets_are_recorded_not_traded() -> None:
    market = dict(markets("bybit")["BTC/USDT"], precision={"price": 5, "amount": 8})
    got = instrument_from_market("bitfinex", market, SIGNIFICANT_DIGITS)
    assert not got.instrument.tradable and "significant digits" in (got.refused or "")


def test_an_inactive_market_is_cancel_only() -> None:
    market = dict(markets("okx")["BTC/USDT"], active=False)
    got = instrument_from_market("okx", market, TICK_SIZE)
    assert got.instrument.status == CANCEL_ONLY and got.refused is None


def test_symbols_are_unified_and_an_exchange_id_is_named() -> None:
    [btc] = markets_for("bybit", markets("bybit"), TICK_SIZE, ["BTC/USDT", "BTC/USDT"])
    assert btc.instrument.symbol == "BTC/USDT" and btc.instrument.status == TRADING
    with pytest.raises(MarketError, match=r"no market 'XBTUSDT'; ccxt calls it 'BTC/USDT'$"):
        markets_for("kraken", markets("kraken"), TICK_SIZE, ["XBTUSDT"])
    with pytest.raises(MarketError, match=r"no market 'BTC-USDT'; write ccxt's unified symbol"):
        markets_for("kraken", markets("kraken"), TICK_SIZE, ["BTC-USDT"])


def test_a_market_without_a_grid_is_recorded_not_traded() -> None:
    market = markets("binance")["BTC/USDT:USDT-231229"]
    got = instrument_from_market("binance", market, DECIMAL_PLACES)
    assert not got.instrument.tradable
    assert got.refused == ("binance 'BTC/USDT:USDT-231229': precision.price: no precision "
                           "stated: recorded, not traded")


def test_a_config_entry_that_disagrees_with_the_exchange_is_one_line() -> None:
    market = instrument_from_market("bybit", markets("bybit")["BTC/USDT"], TICK_SIZE).instrument
    mine = Instrument(venue="bybit", symbol="BTC/USDT", base="BTC", quote="USDT",
                      tick_size=D("0.01"), step_size=D("0.000001"), min_notional=D(5))
    assert disagreement(mine, market) == (
        "instrument bybit/BTC/USDT: tick_size is 0.01 in the config but 0.1 on the exchange")
    same = Instrument(venue="bybit", symbol="BTC/USDT", base="BTC", quote="USDT",
                      tick_size=D("0.1"), step_size=D("0.000001"), min_notional=D(5))
    assert disagreement(same, market) is None


def test_a_perpetual_configured_as_spot_disagrees() -> None:
    market = instrument_from_market("bybit", markets("bybit")["BTC/USDT:USDT"],
                                    TICK_SIZE).instrument
    spot = Instrument(venue="bybit", symbol="BTC/USDT:USDT", base="BTC", quote="USDT",
                      tick_size=D("0.1"), step_size=D("0.001"), min_notional=D(0))
    assert disagreement(spot, market) == (
        "instrument bybit/BTC/USDT:USDT: kind is spot in the config but perpetual on the "
        "exchange")
    perp = msgspec.structs.replace(spot, kind="perpetual", margin_asset="USDT")
    assert disagreement(perp, market) is None
    assert disagreement(msgspec.structs.replace(perp, contract_size=D(10)), market) == (
        "instrument bybit/BTC/USDT:USDT: contract_size is 10 in the config but 1 on the "
        "exchange")


def test_keys_come_from_the_environment_or_systemd_credential_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.ccxt.exchange import secret_of

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("OKX1_API_KEY", "from-env")
    assert secret_of("OKX1", "API_KEY") == "from-env"
    (tmp_path / "okx1_api_secret").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert secret_of("OKX1", "API_SECRET") == "from-file"
    assert secret_of("OKX1", "API_PASSWORD") is None


def test_an_exchange_moved_to_plain_http_closes_without_the_ssl_grace() -> None:
    """ccxt's close() sleeps `timeout_on_exit` (250 ms) for SSL transports; a venue whose
    every URL is plain HTTP or websocket (a local fake or proxy) skips it, the real one
    keeps it."""
    from adapters.ccxt.exchange import build_exchange
    from daemon.config_markets import VenueConfig

    def built(**urls: str) -> float:
        vcfg = msgspec.convert({"name": "bx", "kind": "ccxt", "exchange": "binance",
                                "trade": False, "urls": urls}, VenueConfig)
        return build_exchange(vcfg).timeout_on_exit

    assert built() == 250
    assert built(**{"*": "https://proxy.example"}) == 250
    assert built(**{"*": "http://127.0.0.1:8990"}) == 0
