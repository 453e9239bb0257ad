"""Where a Binance USD-M venue connects.

`endpoints = "testnet" | "production"` name Binance's own futures sites; a URL
`http://host:port` names one server serving REST at `/fapi`, combined market
streams at `/stream` and the listenKey user stream at `/ws/<listenKey>` (the
fake Binance of the tests). `TAPELOOP_BINANCE_USDM_ENDPOINTS` overrides the
config, as `TAPELOOP_BINANCE_ENDPOINTS` does for Spot.

User data stream (checked against Binance's USD-M docs, December 2026): a
listenKey from `POST /fapi/v1/listenKey` (the WS API's `userDataStream.start`
returns the same key), read at `<streams>/ws/<listenKey>`, valid 60 minutes,
extended by `PUT /fapi/v1/listenKey`; Binance advises a keep-alive every 60
minutes and `listenKeyExpired` arrives when it lapsed. We use the REST form and
keep it alive every 30 minutes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

ENV_OVERRIDE = "TAPELOOP_BINANCE_USDM_ENDPOINTS"
KEEPALIVE_S = 30 * 60  # half the listenKey's 60 min validity


class UsdmEndpoints(msgspec.Struct, frozen=True):
    rest: str  # base of `/fapi/v1/...`
    streams: str  # base of `/stream?streams=...` and `/ws/<listenKey>`

    def user_stream(self, listen_key: str) -> str:
        return f"{self.streams}/ws/{listen_key}"


NAMED = {
    "production": UsdmEndpoints("https://fapi.binance.com", "wss://fstream.binance.com"),
    "testnet": UsdmEndpoints("https://testnet.binancefuture.com",
                             "wss://stream.binancefuture.com"),
}


def resolve_usdm_endpoints(value: str, env: Mapping[str, str] = os.environ) -> UsdmEndpoints:
    """The endpoints for a config value (or the environment's override).
    ValueError names the accepted forms."""
    value = env.get(ENV_OVERRIDE) or value
    if value in NAMED:
        return NAMED[value]
    scheme, sep, rest = value.partition("://")
    if sep and scheme in ("http", "https") and rest and " " not in rest:
        ws = ("wss://" if scheme == "https" else "ws://") + rest.rstrip("/")
        return UsdmEndpoints(value.rstrip("/"), ws)
    raise ValueError(f"bad endpoints {value!r}: expected one of {', '.join(NAMED)} "
                     'or a server URL like "http://127.0.0.1:8990"')
