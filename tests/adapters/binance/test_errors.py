"""Error classification: every row of the protocol doc §4 table, HTTP statuses
that outrank codes, statuses without a JSON body, and BinanceError's one line."""

from __future__ import annotations

import pytest

from adapters.binance.errors import ERRORS, BinanceError, Category, classify, error_name

# (http status Binance sends it with, code, name, category)
ROWS: list[tuple[int, int, str, Category]] = [
    (429, -1003, "TOO_MANY_REQUESTS", "retry_after"),
    (418, -1003, "TOO_MANY_REQUESTS", "banned"),
    (408, -1007, "TIMEOUT", "unknown"),
    (400, -1013, "INVALID_MESSAGE", "reject"),
    (429, -1015, "TOO_MANY_ORDERS", "retry_after"),
    (400, -1021, "INVALID_TIMESTAMP", "clock"),
    (400, -1022, "INVALID_SIGNATURE", "auth"),
    (400, -1100, "ILLEGAL_CHARS", "reject"),
    (400, -1102, "MANDATORY_PARAM_EMPTY_OR_MALFORMED", "reject"),
    (400, -1106, "PARAM_NOT_REQUIRED", "reject"),
    (400, -1111, "BAD_PRECISION", "reject"),
    (400, -1121, "BAD_SYMBOL", "reject"),
    (400, -2010, "NEW_ORDER_REJECTED", "reject"),
    (400, -2011, "CANCEL_REJECTED", "cancel_rejected"),
    (400, -2013, "NO_SUCH_ORDER", "not_found"),
    (401, -2014, "BAD_API_KEY_FMT", "auth"),
    (401, -2015, "REJECTED_MBX_KEY", "auth"),
    (400, -2026, "ORDER_ARCHIVED", "not_found"),
    (400, -2039, "CLIENT_ORDER_ID_INVALID", "reject"),
]


@pytest.mark.parametrize(("status", "code", "name", "category"), ROWS)
def test_each_row(status: int, code: int, name: str, category: Category) -> None:
    assert classify(status, code) == category
    assert error_name(code) == name
    err = BinanceError(status, code, "some message")
    assert (err.status, err.code, err.name, err.category) == (status, code, name, category)


def test_every_table_code_is_tested() -> None:
    assert {code for _, code, _, _ in ROWS} == set(ERRORS)


@pytest.mark.parametrize("code", [-1013, -2010, -2011, -2013, -1021, -1022, None])
def test_418_and_429_outrank_the_code(code: int | None) -> None:
    assert classify(418, code) == "banned"
    assert classify(429, code) == "retry_after"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("code", [None, -1007, -2010, -1013, -1])
def test_5xx_is_always_unknown(status: int, code: int | None) -> None:
    # The engine may have acted: a 5xx never becomes a reject.
    assert classify(status, code) == "unknown"


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (400, "reject"),
        (401, "auth"),
        (403, "reject"),  # WAF: refused before reaching the engine
        (404, "reject"),
        (409, "unknown"),  # cancelReplace half-done: query to find out
        (418, "banned"),
        (429, "retry_after"),
        (500, "unknown"),
        (503, "unknown"),
    ],
)
def test_status_without_json_body(status: int, category: Category) -> None:
    assert classify(status, None) == category
    err = BinanceError.from_response(status, b"<html><body>Forbidden</body></html>")
    assert err.code is None and err.category == category
    assert "Forbidden" in err.msg


def test_unlisted_code_falls_back_to_status() -> None:
    assert classify(400, -9999) == "reject"
    assert classify(401, -9999) == "auth"
    assert error_name(-9999) == "UNKNOWN_CODE"
    assert error_name(None) == "NO_CODE"


def test_from_response_with_json_body() -> None:
    body = b'{"code":-2010,"msg":"Account has insufficient balance for requested action."}'
    err = BinanceError.from_response(400, body)
    assert (err.code, err.category) == (-2010, "reject")
    assert err.msg == "Account has insufficient balance for requested action."
    assert str(err) == (
        "Binance HTTP 400 -2010 NEW_ORDER_REJECTED [reject]: "
        "Account has insufficient balance for requested action."
    )


@pytest.mark.parametrize("body", [b"", b"null", b"[1,2]", b'"text"', b"{not json", b"\xff\xfe"])
def test_from_response_with_garbage_body(body: bytes) -> None:
    err = BinanceError.from_response(502, body)
    assert err.category == "unknown"
    assert "\n" not in str(err)


def test_json_body_without_code() -> None:
    err = BinanceError.from_response(403, b'{"msg":"blocked"}')
    assert (err.code, err.msg, err.category) == (None, "blocked", "reject")
    assert str(err) == "Binance HTTP 403 [reject]: blocked"


def test_str_is_one_line() -> None:
    err = BinanceError(
        418, -1003, "Way too much request weight used;\nIP banned until 1763735400000."
    )
    assert str(err) == (
        "Binance HTTP 418 -1003 TOO_MANY_REQUESTS [banned]: "
        "Way too much request weight used; IP banned until 1763735400000."
    )
    assert str(BinanceError(503, None, "")) == "Binance HTTP 503 [unknown]"


def test_is_an_exception() -> None:
    with pytest.raises(BinanceError, match="-2013 NO_SUCH_ORDER"):
        raise BinanceError(400, -2013, "Order does not exist.")
