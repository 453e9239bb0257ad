"""The query string of a Binance Spot new order (`POST /api/v3/order`).

Owns the parameters of a new order, their order on the wire, and two ways of
writing them that give the same bytes:

- `new_order_params`: the generic one, `(name, value)` pairs that
  `signing.rest_payload` percent-encodes (the reference);
- `new_order_query`: the one on every order. What is constant for a symbol and
  kind of order (`symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=IOC...`) is
  written once into a %-template, then each order is one %-format of its
  numbers and client order id. It falls back to the generic one whenever a
  value would need escaping (a symbol or client id outside the unreserved
  characters), so the two never differ (tests/adapters/binance/test_order_query.py);
- `submitted_order_query`: the same query straight from an `OrderSubmitted` of
  the kinds sent most (LIMIT, LIMIT_MAKER, MARKET), with no parameters dict
  between: what `order_path.order_params` and `BinanceRest.new_order` make of it.

`decimal_text` writes a number as Binance reads it: plain decimal text.
"""

from __future__ import annotations

from decimal import Decimal

from adapters.binance.signing import is_plain, rest_payload
from events.orders import OrderSubmitted

__all__ = ["decimal_text", "new_order_params", "new_order_query", "submitted_order_query"]

# Templates by the order's constant terms; a few per symbol in practice, cleared
# past this many so that no caller can grow it without bound.
MAX_TEMPLATES = 4096


def decimal_text(value: Decimal | int | str) -> str:
    """Plain decimal text for a request parameter: never an exponent
    (Decimal("1E-8") -> "0.00000001"), never NaN/Infinity."""
    if type(value) is Decimal and value.is_finite():
        # str() is format(d, "f") but for an exponent it would write ("1E-7",
        # "1E+2"), and it is three times cheaper
        text = str(value)
        if "E" not in text:
            return text
    d = Decimal(value) if not isinstance(value, Decimal) else value
    if not d.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return format(d, "f")


def new_order_params(
    symbol: str, side: str, type: str, *, time_in_force: str | None,
    quantity: Decimal | None, quote_order_qty: Decimal | None, price: Decimal | None,
    stop_price: Decimal | None, new_client_order_id: str, new_order_resp_type: str,
    self_trade_prevention_mode: str | None,
) -> list[tuple[str, str]]:
    """The order's parameters in the order they are sent (the generic way)."""
    params: list[tuple[str, str]] = [("symbol", symbol), ("side", side), ("type", type)]
    if time_in_force is not None:
        params.append(("timeInForce", time_in_force))
    if quantity is not None:
        params.append(("quantity", decimal_text(quantity)))
    if quote_order_qty is not None:
        params.append(("quoteOrderQty", decimal_text(quote_order_qty)))
    if price is not None:
        params.append(("price", decimal_text(price)))
    if stop_price is not None:
        params.append(("stopPrice", decimal_text(stop_price)))
    params.append(("newClientOrderId", new_client_order_id))
    params.append(("newOrderRespType", new_order_resp_type))
    if self_trade_prevention_mode is not None:
        params.append(("selfTradePreventionMode", self_trade_prevention_mode))
    return params


_templates: dict[tuple[object, ...], str] = {}


def _template(key: tuple[object, ...]) -> str:
    """The %-template of the orders with these constant terms ("" when one of
    them needs escaping: those go the generic way)."""
    symbol, side, type, tif, resp, stp, has_qty, has_quote, has_price, has_stop = key
    fixed = [v for v in (symbol, side, type, tif, resp, stp) if v is not None]
    template = ""
    if all(isinstance(v, str) and is_plain(v) for v in fixed):
        # the names and the template's text are ours: plain, no "%" to escape
        template = f"symbol={symbol}&side={side}&type={type}"
        if tif is not None:
            template += f"&timeInForce={tif}"
        for present, name in ((has_qty, "quantity"), (has_quote, "quoteOrderQty"),
                              (has_price, "price"), (has_stop, "stopPrice")):
            if present:
                template += f"&{name}=%s"
        template += f"&newClientOrderId=%s&newOrderRespType={resp}"
        if stp is not None:
            template += f"&selfTradePreventionMode={stp}"
    if len(_templates) >= MAX_TEMPLATES:
        _templates.clear()
    _templates[key] = template
    return template


def new_order_query(
    symbol: str, side: str, type: str, *, time_in_force: str | None,
    quantity: Decimal | None, quote_order_qty: Decimal | None, price: Decimal | None,
    stop_price: Decimal | None, new_client_order_id: str, new_order_resp_type: str,
    self_trade_prevention_mode: str | None,
) -> str:
    """The order's percent-encoded query, without timestamp and signature:
    `rest_payload(new_order_params(...))`, byte for byte, from a template."""
    key = (symbol, side, type, time_in_force, new_order_resp_type, self_trade_prevention_mode,
           quantity is not None, quote_order_qty is not None, price is not None,
           stop_price is not None)
    template = _templates.get(key)
    if template is None:
        template = _template(key)
    if template and is_plain(new_client_order_id):
        # spelt out (no comprehension, no generator): this runs for every order
        values = []
        if quantity is not None:
            values.append(decimal_text(quantity))
        if quote_order_qty is not None:
            values.append(decimal_text(quote_order_qty))
        if price is not None:
            values.append(decimal_text(price))
        if stop_price is not None:
            values.append(decimal_text(stop_price))
        values.append(new_client_order_id)
        return template % tuple(values)
    return rest_payload(new_order_params(
        symbol, side, type, time_in_force=time_in_force, quantity=quantity,
        quote_order_qty=quote_order_qty, price=price, stop_price=stop_price,
        new_client_order_id=new_client_order_id, new_order_resp_type=new_order_resp_type,
        self_trade_prevention_mode=self_trade_prevention_mode))


# Spot's terms for our order kinds, as `order_path.order_params` writes them:
# (type, sends timeInForce, sends price) by (order_type, post_only). A LIMIT needs
# a time in force Spot has even when it does not send it (LIMIT_MAKER).
_SPOT_KINDS = {
    ("LIMIT", False): ("LIMIT", True, True),
    ("LIMIT", True): ("LIMIT_MAKER", False, True),
    ("MARKET", False): ("MARKET", False, False),
    ("MARKET", True): ("MARKET", False, False),
}
_submitted: dict[tuple[object, ...], tuple[str, bool]] = {}


def _submitted_form(key: tuple[object, ...], resp: str) -> tuple[str, bool]:
    symbol, side, order_type, tif, post_only = key
    kind = _SPOT_KINDS.get((order_type, post_only))  # type: ignore[arg-type]
    template, priced = "", False
    if kind is not None and (order_type == "MARKET" or tif in ("GTC", "IOC", "FOK")):
        type_, with_tif, priced = kind
        template = _template((symbol, side, type_, tif if with_tif else None, resp, None,
                              True, False, priced, False))
    if len(_submitted) >= MAX_TEMPLATES:
        _submitted.clear()
    _submitted[(*key, resp)] = (template, priced)
    return template, priced


def submitted_order_query(e: OrderSubmitted, resp: str = "FULL") -> str | None:
    """`new_order_query` of the parameters `order_path.order_params(e)` gives,
    with `new_order_resp_type=resp`, for a LIMIT, LIMIT_MAKER or MARKET order;
    None for any other (and for what needs escaping): send those the generic way."""
    form = _submitted.get((e.symbol, e.side, e.order_type, e.time_in_force, e.post_only, resp))
    if form is None:
        form = _submitted_form((e.symbol, e.side, e.order_type, e.time_in_force, e.post_only),
                               resp)
    template, priced = form
    if not template or e.qty is None or not is_plain(e.client_order_id):
        return None
    if priced:
        if e.price is None:
            return None
        return template % (decimal_text(e.qty), decimal_text(e.price), e.client_order_id)
    return template % (decimal_text(e.qty), e.client_order_id)
