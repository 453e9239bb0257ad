"""ccxt's own `binance` class pointed at a running `FakeBinanceServer`.

    def ccxt_binance(server_url: str, *, pro: bool = True, sandbox: bool = True,
                     api_key: str | None = DEFAULT_API_KEY, secret: str | None = DEFAULT_SECRET,
                     **options: Any) -> ccxt.pro.binance | ccxt.async_support.binance

returns an async ccxt `binance` (`ccxt.pro.binance` with the websocket methods when
`pro`, else `ccxt.async_support.binance`) whose every REST and websocket URL is moved
to the fake at `server_url` ("http://127.0.0.1:PORT", `FakeBinanceServer.base_url`),
signed with the fake's key (`api_key=None`: no keys, public data only, as a
record-only venue). Nothing else of ccxt is changed: `sandbox` is ccxt's own
`set_sandbox_mode` (the testnet, the project's default; False: production URLs,
for which the fake also answers the `sapi` calls ccxt makes), and the keyword
`options` are ccxt options merged into `exchange.options` (e.g.
`fetchMarkets={"types": ["spot"]}`). The caller closes it (`await exchange.close()`).
A standalone fake (`python -m tests.fake_binance --port 8990`) is reached the same
way: `ccxt_binance("http://127.0.0.1:8990")`.

    server = FakeBinanceServer(seed=7, tick_interval_s=None)
    await server.start()
    exchange = ccxt_binance(server.base_url)
    try:
        await exchange.load_markets()
        ...
    finally:
        await exchange.close()
        await server.close()

`fake_urls(server_url, urls)` is the URL mapping alone, for a client made elsewhere
(e.g. a venue built from a config): it rewrites every URL of ccxt's `urls["api"]`
tree to the fake, keeping each URL's path (`/api/v3`, `/ws`, `/ws-api/v3`, `/sapi/v1`,
`/fapi/v1`...). ccxt is imported inside the function (issue 11 item 9).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET


def fake_urls(server_url: str, urls: Any) -> Any:
    """ccxt's `urls["api"]` tree (nested dicts of URL strings) with each URL's scheme
    and host moved to the fake at `server_url`; paths and queries are kept."""
    if isinstance(urls, dict):
        return {k: fake_urls(server_url, v) for k, v in urls.items()}
    if not isinstance(urls, str):
        return urls
    base = urlsplit(server_url)
    parts = urlsplit(urls)
    scheme = "ws" if parts.scheme in ("ws", "wss") else "http"
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{scheme}://{base.netloc}{tail}"


def ccxt_binance(server_url: str, *, pro: bool = True, sandbox: bool = True,
                 api_key: str | None = DEFAULT_API_KEY, secret: str | None = DEFAULT_SECRET,
                 **options: Any) -> Any:
    """An async ccxt `binance` talking only to the fake at `server_url`; see the
    module docstring."""
    if pro:
        import ccxt.pro as ccxt_module
    else:
        import ccxt.async_support as ccxt_module
    # timeout_on_exit: ccxt's close() waits that long (250 ms) for SSL transports to
    # shut down; the fake speaks plain HTTP and websockets, so there are none
    config: dict[str, Any] = {"enableRateLimit": True, "timeout_on_exit": 0}
    if api_key is not None:
        config.update(apiKey=api_key, secret=secret)
    exchange = ccxt_module.binance(config)
    if sandbox:
        exchange.set_sandbox_mode(True)
    exchange.urls["api"] = fake_urls(server_url, exchange.urls["api"])
    if "apiBackup" in exchange.urls:  # set_sandbox_mode's copy of the production URLs
        exchange.urls["apiBackup"] = fake_urls(server_url, exchange.urls["apiBackup"])
    exchange.options.update(options)
    return exchange
