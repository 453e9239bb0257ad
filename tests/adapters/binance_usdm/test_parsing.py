"""USD-M payloads into instruments and events: exchangeInfo + brackets, the
markPrice stream and its funding, the user stream and the REST history."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.binance.parse import FundingSettlement, StreamParser, parse_mark_price
from adapters.binance_usdm.endpoints import resolve_usdm_endpoints
from adapters.binance_usdm.exchange_info import disagreement, perpetual_instruments
from adapters.binance_usdm.user_events import (
    UsdmUserTranslator,
    balance_events,
    funding_hour,
    position_diff,
    positions_of,
)
from events.instruments import PERPETUAL
from events.margin import maintenance_margin
from events.orders import Fill, OrderAccepted, OrderCanceled
from events.perp import FundingPayment, FundingRate, LeverageChanged, Liquidation, MarkPrice
from tests.adapters.binance_usdm import samples

MS = 1_000_000
D = Decimal


def _btc():
    insts = perpetual_instruments(
        samples.exchange_info(samples.perp_symbol(),
                              samples.perp_symbol("BTCUSDT_260327", contract="CURRENT_QUARTER"),
                              samples.perp_symbol("ETHUSDT", base="ETH")),
        samples.leverage_brackets(BTCUSDT=samples.BTC_BRACKETS,
                                  BTCUSDT_260327=samples.BTC_BRACKETS), "usdm")
    return insts


def test_only_perpetuals_with_brackets_become_instruments():
    insts = _btc()
    assert [i.symbol for i in insts] == ["BTCUSDT"]  # no quarterly, ETH has no brackets
    i = insts[0]
    assert (i.kind, i.tick_size, i.step_size, i.min_notional, i.settle, i.max_leverage) == (
        PERPETUAL, D("0.1"), D("0.001"), D("100"), "USDT", 125)
    assert [(t.cap, t.maint_rate, t.max_leverage, t.maint_amount) for t in i.margin_tiers] == [
        (D(50000), D("0.004"), 125, D(0)), (D(250000), D("0.005"), 100, D(50)),
        (D(3000000), D("0.01"), 50, D(1300))]


def test_brackets_cum_keeps_maintenance_margin_continuous():
    """Binance's `cum` is used as stated; it must agree with our continuity rule."""
    i = _btc()[0]
    for t in i.margin_tiers[:-1]:
        below = maintenance_margin(i, t.cap)
        above = maintenance_margin(i, t.cap + D("0.01"))
        assert abs(above - below) < D("0.001")


def test_configured_instrument_disagreement_is_one_line():
    i = _btc()[0]
    assert disagreement(i, i, leverage=20) is None
    wrong = type(i)(**{**{f: getattr(i, f) for f in i.__struct_fields__}, "tick_size": D("1")})
    line = disagreement(wrong, i)
    assert line == "[[instruments]] usdm:BTCUSDT: tick_size = 1 but Binance says 0.1"
    assert "at most 125" in (disagreement(i, i, leverage=126) or "")
    assert "no PERPETUAL contract" in (disagreement(i, None) or "")


def test_endpoints_named_url_and_bad():
    assert resolve_usdm_endpoints("testnet", {}).rest == "https://testnet.binancefuture.com"
    e = resolve_usdm_endpoints("http://127.0.0.1:9000/", {})
    assert (e.rest, e.user_stream("k")) == ("http://127.0.0.1:9000", "ws://127.0.0.1:9000/ws/k")
    with pytest.raises(ValueError, match="bad endpoints 'nope'"):
        resolve_usdm_endpoints("nope", {})


def _mark(e_ms: int, t_ms: int, rate: str = "0.0001", p: str = "60000.5") -> bytes:
    return json.dumps({"e": "markPriceUpdate", "E": e_ms, "s": "BTCUSDT", "p": p,
                       "i": "60001.2", "P": "60000", "r": rate, "T": t_ms}).encode()


def test_mark_price_stream():
    parser = StreamParser("usdm")
    raw = b'{"stream":"btcusdt@markPrice@1s","data":' + _mark(1000, 5000) + b"}"
    m = parser.parse(raw, 7)
    assert m == MarkPrice(ts_event=1000 * MS, ts_recv=7, venue="usdm", symbol="BTCUSDT",
                          mark=60000.5, index=60001.2, funding_rate=0.0001,
                          next_funding_ts=5000 * MS)


@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_funding_rate_emitted_once_per_funding_time(steps):
    """Whatever the message times, each funding time that messages reach is
    settled exactly once, with the rate the last message before it showed."""
    watch, t, period = FundingSettlement("usdm"), 0, 8000
    out: list[FundingRate] = []
    last_rate: dict[int, str] = {}
    reached: set[int] = set()
    seen_before: set[int] = set()
    for step in steps:
        t += step
        nxt = (t // period + 1) * period
        rate = f"0.000{t % 9 + 1}"
        for ft in list(seen_before):
            if t >= ft:
                reached.add(ft)
        r = watch.settle(parse_mark_price(_mark(t, nxt, rate).decode(), "usdm", 0))
        if r is not None:
            out.append(r)
        last_rate[nxt] = rate
        seen_before.add(nxt)
    assert sorted(r.funding_ts for r in out) == sorted(ft * MS for ft in reached)
    assert len({r.funding_ts for r in out}) == len(out)
    for r in out:
        assert r.rate == float(last_rate[r.funding_ts // MS])


def test_order_updates_ack_fill_cancel_once():
    tr = UsdmUserTranslator("usdm")
    ack = tr.translate(samples.order_update(), 1)
    assert [type(e) for e in ack] == [OrderAccepted]
    fill = samples.order_update(x="TRADE", status="PARTIALLY_FILLED", last_qty="0.004",
                                last_price="60000", cum="0.004", trade_id=11, fee="0.096",
                                fee_asset="USDT", maker=True, rp="0")
    (f,) = tr.translate(fill, 2)
    assert isinstance(f, Fill)
    assert (f.trade_id, f.qty, f.price, f.fee, f.fee_currency, f.liquidity, f.strategy_id) == (
        "11", D("0.004"), D("60000"), D("0.096"), "USDT", "MAKER", "s1")
    assert tr.translate(fill, 3) == []  # the same trade again: nothing
    (c,) = tr.translate(samples.order_update(x="CANCELED", status="CANCELED", cum="0.004"), 4)
    assert isinstance(c, OrderCanceled)


@pytest.mark.parametrize("kw", [{"type": "LIQUIDATION", "cid": "x"},
                                {"cid": "autoclose-1700000000000", "type": "MARKET"}])
def test_liquidation_is_not_a_fill(kw):
    tr = UsdmUserTranslator("usdm")
    tr.marks["BTCUSDT"] = 51000.0
    raw = samples.order_update(side="SELL", x="TRADE", status="FILLED", last_qty="0.010",
                               last_price="50900", cum="0.010", trade_id=99, fee="2.5",
                               fee_asset="USDT", **kw)
    (liq,) = tr.translate(raw, 1)
    assert liq == Liquidation(ts_event=liq.ts_event, ts_recv=1, venue="usdm", symbol="BTCUSDT",
                              side="SELL", qty=D("0.010"), price=D("50900"), mark=D("51000"),
                              fee=D("2.5"), fee_currency="USDT", trade_id="99")
    assert tr.translate(raw, 2) == []
    assert tr.translate(samples.order_update(x="NEW", **kw), 3) == []


def test_account_update_balances_and_funding_with_a_position():
    tr = UsdmUserTranslator("usdm")
    tr.note_rate("BTCUSDT", D("0.0001"), D("60000"))
    ts = 1_700_000_003_123  # 3.1 s after 22:13:20... the funding hour is its floor
    raw = samples.account_update("FUNDING_FEE", [("USDT", "999.94", "999.94", "-0.06")],
                                 [("BTCUSDT", "0.010")], ts=ts)
    (pay,) = tr.translate(raw, 5)
    assert pay == FundingPayment(ts_event=ts * MS, ts_recv=5, venue="usdm", symbol="BTCUSDT",
                                 amount=D("-0.06"), currency="USDT", rate=D("0.0001"),
                                 mark=D("60000"), qty=D("0.010"), funding_ts=funding_hour(ts))
    assert tr.balances_wanted  # the available balance is read over REST
    assert not tr.income_wanted
    # the income history states the same payment: not published twice
    income = [{"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-0.06",
               "asset": "USDT", "time": ts + 40, "tranId": 9, "info": "FUNDING_FEE"}]
    assert tr.income(income, 6) == []


def test_cross_funding_without_positions_asks_for_income():
    tr = UsdmUserTranslator("usdm")
    raw = samples.account_update("FUNDING_FEE", [("USDT", "10", "10", "0.5")])
    assert tr.translate(raw, 1) == []
    assert tr.income_wanted and tr.balances_wanted
    rows = [{"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "0.5",
             "asset": "USDT", "time": 1_700_006_400_010, "tranId": 1}]
    (p,) = tr.income(rows, 2, positions={"BTCUSDT": D("-0.02")})
    assert (p.amount, p.qty, p.funding_ts, p.strategy_id) == (
        D("0.5"), D("-0.02"), 1_700_006_400_000 * MS, "")
    assert not tr.income_wanted


def test_journaled_payments_are_not_published_again():
    """A restart seeds the translator with the journal's payments."""
    rows = [{"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE", "income": "-1.25",
             "asset": "USDT", "time": 1_700_006_400_010, "tranId": 1}]
    first = UsdmUserTranslator("usdm").income(rows, 1)
    again = UsdmUserTranslator("usdm")
    again.seed_funding(first)  # type: ignore[arg-type]
    assert again.income(rows, 2) == []


def test_config_update_margin_call_and_expiry():
    tr = UsdmUserTranslator("usdm")
    (lev,) = tr.translate(b'{"e":"ACCOUNT_CONFIG_UPDATE","E":2,"T":1,'
                          b'"ac":{"s":"BTCUSDT","l":25}}', 1)
    assert lev == LeverageChanged(ts_event=MS, ts_recv=1, venue="usdm", symbol="BTCUSDT",
                                  leverage=25)
    assert tr.translate(b'{"e":"MARGIN_CALL","E":1,"cw":"3.1","p":[{"s":"BTCUSDT",'
                        b'"ps":"BOTH","pa":"1.3","mt":"CROSSED","iw":"0","mp":"187.2",'
                        b'"up":"-1.1","mm":"0.6"}]}', 1) == []
    assert tr.alerts == ["margin call on usdm BTCUSDT: position 1.3, mark 187.2, "
                         "maintenance margin 0.6, cross wallet 3.1"]
    assert tr.translate(b'{"e":"listenKeyExpired","E":1,"listenKey":"k"}', 1) == []
    assert tr.expired


def test_rest_balances_and_positions():
    rows = [{"accountAlias": "x", "asset": "USDT", "balance": "1000.5",
             "crossWalletBalance": "1000.5", "availableBalance": "900.25"},
            {"asset": "BNB", "balance": "1", "availableBalance": "1"}]
    (b,) = balance_events("usdm", rows, 1, 2, ["USDT"])
    assert (b.total, b.free, b.locked) == (D("1000.5"), D("900.25"), D("100.25"))
    pos = positions_of([{"symbol": "BTCUSDT", "positionAmt": "-0.020", "positionSide": "BOTH"},
                        {"symbol": "ETHUSDT", "positionAmt": "0.000", "positionSide": "BOTH"}])
    assert pos == {"BTCUSDT": D("-0.020")}
    assert position_diff("usdm", pos, {"BTCUSDT": D("-0.02")}) == []
    assert position_diff("usdm", pos, {"ETHUSDT": D("1")}) == [
        "usdm BTCUSDT: Binance holds -0.020 contracts, our fills add up to 0",
        "usdm ETHUSDT: Binance holds 0 contracts, our fills add up to 1"]
