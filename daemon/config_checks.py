"""The config's cross-field checks: what msgspec's schema cannot say.

`check(config)` returns the first problem as (JSON path, message), or None; `load_config`
turns it into one `ConfigError` line naming the file and the key. Owns the rules that
span keys: unknown or duplicate venues, instruments and strategy ids, the keys each venue
kind takes, a strategy id's room in a live venue's client order ids, the account's rates
and a fee asset's market.
"""

from __future__ import annotations

import re

from daemon.config import (
    AccountConfig,
    Config,
    InstrumentConfig,
    StrategyConfig,
    VenueConfig,
    parse_control,
    parse_interval,
)

_CLASS_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def check(config: Config) -> tuple[str, str] | None:
    """The first cross-field problem as (JSON path, message), or None."""
    try:
        parse_control(config.daemon.control)
    except ValueError as exc:
        return "$.daemon.control", str(exc)

    venues: dict[str, int] = {}
    for i, venue in enumerate(config.venues):
        at = f"$.venues[{i}]"
        if venue.name in venues:
            return (
                f"{at}.name",
                f'duplicate venue "{venue.name}" (also $.venues[{venues[venue.name]}])',
            )
        venues[venue.name] = i
        for currency, amount in venue.balances.items():
            if amount < 0:
                return f"{at}.balances.{currency}", f"balance must be >= 0, got {amount}"
        if problem := _check_venue_kind(at, venue):
            return problem
    known = ", ".join(f'"{v}"' for v in venues)
    if problem := _check_account(config.account):
        return problem

    symbols: dict[tuple[str, str], int] = {}
    for i, inst in enumerate(config.instruments):
        at = f"$.instruments[{i}]"
        if inst.venue not in venues:
            return f"{at}.venue", f'unknown venue "{inst.venue}" (venues: {known})'
        key = (inst.venue, inst.symbol)
        if key in symbols:
            return (
                f"{at}.symbol",
                f'duplicate instrument "{inst.symbol}" on venue "{inst.venue}" '
                f"(also $.instruments[{symbols[key]}])",
            )
        symbols[key] = i
    for i, venue in enumerate(config.venues):
        if problem := _check_fee_asset(f"$.venues[{i}]", venue, config.instruments):
            return problem

    ids: dict[str, int] = {}
    for i, strat in enumerate(config.strategies):
        at = f"$.strategies[{i}]"
        if not _ID_RE.fullmatch(strat.id):
            return f"{at}.id", (
                f"bad strategy id {strat.id!r}: use 1-32 letters, digits, '_' or '-' "
                "(it goes into client order ids)"
            )
        if strat.id in ids:
            return (
                f"{at}.id",
                f'duplicate strategy id "{strat.id}" (also $.strategies[{ids[strat.id]}])',
            )
        ids[strat.id] = i
        if not _CLASS_RE.fullmatch(strat.class_):
            return f"{at}.class", (
                f'expected "module:Class" (e.g. "daemon.strategies.sma_cross:SmaCross"), '
                f"got {strat.class_!r}"
            )
        if strat.venue not in venues:
            return f"{at}.venue", f'unknown venue "{strat.venue}" (venues: {known})'
        if problem := _check_id_length(at, strat, config.venues[venues[strat.venue]]):
            return problem
        for j, symbol in enumerate(strat.symbols):
            if (strat.venue, symbol) not in symbols:
                return f"{at}.symbols[{j}]", f'no instrument "{symbol}" on venue "{strat.venue}"'
        if strat.bar_interval is not None:
            try:
                parse_interval(strat.bar_interval)
            except ValueError as exc:
                return f"{at}.bar_interval", str(exc)
    return None


ORDER_NUMBER_DIGITS = 10  # digits of room kept for the order number n


def _client_id_limit(kind: str) -> int | None:
    """The longest client order id a venue kind takes (None: no limit)."""
    if kind == "binance":
        from adapters.binance import MAX_CLIENT_ORDER_ID_LEN

        return MAX_CLIENT_ORDER_ID_LEN
    return None


def _check_id_length(at: str, strat: StrategyConfig, venue: VenueConfig
                     ) -> tuple[str, str] | None:
    """A live daemon's ids are "<prefix>-<strategy id>-<n>": they must fit the venue's
    limit for n up to ORDER_NUMBER_DIGITS digits (a paper strategy sends nothing)."""
    from events.store import CLIENT_ID_PREFIX_LEN

    limit = _client_id_limit(venue.kind)
    if limit is None or strat.paper:
        return None
    room = limit - CLIENT_ID_PREFIX_LEN - 2 - ORDER_NUMBER_DIGITS
    if len(strat.id) > room:
        return f"{at}.id", (
            f"strategy id {strat.id!r} is {len(strat.id)} characters; on venue "
            f'"{venue.name}" ({venue.kind}, client order ids of at most {limit}: '
            f'"<{CLIENT_ID_PREFIX_LEN}-character prefix>-<id>-<order number>") '
            f"use at most {room}")
    return None


def _check_account(account: AccountConfig) -> tuple[str, str] | None:
    for currency, rate in account.rates.items():
        at = f"$.account.rates.{currency}"
        if not 0 < rate < float("inf"):
            return at, f"rate must be a positive number, got {rate!r}"
        if currency == account.currency:
            return at, f"{currency} is the account currency itself (worth 1 of itself)"
    return None


_SAMPLE_KEYS = {"file": None, "speed": 1.0, "loop": True}
_BINANCE_KEYS = {"endpoints": "testnet", "trade": True,
                 "streams": ("trade", "bookTicker", "depth@100ms"), "depth_limit": 1000,
                 "stale_after_s": 10.0, "recv_window_ms": 5000, "credentials": "BINANCE",
                 "unresolved_alert_after_s": 30.0}
_STREAM_RE = re.compile(r"trade|aggTrade|bookTicker|depth(@100ms)?|depth(5|10|20)(@100ms)?|"
                        r"kline_(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)")


def _check_venue_kind(at: str, venue: VenueConfig) -> tuple[str, str] | None:
    if venue.kind == "sample" and venue.file is None:
        return f"{at}.file", 'missing required key for kind = "sample" (a Binance recording)'
    for kind, keys in (("sample", _SAMPLE_KEYS), ("binance", _BINANCE_KEYS)):
        if venue.kind == kind:
            continue
        for key, default in keys.items():
            if getattr(venue, key) != default:
                return (f"{at}.{key}",
                        f'only valid for kind = "{kind}" (this venue is "{venue.kind}")')
    if venue.kind == "binance":
        from adapters.binance.endpoints import resolve_endpoints

        try:
            resolve_endpoints(venue.endpoints, env={})
        except ValueError as exc:
            return f"{at}.endpoints", str(exc)
        for j, stream in enumerate(venue.streams):
            if not _STREAM_RE.fullmatch(stream):
                return f"{at}.streams[{j}]", (
                    f"unknown stream {stream!r} (expected trade, aggTrade, bookTicker, depth, "
                    "depth@100ms, depth5|10|20[@100ms] or kline_<interval>)")
    return None


def _check_fee_asset(at: str, venue: VenueConfig, instruments: list[InstrumentConfig]
                     ) -> tuple[str, str] | None:
    """A third fee currency C must be priced: every instrument of the venue
    quoted in Q (other than C/Q itself) needs an instrument C/Q there."""
    c = venue.fee_asset
    if c is None or c in ("quote", "received"):
        return None
    pairs = {(i.base, i.quote) for i in instruments if i.venue == venue.name}
    for inst in instruments:
        if inst.venue == venue.name and c not in (inst.base, inst.quote) \
                and (c, inst.quote) not in pairs:
            return f"{at}.fee_asset", (
                f'fee_asset "{c}" needs an instrument with base "{c}" and quote "{inst.quote}" '
                f'on venue "{venue.name}" to price the fee of {inst.symbol} '
                '(or use "quote" or "received")')
    return None
