"""Binance user data stream translator: the section 7 payloads of
`binance-spot-protocol.md` field by field, the documented flows, duplicates and
out-of-order reports, balances, unknown events and malformed payloads."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from adapters.binance.user_stream import (
    STP_REASON,
    BalanceDelta,
    UserStreamTranslator,
    default_strategy_of,
)
from events.orders import (
    Fill,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderRejected,
)
from events.state import BalanceChanged

MS = 1_000_000
RECV = 1_763_735_400_200_000_000

# Verbatim from section 7.
DOC_EXECUTION_REPORT = (
    b'{"subscriptionId":0,"event":{'
    b'"e":"executionReport","E":1763735400125,"s":"BTCUSDT","c":"tl-7f3a9c2e01",'
    b'"S":"BUY","o":"MARKET","f":"GTC","q":"0.00150000","p":"0.00000000","P":"0.00000000",'
    b'"F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE",'
    b'"i":48712039201,"l":"0.00100000","z":"0.00100000","L":"64000.00000000",'
    b'"n":"0.00000100","N":"BTC","T":1763735400123,"t":5301122334,"I":112233445566,'
    b'"w":false,"m":false,"M":false,"O":1763735400123,"Z":"64.00000000",'
    b'"Y":"64.00000000","Q":"0.00000000","W":1763735400123,"V":"EXPIRE_MAKER"}}'
)
DOC_ACCOUNT_POSITION = (
    b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1763735400126,'
    b'"u":1763735400123,"B":[{"a":"BTC","f":"0.00149850","l":"0.00000000"},'
    b'{"a":"USDT","f":"903.99999500","l":"0.00000000"}]}}'
)
DOC_BALANCE_UPDATE = (
    b'{"subscriptionId":0,"event":{"e":"balanceUpdate","E":1573200697110,"a":"BTC",'
    b'"d":"100.00000000","T":1573200697068}}'
)

_exec_id = iter(range(900_000_000, 999_999_999))


def report(**over: object) -> bytes:
    """A LIMIT BUY executionReport for order 7 of strategy "mm", with overrides."""
    ev: dict[str, object] = {
        "e": "executionReport", "E": 1_000, "s": "BTCUSDT", "c": "mm-7", "S": "BUY",
        "o": "LIMIT", "f": "GTC", "q": "2.00000000", "p": "100.00000000",
        "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "", "x": "NEW", "X": "NEW",
        "r": "NONE", "i": 77, "l": "0.00000000", "z": "0.00000000", "L": "0.00000000",
        "n": "0", "N": None, "T": 999, "t": -1, "I": next(_exec_id), "w": True,
        "m": False, "M": False, "O": 999, "Z": "0.00000000", "Y": "0.00000000",
        "Q": "0.00000000", "V": "EXPIRE_MAKER",
    }
    ev.update(over)
    return json.dumps({"subscriptionId": 0, "event": ev}).encode()


def trade(t: int, qty: str, status: str, **over: object) -> bytes:
    return report(x="TRADE", X=status, t=t, l=qty, L="100.00000000", n="0.00100000",
                  N="USDT", m=True, **over)


@pytest.fixture
def tr() -> UserStreamTranslator:
    return UserStreamTranslator("binance")


def test_doc_execution_report_field_by_field(tr: UserStreamTranslator) -> None:
    [ev] = tr.translate(DOC_EXECUTION_REPORT, RECV)
    assert type(ev) is Fill
    assert ev.ts_event == 1763735400123 * MS  # T, transaction time
    assert ev.ts_recv == RECV
    assert ev.venue == "binance"
    assert ev.symbol == "BTCUSDT"
    assert ev.strategy_id == "tl"
    assert ev.client_order_id == "tl-7f3a9c2e01"
    assert ev.trade_id == "5301122334"
    assert ev.side == "BUY"
    assert ev.qty == Decimal("0.00100000")
    assert ev.price == Decimal("64000.00000000")
    assert ev.fee == Decimal("0.00000100")
    assert ev.fee_currency == "BTC"
    assert ev.liquidity == "TAKER"  # m false
    assert ev.venue_order_id == "48712039201"
    assert ev.seq == 0
    assert all(type(v) is Decimal for v in (ev.qty, ev.price, ev.fee))


def test_doc_execution_report_replayed_is_ignored(tr: UserStreamTranslator) -> None:
    assert len(tr.translate(DOC_EXECUTION_REPORT, RECV)) == 1
    assert tr.translate(DOC_EXECUTION_REPORT, RECV + 1) == []


def test_limit_flow_new_partial_filled(tr: UserStreamTranslator) -> None:
    [acc] = tr.translate(report(), RECV)
    assert acc == OrderAccepted(ts_event=999 * MS, ts_recv=RECV, venue="binance",
                                symbol="BTCUSDT", strategy_id="mm", client_order_id="mm-7",
                                venue_order_id="77")
    assert tr.order_rank("BTCUSDT", 77) == 1

    [f1] = tr.translate(trade(501, "0.50000000", "PARTIALLY_FILLED", T=1_500), RECV)
    assert type(f1) is Fill
    assert (f1.trade_id, f1.qty, f1.price, f1.fee, f1.fee_currency, f1.liquidity) == (
        "501", Decimal("0.5"), Decimal("100"), Decimal("0.001"), "USDT", "MAKER")
    assert f1.ts_event == 1_500 * MS
    assert tr.order_rank("BTCUSDT", 77) == 2

    out = tr.translate(trade(502, "1.50000000", "FILLED", z="2.00000000"), RECV)
    assert [type(e) for e in out] == [Fill]  # no extra event on FILLED
    assert isinstance(out[0], Fill)
    assert out[0].qty == Decimal("1.5")
    assert tr.order_rank("BTCUSDT", 77) == 3


def test_cancel_uses_original_client_order_id(tr: UserStreamTranslator) -> None:
    tr.translate(report(), RECV)
    [ev] = tr.translate(report(x="CANCELED", X="CANCELED", c="cancel-req-1", C="mm-7"), RECV)
    assert type(ev) is OrderCanceled
    assert ev.client_order_id == "mm-7"
    assert ev.strategy_id == "mm"
    assert ev.venue_order_id == "77"
    # a second CANCELED (other execution id) does not close it again
    assert tr.translate(report(x="CANCELED", X="CANCELED", c="x", C="mm-7"), RECV) == []


def test_ioc_remainder_expires(tr: UserStreamTranslator) -> None:
    tr.translate(report(f="IOC"), RECV)
    tr.translate(trade(601, "0.50000000", "PARTIALLY_FILLED", f="IOC"), RECV)
    [ev] = tr.translate(report(f="IOC", x="EXPIRED", X="EXPIRED", z="0.50000000"), RECV)
    assert type(ev) is OrderExpired
    assert (ev.client_order_id, ev.venue_order_id, ev.strategy_id) == ("mm-7", "77", "mm")
    assert tr.last_expiry_reason["mm-7"] == ""


def test_expiry_reason_and_stp(tr: UserStreamTranslator) -> None:
    [ev] = tr.translate(report(x="EXPIRED", X="EXPIRED", eR="SOME_REASON"), RECV)
    assert type(ev) is OrderExpired and ev.reason == "SOME_REASON"
    assert tr.last_expiry_reason["mm-7"] == "SOME_REASON"

    [ev] = tr.translate(
        report(i=78, c="mm-8", x="TRADE_PREVENTION", X="EXPIRED_IN_MATCH"), RECV)
    assert type(ev) is OrderExpired and ev.client_order_id == "mm-8"
    assert ev.reason == STP_REASON and tr.last_expiry_reason["mm-8"] == STP_REASON

    # STP DECREMENT leaves the order open: nothing emitted, counted
    assert tr.translate(report(i=79, c="mm-9", x="TRADE_PREVENTION", X="NEW"), RECV) == []
    assert tr.unknown["TRADE_PREVENTION/NEW"] == 1


def test_rejection(tr: UserStreamTranslator) -> None:
    [ev] = tr.translate(report(x="REJECTED", X="REJECTED", r="INSUFFICIENT_BALANCES"), RECV)
    assert ev == OrderRejected(ts_event=999 * MS, ts_recv=RECV, venue="binance",
                               symbol="BTCUSDT", strategy_id="mm", client_order_id="mm-7",
                               reason="INSUFFICIENT_BALANCES", code="")


def test_replaced_maps_to_amended(tr: UserStreamTranslator) -> None:
    tr.translate(report(), RECV)
    [ev] = tr.translate(report(x="REPLACED", X="NEW", q="1.00000000"), RECV)
    assert type(ev) is OrderAmended
    assert (ev.client_order_id, ev.qty, ev.price, ev.trigger_price) == (
        "mm-7", Decimal("1"), Decimal("100"), None)
    tr.translate(report(x="CANCELED", X="CANCELED"), RECV)
    assert tr.translate(report(x="REPLACED", X="NEW", q="0.5"), RECV) == []


def test_duplicate_fill_ignored(tr: UserStreamTranslator) -> None:
    assert len(tr.translate(trade(701, "0.5", "PARTIALLY_FILLED"), RECV)) == 1
    # same trade id, different execution id (e.g. re-sent by a reconciler): still ignored
    assert tr.translate(trade(701, "0.5", "PARTIALLY_FILLED"), RECV) == []
    assert tr.dropped["trade"] == 1


def test_new_after_trade_ignored(tr: UserStreamTranslator) -> None:
    [f] = tr.translate(trade(801, "0.5", "PARTIALLY_FILLED"), RECV)
    assert type(f) is Fill
    assert tr.translate(report(), RECV) == []  # the fill already implied acceptance
    assert tr.dropped["stale"] == 1


def test_late_fill_after_close_still_emitted(tr: UserStreamTranslator) -> None:
    tr.translate(report(), RECV)
    tr.translate(report(x="CANCELED", X="CANCELED"), RECV)
    [f] = tr.translate(trade(901, "0.5", "PARTIALLY_FILLED"), RECV)
    assert type(f) is Fill
    assert tr.order_rank("BTCUSDT", 77) == 3  # still closed


def test_closed_orders_are_forgotten_after_bound() -> None:
    tr = UserStreamTranslator("binance", max_closed=2, max_ids=3)
    for i in range(5):
        tr.translate(report(i=i, c=f"mm-{i}", x="CANCELED", X="CANCELED"), RECV)
    assert tr.order_rank("BTCUSDT", 0) == 0
    assert tr.order_rank("BTCUSDT", 4) == 3
    assert len(tr._closed) == 2 and len(tr._executions) == 3


def test_custom_strategy_of() -> None:
    tr = UserStreamTranslator("binance", strategy_of=lambda cid: "S:" + cid)
    [ev] = tr.translate(report(), RECV)
    assert isinstance(ev, OrderAccepted)
    assert ev.strategy_id == "S:mm-7"
    assert default_strategy_of("a-b-12") == "a-b"
    assert default_strategy_of("6gCrw2kRUAF9CvJDGP16IP") == ""


def test_account_position_exact_decimals(tr: UserStreamTranslator) -> None:
    out = tr.translate(DOC_ACCOUNT_POSITION, RECV)
    assert out == [
        BalanceChanged(ts_event=1763735400123 * MS, ts_recv=RECV, venue="binance",
                       currency="BTC", total=Decimal("0.00149850"),
                       free=Decimal("0.00149850"), locked=Decimal("0"), reason="account"),
        BalanceChanged(ts_event=1763735400123 * MS, ts_recv=RECV, venue="binance",
                       currency="USDT", total=Decimal("903.99999500"),
                       free=Decimal("903.99999500"), locked=Decimal("0"), reason="account"),
    ]
    assert isinstance(out[1], BalanceChanged)
    assert str(out[1].free) == "903.99999500"  # exact text, no float round trip
    both = b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":5,"u":4,' \
           b'"B":[{"a":"ETH","f":"0.1","l":"0.2"}]}}'
    [ev] = tr.translate(both, RECV)
    assert isinstance(ev, BalanceChanged)
    assert ev.total == Decimal("0.3") and ev.locked == Decimal("0.2")


def test_balance_update_kept_as_delta(tr: UserStreamTranslator) -> None:
    assert tr.translate(DOC_BALANCE_UPDATE, RECV) == []
    assert tr.drain_balance_deltas() == [
        BalanceDelta(ts_event=1573200697068 * MS, ts_recv=RECV, venue="binance",
                     currency="BTC", delta=Decimal("100.00000000"))
    ]
    assert tr.drain_balance_deltas() == []


def test_unknown_and_non_event_frames(tr: UserStreamTranslator) -> None:
    assert tr.translate(b'{"subscriptionId":0,"event":{"e":"eventStreamTerminated",'
                        b'"E":1}}', RECV) == []
    assert tr.translate(b'{"subscriptionId":0,"event":{"e":"listStatus","E":1}}', RECV) == []
    assert tr.translate(b'{"id":1,"status":200,"result":{"subscriptionId":0}}', RECV) == []
    assert tr.unknown == {"eventStreamTerminated": 1, "listStatus": 1, "<no event>": 1}


def test_unwrapped_legacy_payload(tr: UserStreamTranslator) -> None:
    body = json.loads(report())["event"]
    [ev] = tr.translate(json.dumps(body).encode(), RECV)
    assert type(ev) is OrderAccepted


@pytest.mark.parametrize("raw", [
    b"not json",
    b'{"subscriptionId":0,"event":{"e":"executionReport","E":1}}',  # fields missing
    b'{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1,'
    b'"B":[{"a":"BTC","f":"abc","l":"0"}]}}',  # bad decimal
])
def test_malformed_raises_msgspec_error(tr: UserStreamTranslator, raw: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):
        tr.translate(raw, RECV)
