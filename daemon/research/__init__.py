"""Binance: wire messages in Binance's own field names, parsers into our events.

`MAX_CLIENT_ORDER_ID_LEN` and `CLIENT_ORDER_ID_PATTERN` are Binance's limits on
our client order ids (`adapters.binance.client_ids`).
"""

from adapters.binance.client_ids import (
    CLIENT_ORDER_ID_CHARS,
    CLIENT_ORDER_ID_PATTERN,
    MAX_CLIENT_ORDER_ID_LEN,
    client_order_id_problem,
)

__all__ = ["CLIENT_ORDER_ID_CHARS", "CLIENT_ORDER_ID_PATTERN", "MAX_CLIENT_ORDER_ID_LEN",
           "client_order_id_problem"]
