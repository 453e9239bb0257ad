"""Where a Binance Spot venue connects (protocol doc section 1).

`endpoints = "testnet" | "production" | "demo"` name Binance's own sites; a
URL `http://host:port` (or `https://`) names one server that serves REST at
`/api/v3`, market streams at `/stream` and the WS API at `/ws-api/v3`: the
fake Binance of the tests, or a relay. `TAPELOOP_BINANCE_ENDPOINTS` in the
environment overrides the config (how `configs/live-binance.toml` is pointed
at the fake without editing it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import msgspec

ENV_OVERRIDE = "TAPELOOP_BINANCE_ENDPOINTS"


class Endpoints(msgspec.Struct, frozen=True):
    rest: str
    streams: str  # base of `/stream?streams=...`
    ws_api: str

    @property
    def is_local(self) -> bool:
        return "://127.0.0.1" in self.rest or "://localhost" in self.rest


NAMED = {
    "production": Endpoints("https://api.binance.com", "wss://stream.binance.com:9443",
                            "wss://ws-api.binance.com:443/ws-api/v3"),
    "testnet": Endpoints("https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                         "wss://ws-api.testnet.binance.vision/ws-api/v3"),
    "demo": Endpoints("https://demo-api.binance.com", "wss://demo-stream.binance.com:9443",
                      "wss://demo-ws-api.binance.com/ws-api/v3"),
}


def resolve_endpoints(value: str, env: Mapping[str, str] = os.environ) -> Endpoints:
    """The endpoints for a config value (or the environment's override).
    ValueError names the accepted forms."""
    value = env.get(ENV_OVERRIDE) or value
    if value in NAMED:
        return NAMED[value]
    scheme, sep, rest = value.partition("://")
    if sep and scheme in ("http", "https") and rest and " " not in rest:
        base = value.rstrip("/")
        ws = ("wss://" if scheme == "https" else "ws://") + rest.rstrip("/")
        return Endpoints(base, ws, f"{ws}/ws-api/v3")
    raise ValueError(f"bad endpoints {value!r}: expected one of {', '.join(NAMED)} "
                     'or a server URL like "http://127.0.0.1:8990"')
