"""Binance's rule for our client order ids (`newClientOrderId`).

Binance Spot takes an id matching `^[a-zA-Z0-9-_]{1,36}$` and refuses any other
with -1100 "Illegal characters found in parameter 'newClientOrderId'; legal
range is '^[a-zA-Z0-9-_]{1,36}$'." (protocol doc section 4 and 9; the same
text quoted by Binance in binance-spot-api-docs PR #34). The venue checks an
id here before anything is sent, so a bad one becomes a clear local
`OrderRejected` instead of a round trip; `check-config` uses the same limits to
refuse a strategy id whose order ids could outgrow them.
"""

from __future__ import annotations

import re

__all__ = [
    "CLIENT_ORDER_ID_CHARS",
    "CLIENT_ORDER_ID_PATTERN",
    "MAX_CLIENT_ORDER_ID_LEN",
    "client_order_id_problem",
    "valid_client_order_id",
]

MAX_CLIENT_ORDER_ID_LEN = 36
CLIENT_ORDER_ID_CHARS = "a-zA-Z0-9-_"  # a regex character class body: letters, digits, - and _
CLIENT_ORDER_ID_PATTERN = f"^[{CLIENT_ORDER_ID_CHARS}]{{1,{MAX_CLIENT_ORDER_ID_LEN}}}$"
# fullmatch, not match: `$` would also accept a trailing newline.
_VALID = re.compile(f"[{CLIENT_ORDER_ID_CHARS}]{{1,{MAX_CLIENT_ORDER_ID_LEN}}}")
_BAD_CHAR = re.compile(f"[^{CLIENT_ORDER_ID_CHARS}]")


# valid_client_order_id(id): a match (truthy) when Binance takes `id`, else None;
# the compiled match itself (the check on every order), no wrapper
valid_client_order_id = _VALID.fullmatch


def client_order_id_problem(client_order_id: str) -> str | None:
    """Why Binance would refuse `client_order_id` as `newClientOrderId`, or None
    when it is valid."""
    if _VALID.fullmatch(client_order_id):
        return None
    if not client_order_id:
        return "it is empty"
    if len(client_order_id) > MAX_CLIENT_ORDER_ID_LEN:
        return (f"it is {len(client_order_id)} characters long, Binance allows at most "
                f"{MAX_CLIENT_ORDER_ID_LEN}")
    bad = _BAD_CHAR.search(client_order_id)
    assert bad is not None
    return f"it contains {bad.group()!r}; Binance allows only letters, digits, '-' and '_'"
