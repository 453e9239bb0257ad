"""Shared bits of the fake Binance: errors, number formatting, documented payloads.

Everything money-like is `Decimal`; on the wire it is an 8-decimal string, as
Binance sends it (protocol doc §0 conventions: `"0.00100000"`).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.adapters.binance.samples import DOC_EXCHANGE_INFO

DEFAULT_API_KEY = "tapeloop-test-key"
DEFAULT_SECRET = "tapeloop-test-secret"

# Protocol doc §5: the documented BTCUSDT symbol and rate limits.
_DOC = json.loads(DOC_EXCHANGE_INFO)
BTCUSDT_INFO: dict[str, Any] = _DOC["symbols"][0]
RATE_LIMITS: list[dict[str, Any]] = _DOC["rateLimits"]

ZERO = Decimal(0)
E8 = Decimal("0.00000001")
COMMISSION_RATE = Decimal("0.001")  # 0.1 % maker and taker, of the received asset


class ApiError(Exception):
    """A Binance error answer: HTTP `status` plus the body's `code` and `msg`."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def d8(value: Decimal) -> str:
    """Binance's wire form of a price or quantity: fixed point, 8 decimals."""
    return f"{value:.8f}"


def mandatory(name: str) -> ApiError:
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                "or malformed.")


def filter_failure(name: str) -> ApiError:
    return ApiError(400, -1013, f"Filter failure: {name}")


def rejected(msg: str) -> ApiError:
    """-2010 NEW_ORDER_REJECTED with one of the engine's documented messages."""
    return ApiError(400, -2010, msg)


INSUFFICIENT = "Account has insufficient balance for requested action."
WOULD_TAKE = "Order would immediately match and take."
DUPLICATE = "Duplicate order sent."
BAD_KEY = ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_SIGNATURE = ApiError(400, -1022, "Signature for this request is not valid.")


def dumps(obj: Any) -> str:
    """Compact JSON, as the venue sends it."""
    return json.dumps(obj, separators=(",", ":"))


def check_timestamp(now_ms: int, timestamp: Any, recv_window: Any) -> None:
    """Protocol doc §2 timing security: raise -1021 (or -1102/-1131) when the
    request's `timestamp` is outside `recvWindow` of the server clock `now_ms`."""
    try:
        ts = int(timestamp)
        recv = Decimal(str(recv_window if recv_window is not None else "5000"))
    except (TypeError, ValueError, ArithmeticError):
        raise mandatory("timestamp") from None
    if not 0 < recv <= 60000:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    if ts >= now_ms + 1000:
        raise ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the "
                                   "server's time.")
    if now_ms - ts > recv:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def int_param(params: dict[str, str], name: str) -> int | None:
    """An optional integer parameter (ids, times, limits): None when absent or
    empty, -1100 with Binance's text when it is not digits."""
    value = params.get(name)
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                   "legal range is '^[0-9]{1,20}$'.")
    return int(value)


def limit_param(params: dict[str, str], default: int, maximum: int) -> int:
    """`limit`: `default` when absent, at most `maximum` (Binance answers that many
    when asked for more), -1130 when below 1."""
    limit = int_param(params, "limit")
    if limit is None:
        return default
    if limit < 1:
        raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, maximum)


def time_range(params: dict[str, str], max_span_ms: int | None) -> tuple[int | None, int | None]:
    """(`startTime`, `endTime`); -1127 when both are sent more than `max_span_ms`
    apart, -1128 when the end is before the start."""
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    if start is not None and end is not None:
        if end < start:
            raise ApiError(400, -1128, "Combination of optional parameters invalid.")
        if max_span_ms is not None and end - start > max_span_ms:
            raise ApiError(400, -1127, "Lookup interval is too big.")
    return start, end
