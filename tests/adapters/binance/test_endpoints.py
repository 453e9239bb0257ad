"""Endpoint resolution: Binance's named sites, a local server URL, the env override."""

from __future__ import annotations

import pytest

from adapters.binance.endpoints import ENV_OVERRIDE, NAMED, resolve_endpoints


def test_named_sites_are_the_documented_ones() -> None:
    t = resolve_endpoints("testnet", env={})
    assert (t.rest, t.streams, t.ws_api) == (
        "https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3")
    assert resolve_endpoints("production", env={}).ws_api == \
        "wss://ws-api.binance.com:443/ws-api/v3"
    assert set(NAMED) == {"production", "testnet", "demo"}


def test_a_server_url_serves_everything_on_one_port() -> None:
    e = resolve_endpoints("http://127.0.0.1:8990/", env={})
    assert (e.rest, e.streams, e.ws_api) == (
        "http://127.0.0.1:8990", "ws://127.0.0.1:8990", "ws://127.0.0.1:8990/ws-api/v3")
    assert e.is_local
    assert resolve_endpoints("https://relay.example:443", env={}).ws_api == \
        "wss://relay.example:443/ws-api/v3"


def test_the_environment_overrides_the_config() -> None:
    e = resolve_endpoints("production", env={ENV_OVERRIDE: "http://127.0.0.1:1234"})
    assert e.rest == "http://127.0.0.1:1234"


@pytest.mark.parametrize("bad", ["prod", "ftp://x", "http://", "127.0.0.1:8990"])
def test_a_bad_value_is_one_line_naming_the_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="expected one of production, testnet, demo") as info:
        resolve_endpoints(bad, env={})
    assert "\n" not in str(info.value)
