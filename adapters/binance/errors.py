"""Binance spot error codes and what the adapter must do about each.

Every failed REST response is classified into one `Category`, which decides
the reaction; codes are stable, messages vary, so nothing here reads `msg`.
The HTTP status outranks the code where the status alone settles it (418
ban, 429 limit, 5xx outcome unknown); otherwise the code decides, and a
status without a known code falls back to what that status means.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Category = Literal[
    "reject",  # the order/request was refused: publish OrderRejected(code, msg)
    "unknown",  # outcome unknown: query the order to resolve it, never resend
    "retry_after",  # 429: wait Retry-After, then retry
    "banned",  # 418: IP banned, stop everything until Retry-After
    "clock",  # -1021: resync server time, then retry once
    "auth",  # key, signature or permission problem: stop, fix the config
    "cancel_rejected",  # -2011: the cancel was refused (unknown or no longer open)
    "not_found",  # -2013: the queried order does not exist; -2026: it ended unfilled, archived
]

# code -> (name, category), from the protocol doc §4 / errors.md.
ERRORS: dict[int, tuple[str, Category]] = {
    -1003: ("TOO_MANY_REQUESTS", "retry_after"),  # 418 overrides to banned
    -1007: ("TIMEOUT", "unknown"),
    -1013: ("INVALID_MESSAGE", "reject"),  # mostly "Filter failure: ..."
    -1015: ("TOO_MANY_ORDERS", "retry_after"),
    -1021: ("INVALID_TIMESTAMP", "clock"),
    -1022: ("INVALID_SIGNATURE", "auth"),
    -1100: ("ILLEGAL_CHARS", "reject"),
    -1102: ("MANDATORY_PARAM_EMPTY_OR_MALFORMED", "reject"),
    -1106: ("PARAM_NOT_REQUIRED", "reject"),
    -1111: ("BAD_PRECISION", "reject"),
    -1121: ("BAD_SYMBOL", "reject"),
    -2010: ("NEW_ORDER_REJECTED", "reject"),
    -2011: ("CANCEL_REJECTED", "cancel_rejected"),
    -2013: ("NO_SUCH_ORDER", "not_found"),
    -2014: ("BAD_API_KEY_FMT", "auth"),
    -2015: ("REJECTED_MBX_KEY", "auth"),
    # "Order was canceled or expired with no executed qty over 90 days ago and has
    # been archived" (errors.md): for our order, proof that it ended unfilled.
    -2026: ("ORDER_ARCHIVED", "not_found"),
    -2039: ("CLIENT_ORDER_ID_INVALID", "reject"),  # orderId/clientOrderId mismatch
}


def error_name(code: int | None) -> str:
    if code is None:
        return "NO_CODE"
    entry = ERRORS.get(code)
    return entry[0] if entry else "UNKNOWN_CODE"


def classify(http_status: int, code: int | None) -> Category:
    """What to do about a failed response with this HTTP status and body code
    (None when the body had no JSON `code`)."""
    if http_status == 418:
        return "banned"
    if http_status == 429:
        return "retry_after"
    if http_status >= 500:
        # The engine may have acted: never assume failure.
        return "unknown"
    if code is not None and code in ERRORS:
        return ERRORS[code][1]
    if http_status == 401:
        return "auth"
    if http_status == 409:
        # cancelReplace half-done: which half happened must be queried.
        return "unknown"
    if 400 <= http_status < 500:
        # 400 with an unlisted code, 403 WAF, 404...: the request was refused
        # before anything happened.
        return "reject"
    # An error outside 4xx/5xx is not something we understand: treat the
    # outcome as unknown rather than guess it failed.
    return "unknown"


class _ErrorBody(msgspec.Struct):
    code: int | None = None
    msg: str = ""


_BODY_DECODER = msgspec.json.Decoder(_ErrorBody)


class BinanceError(Exception):
    """A failed Binance response: HTTP status, body code and message, and
    the category that decides the reaction."""

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        self.status = status
        self.code = code
        self.msg = " ".join(msg.split())  # one line, whatever the server sent
        self.category: Category = classify(status, code)
        super().__init__(str(self))

    @property
    def name(self) -> str:
        return error_name(self.code)

    def __str__(self) -> str:
        code = "" if self.code is None else f" {self.code} {self.name}"
        text = f": {self.msg}" if self.msg else ""
        return f"Binance HTTP {self.status}{code} [{self.category}]{text}"

    def __repr__(self) -> str:
        return f"BinanceError(status={self.status}, code={self.code}, msg={self.msg!r})"

    @classmethod
    def from_response(cls, status: int, body: bytes) -> BinanceError:
        """Build from a raw response; a body that is not Binance's JSON error
        (WAF HTML, gateway text, empty) keeps a short excerpt as the message."""
        try:
            parsed = _BODY_DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return cls(status, None, body[:200].decode("utf-8", "replace"))
        return cls(status, parsed.code, parsed.msg)
