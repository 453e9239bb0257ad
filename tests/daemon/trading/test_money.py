"""Conversion into the account currency (`daemon.trading.money.Converter`): direct,
inverted, multi-hop and configured rates, the order paths are tried in, exactness,
and that a currency with no conversion mark has no value (never 1)."""

from __future__ import annotations

import random
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.trading.money import Converter, account_currency_of
from events.instruments import Instrument


def inst(symbol: str, base: str, quote: str, venue: str = "v") -> Instrument:
    return Instrument(venue=venue, symbol=symbol, base=base, quote=quote,
                      tick_size=D("0.00000001"), step_size=D("0.00000001"))


INSTRUMENTS = [
    inst("BTCUSDT", "BTC", "USDT"),
    inst("BNBBTC", "BNB", "BTC"),
    inst("USDTTRY", "USDT", "TRY"),
    inst("SPY", "SPY", "USD"),
    inst("DOGEBTC", "DOGE", "BTC", venue="other"),
    inst("DOGEUSDT", "DOGE", "USDT", venue="other"),
]


class Marks(dict[tuple[str, str], D]):
    def __call__(self, venue: str, symbol: str) -> D | None:
        return self.get((venue, symbol))


def converter(marks: Marks, rates: dict[str, D] | None = None,
              instruments: list[Instrument] = INSTRUMENTS) -> Converter:
    return Converter("USDT", instruments, rates or {}, marks)


def test_the_account_currency_is_itself() -> None:
    assert converter(Marks()).rate("v", "USDT") == 1
    assert converter(Marks()).convert(D("12.5"), "USDT", "v") == D("12.5")


def test_no_mark_means_no_value_never_one() -> None:
    conv = converter(Marks())
    for currency in ("BTC", "BNB", "TRY", "DOGE", "USD", "XYZ"):
        assert conv.rate("v", currency) is None
        assert conv.convert(D(1000), currency, "v") is None
    assert "no conversion from XYZ to USDT" in conv.describe("v", "XYZ")
    assert "BTCUSDT has no price" in conv.describe("v", "BTC")


def test_direct_inverted_and_multi_hop() -> None:
    marks = Marks({("v", "BTCUSDT"): D("50000"), ("v", "USDTTRY"): D("32")})
    conv = converter(marks)
    assert conv.rate("v", "BTC") == 50000
    assert conv.rate("v", "TRY") == D("0.03125")  # 1 / 32, exact
    assert conv.rate("v", "BNB") is None  # BNBBTC has no mark yet
    marks[("v", "BNBBTC")] = D("0.0121")
    assert conv.rate("v", "BNB") == D("605")  # BNB -> BTC -> USDT
    assert conv.convert(D("0.0075"), "BNB", "v") == D("4.5375")


def test_an_inexact_inverse_is_divided_under_60_digits() -> None:
    conv = converter(Marks({("v", "USDTTRY"): D("3")}))
    rate = conv.rate("v", "TRY")
    assert rate is not None
    assert abs(Fraction(rate) - Fraction(1, 3)) < Fraction(1, 10**59)


def test_configured_rates_are_the_only_constants() -> None:
    marks = Marks({("v", "SPY"): D("400")})
    assert converter(marks).rate("v", "USD") is None
    conv = converter(marks, {"USD": D("0.999")})
    assert conv.rate("v", "USD") == D("0.999")
    assert conv.rate("v", "SPY") == D("399.6")  # SPY -> USD -> (rate) USDT


def test_a_market_price_beats_a_configured_rate_of_the_same_length() -> None:
    marks = Marks({("v", "BTCUSDT"): D("50000")})
    conv = converter(marks, {"BTC": D(1)})
    assert conv.rate("v", "BTC") == 50000
    assert converter(Marks(), {"BTC": D(1)}).rate("v", "BTC") == 1  # ...the rate is the fallback


def test_own_venue_first_then_any_venue_and_shortest_first() -> None:
    instruments = [*INSTRUMENTS, inst("BTCUSDT", "BTC", "USDT", venue="other")]
    marks = Marks({("v", "BTCUSDT"): D("50000"), ("other", "BTCUSDT"): D("50100")})
    conv = converter(marks, instruments=instruments)
    assert conv.rate("v", "BTC") == 50000
    assert conv.rate("other", "BTC") == 50100
    assert conv.rate("third", "BTC") == 50100  # no own instrument: by venue name ("other")
    # DOGE on "other": the direct pair before the path through BTC
    marks[("other", "DOGEBTC")] = D("0.000002")
    assert conv.rate("other", "DOGE") == D("0.1002")  # only the 2-hop path has marks
    marks[("other", "DOGEUSDT")] = D("0.1")
    assert conv.rate("other", "DOGE") == D("0.1")


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_path_order_does_not_depend_on_the_instruments_order(rnd: random.Random) -> None:
    shuffled = list(INSTRUMENTS)
    rnd.shuffle(shuffled)
    a, b = converter(Marks(), instruments=INSTRUMENTS), converter(Marks(), instruments=shuffled)
    for venue in ("v", "other"):
        for currency in ("BTC", "BNB", "TRY", "DOGE", "SPY", "USD"):
            assert a.paths(venue, currency) == b.paths(venue, currency)


prices = st.integers(1, 10**9).map(lambda n: D(n) / 10**4)


@settings(max_examples=200, deadline=None)
@given(prices, prices, prices, st.integers(-10**12, 10**12).map(lambda n: D(n) / 10**6))
def test_conversion_is_the_exact_product_of_its_marks(btc: D, bnb: D, try_: D, amount: D
                                                     ) -> None:
    marks = Marks({("v", "BTCUSDT"): btc, ("v", "BNBBTC"): bnb, ("v", "USDTTRY"): try_})
    conv = converter(marks)
    value = conv.convert(amount, "BNB", "v")
    assert value is not None  # a product of terminating decimals: exact
    assert Fraction(value) == Fraction(amount) * Fraction(bnb) * Fraction(btc)
    value = conv.convert(amount, "TRY", "v")
    assert value is not None
    # 1/mark under 60 significant digits: relative error below 1e-59
    exact = Fraction(amount) / Fraction(try_)
    assert abs(Fraction(value) - exact) <= abs(exact) * Fraction(1, 10**59)


def test_account_currency_of_the_instruments() -> None:
    assert account_currency_of(["USDT", "USDT"]) == "USDT"
    assert account_currency_of([]) is None
    with pytest.raises(ValueError, match="quoted in USD, USDT"):
        account_currency_of(["USDT", "USD"])
