"""The new-order query built from a template is the generic builder's, byte for byte.

`new_order_query` (the template on every order) against `rest_payload(new_order_params)`
(every pair percent-encoded), for random orders: plain and awkward symbols and
client ids (those fall back to the generic way), every optional parameter, decimals
with and without exponents. Then the whole signed query an order leaves with, against
the generic signing of the same pairs. The property is also run against broken
builders, to show it catches them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from adapters.binance import order_query
from adapters.binance.order_path import order_params
from adapters.binance.order_query import (
    decimal_text,
    new_order_params,
    new_order_query,
    submitted_order_query,
)
from adapters.binance.rest import BinanceRest
from adapters.binance.signing import Credentials, rest_payload, sign_rest
from events.orders import OrderSubmitted

# mostly what orders carry, sometimes what needs escaping ("%", "&", "=", space, non-ASCII)
plain_text = st.text("ABCXYZabc0189-_.~", min_size=1, max_size=12)
awkward_text = st.text("AB1-_ %&=+/é", min_size=1, max_size=8)
names = st.one_of(plain_text, plain_text, awkward_text)
decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=8,
                min_value=Decimal("-1e6"), max_value=Decimal("1e9")),
    # any exponent: 1E+2, 1E-9, -0, 0E-7
    st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e12"),
                max_value=Decimal("1e12")),
    st.sampled_from([Decimal("1E+2"), Decimal("1E-9"), Decimal("-0"), Decimal("0E-7"),
                     Decimal("-0.00"), Decimal("0.000001"), Decimal("1.0E+1")]),
)
orders = st.fixed_dictionaries({
    "symbol": names,
    "side": st.sampled_from(["BUY", "SELL"]),
    "type": st.one_of(st.sampled_from(["LIMIT", "MARKET", "STOP_LOSS_LIMIT", "LIMIT_MAKER"]),
                      names),
    "time_in_force": st.one_of(st.none(), st.sampled_from(["GTC", "IOC", "FOK"]), names),
    "quantity": st.one_of(st.none(), decimals),
    "quote_order_qty": st.one_of(st.none(), decimals),
    "price": st.one_of(st.none(), decimals),
    "stop_price": st.one_of(st.none(), decimals),
    "new_client_order_id": names,
    "new_order_resp_type": st.sampled_from(["ACK", "RESULT", "FULL"]),
    "self_trade_prevention_mode": st.one_of(st.none(), st.sampled_from(["EXPIRE_TAKER"]),
                                            names),
})


def reference(order: dict[str, Any]) -> str:
    return rest_payload(new_order_params(**order))


def holds_for(builder: Callable[..., str], *, shrink: bool = True) -> None:
    """The property: `builder` writes every order as the generic builder does."""
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @settings(max_examples=300, deadline=None, database=None, phases=phases,
              suppress_health_check=[HealthCheck.too_slow])
    @given(orders, st.integers(0, 2))
    def check(order: dict[str, Any], repeats: int) -> None:
        for _ in range(repeats + 1):  # the first call makes the template, later ones use it
            assert builder(**order) == reference(order)

    check()


def test_the_template_query_is_the_generic_query() -> None:
    holds_for(new_order_query)


def _price_and_quantity_swapped(**order: Any) -> str:
    order["quantity"], order["price"] = order["price"], order["quantity"]
    return new_order_query(**order)


def _unescaped(**order: Any) -> str:
    # a builder that trusts every value to be plain
    pairs = new_order_params(**order)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _stale_template(**order: Any) -> str:
    # a template cache keyed without the time in force
    key = (order["symbol"], order["side"], order["type"], None, order["new_order_resp_type"],
           order["self_trade_prevention_mode"], order["quantity"] is not None,
           order["quote_order_qty"] is not None, order["price"] is not None,
           order["stop_price"] is not None)
    if key not in order_query._templates:
        order_query._template(key)
    template = order_query._templates[key]
    if not template or not order_query.is_plain(order["new_client_order_id"]):
        return reference(order)
    values = [decimal_text(v) for v in (order["quantity"], order["quote_order_qty"],
                                         order["price"], order["stop_price"]) if v is not None]
    return template % (*values, order["new_client_order_id"])


@pytest.mark.parametrize("broken", [_price_and_quantity_swapped, _unescaped, _stale_template])
def test_the_property_catches_a_wrong_builder(broken: Callable[..., str]) -> None:
    with pytest.raises(AssertionError):
        holds_for(broken, shrink=False)  # the first failure is enough here


@settings(max_examples=300, deadline=None, database=None)
@given(decimals)
def test_decimal_text_is_fixed_point_text(d: Decimal) -> None:
    assert decimal_text(d) == format(d, "f")
    assert "E" not in decimal_text(d) and "e" not in decimal_text(d)


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"),
                                 Decimal("-Infinity"), Decimal("NaN123"), "nan", "inf"])
def test_decimal_text_refuses_what_is_not_a_finite_number(bad: Decimal | str) -> None:
    with pytest.raises(ValueError):
        decimal_text(bad)


def test_many_distinct_orders_do_not_grow_the_template_cache_without_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_query, "MAX_TEMPLATES", 8)
    monkeypatch.setattr(order_query, "_templates", {})
    for i in range(50):
        order = {"symbol": f"SYM{i}", "side": "BUY", "type": "LIMIT", "time_in_force": "GTC",
                 "quantity": Decimal("1"), "quote_order_qty": None, "price": Decimal("2"),
                 "stop_price": None, "new_client_order_id": f"c{i}",
                 "new_order_resp_type": "FULL", "self_trade_prevention_mode": None}
        assert new_order_query(**order) == reference(order)
        assert len(order_query._templates) <= 8


class _Captured(BinanceRest):
    """Records the query an order is handed to the transport with."""

    sent: list[str]

    async def _attempt(self, method: str, path: str, query: str, headers: Any,
                       weight: int, is_order: bool) -> tuple[int, Any, bytes, int, int]:
        self.sent.append(query)
        return 200, {}, b"{}", 0, 0


@settings(max_examples=200, deadline=None, database=None)
@given(orders.filter(lambda o: o["new_order_resp_type"] in ("ACK", "RESULT", "FULL")),
       st.integers(0, 2**41), st.integers(1, 60000))
def test_an_order_leaves_with_the_generic_signed_query(order: dict[str, Any], now_ms: int,
                                                        recv_window_ms: int) -> None:
    creds = Credentials(api_key="key", secret="secret")
    rest = _Captured("http://127.0.0.1:1", creds, now_ms=lambda: now_ms,
                     recv_window_ms=recv_window_ms)
    rest.sent = []
    args = dict(order)
    symbol, side, type_ = args.pop("symbol"), args.pop("side"), args.pop("type")
    asyncio.run(rest.new_order(symbol, side, type_, **args))
    generic = [*new_order_params(**order), ("timestamp", str(now_ms)),
               ("recvWindow", str(recv_window_ms))]
    assert rest.sent == [sign_rest(creds.signer(), generic)]


def test_a_query_string_is_signed_as_its_pairs_are() -> None:
    signer = Credentials(api_key="k", secret="s").signer()
    pairs = [("symbol", "BTCUSDT"), ("note", "a b&c=d"), ("timestamp", "1")]
    assert sign_rest(signer, rest_payload(pairs)) == sign_rest(signer, pairs)
    assert sign_rest(signer, "") == sign_rest(signer, [])


# --- the query straight from an OrderSubmitted ---------------------------------------------

submitted = st.builds(
    OrderSubmitted, ts_event=st.just(1), ts_recv=st.just(1), venue=st.just("binance"),
    strategy_id=st.just("s"), symbol=names, side=st.sampled_from(["BUY", "SELL"]),
    client_order_id=names,
    order_type=st.sampled_from(["LIMIT", "MARKET", "STOP_MARKET", "STOP_LIMIT",
                                "TRAILING_STOP"]),
    qty=decimals, price=st.one_of(st.none(), decimals),
    trigger_price=st.one_of(st.none(), decimals),
    time_in_force=st.sampled_from(["GTC", "IOC", "FOK", "GTD", "DAY"]),
    post_only=st.booleans())


def generic_submitted(e: OrderSubmitted) -> str | None:
    """What the order path sends without the shortcut: `order_params`, then
    `new_order`'s parameters (None where Spot cannot express the order)."""
    try:
        params = order_params(e)
    except ValueError:
        return None
    return reference({
        "symbol": e.symbol, "side": e.side, "type": params["type"],
        "time_in_force": params.get("time_in_force"), "quantity": params.get("quantity"),
        "quote_order_qty": None, "price": params.get("price"),
        "stop_price": params.get("stop_price"), "new_client_order_id": e.client_order_id,
        "new_order_resp_type": "FULL", "self_trade_prevention_mode": None})


def submitted_holds_for(builder: Callable[[OrderSubmitted], str | None], *,
                        shrink: bool = True) -> None:
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]

    @settings(max_examples=300, deadline=None, database=None, phases=phases,
              suppress_health_check=[HealthCheck.too_slow])
    @given(submitted, st.integers(0, 2))
    def check(e: OrderSubmitted, repeats: int) -> None:
        for _ in range(repeats + 1):
            fast = builder(e)
            # None: the order goes the generic way, whatever that makes of it
            assert fast is None or fast == generic_submitted(e)

    check()


def test_the_query_from_the_event_is_what_its_parameters_give() -> None:
    submitted_holds_for(submitted_order_query)


def test_the_usual_orders_do_take_the_shortcut() -> None:
    e = OrderSubmitted(ts_event=1, ts_recv=1, venue="binance", strategy_id="s",
                       symbol="BTCUSDT", side="BUY", client_order_id="s-1", order_type="LIMIT",
                       qty=Decimal("0.001"), price=Decimal("64000.10"), time_in_force="IOC")
    assert submitted_order_query(e) == generic_submitted(e) == (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC&quantity=0.001&price=64000.10"
        "&newClientOrderId=s-1&newOrderRespType=FULL")
    maker = msgspec.structs.replace(e, post_only=True)
    market = msgspec.structs.replace(e, order_type="MARKET", price=None)
    assert submitted_order_query(maker) == generic_submitted(maker) is not None
    assert submitted_order_query(market) == generic_submitted(market) is not None


def _post_only_ignored(e: OrderSubmitted) -> str | None:
    return submitted_order_query(msgspec.structs.replace(e, post_only=False))


def _any_time_in_force(e: OrderSubmitted) -> str | None:
    # LIMIT_MAKER sends no time in force, but Spot still needs one it has
    return submitted_order_query(msgspec.structs.replace(e, time_in_force="GTC")) \
        if e.order_type == "LIMIT" and e.post_only else submitted_order_query(e)


@pytest.mark.parametrize("broken", [_post_only_ignored, _any_time_in_force])
def test_the_event_property_catches_a_wrong_builder(
        broken: Callable[[OrderSubmitted], str | None]) -> None:
    with pytest.raises(AssertionError):
        submitted_holds_for(broken, shrink=False)
