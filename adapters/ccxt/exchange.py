"""Building the ccxt.pro exchange object of a `kind = "ccxt"` venue from its config:
sandbox mode, credentials from the environment or systemd credential files, options,
URL overrides, and ccxt's own rate limiter on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def build_exchange(vcfg: Any) -> Any:
    """A `ccxt.pro` exchange for the venue config `vcfg`; ValueError for an unknown
    exchange or missing keys of a trading venue."""
    import ccxt.pro

    cls = getattr(ccxt.pro, vcfg.exchange, None)
    if cls is None:
        raise ValueError(f"exchange {vcfg.exchange!r} is not one ccxt.pro knows")
    config: dict[str, Any] = {"enableRateLimit": True, "options": dict(vcfg.options)}
    if vcfg.trade:
        prefix = vcfg.credentials
        key, secret = secret_of(prefix, "API_KEY"), secret_of(prefix, "API_SECRET")
        if not key or not secret:
            low = prefix.lower()
            raise ValueError(f"credentials: set {prefix}_API_KEY and {prefix}_API_SECRET, or "
                             f"put {low}_api_key and {low}_api_secret in "
                             "$CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
        config.update(apiKey=key, secret=secret)
        if password := secret_of(prefix, "API_PASSWORD"):  # okx, kucoin: a passphrase
            config["password"] = password
    exchange = cls(config)
    if vcfg.sandbox:
        if not exchange.urls.get("test"):
            raise ValueError(f"sandbox: {vcfg.exchange} has no sandbox in ccxt; set "
                             f"sandbox = false to use the real exchange")
        exchange.set_sandbox_mode(True)
    if vcfg.urls:
        exchange.urls["api"] = _override(exchange.urls["api"], dict(vcfg.urls))
        if not any(u.startswith(("https:", "wss:")) for u in _strings(exchange.urls["api"])):
            # ccxt's close() waits timeout_on_exit (250 ms) for SSL transports to shut
            # down; a venue moved to plain HTTP (a local fake or proxy) has none
            exchange.timeout_on_exit = 0
    return exchange


def _strings(tree: Any) -> list[str]:
    """Every string in a nested dict of URLs."""
    if isinstance(tree, dict):
        return [s for v in tree.values() for s in _strings(v)]
    return [tree] if isinstance(tree, str) else []


def secret_of(prefix: str, name: str) -> str | None:
    """`{prefix}_{name}` from the environment, else the systemd credential file
    `{prefix}_{name}` in lower case under $CREDENTIALS_DIRECTORY; never logged."""
    from daemon.logging import register_secret

    value = os.environ.get(f"{prefix}_{name}") or None
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if value is None and directory:
        path = Path(directory) / f"{prefix}_{name}".lower()
        if path.is_file():
            value = path.read_text().strip() or None
    if value is not None:
        register_secret(value)  # redacted from every log line from now on
    return value


def _override(api: Any, urls: dict[str, Any]) -> Any:
    """ccxt's `urls["api"]` with `urls` laid over it; a single "*" base URL moves
    every URL's scheme and host there, keeping paths (a local fake)."""
    if "*" in urls:
        from urllib.parse import urlsplit

        base = urlsplit(str(urls["*"]))

        def move(u: Any) -> Any:
            if isinstance(u, dict):
                return {k: move(v) for k, v in u.items()}
            if not isinstance(u, str):
                return u
            p = urlsplit(u)
            scheme = ("ws" if base.scheme == "http" else "wss") \
                if p.scheme in ("ws", "wss") else base.scheme
            return f"{scheme}://{base.netloc}{p.path}" + (f"?{p.query}" if p.query else "")
        return move(api)
    return {**api, **urls}
