"""The config's checks beyond msgspec's schema: what a start would refuse.

`check(config)` returns the first problem as (JSON path, message), or None; `load_config`
turns it into one `ConfigError` line naming the file and the key. Owns the rules that
span keys: unknown or duplicate venues, instruments and strategy ids, the keys each venue
kind takes, a strategy id's room in a live venue's client order ids, the account's rates
and a fee asset's market, instrument grids, and each strategy's class and params (loaded
and checked against its instruments, as the runtime does before it builds it).

Also the rules on what the file writes (`as_floats`: every number finite and exactly
what a float holds), on paths (`path_problem`) and on the files a start reads
(`check_files`).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from daemon.config import (
    AccountConfig,
    Config,
    InstrumentConfig,
    StrategyConfig,
    VenueConfig,
    parse_control,
    parse_interval,
)
from events.instruments import to_decimal

# Grids are multiples of 10**GRID_EXPONENT. The trading core rounds and checks prices
# and quantities on them in Decimal's default 28 digits, so a value up to 10**16 (more
# than a float carries) stays exact in grid units; a finer grid (1e-30) would make that
# rounding fail, or inexact, at the first order.
GRID_EXPONENT = -12

NAME_MAX = 255  # bytes in one path component (Linux)
PATH_MAX = 4096  # bytes in a path, its NUL included
SUN_PATH_MAX = 107  # bytes in a unix socket path (sun_path holds 108 with the NUL)


class ConfigProblem(Exception):
    """A problem at a JSON path, found before the config is a `Config`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def as_floats(raw: Any, at: str = "$") -> Any:
    """The TOML tree read with `parse_float=Decimal`, its floats as Python floats.
    ConfigProblem for a number that is not finite (`nan`, `inf`) or that a float
    does not hold exactly as written: tapeloop would use another number."""
    if isinstance(raw, dict):
        return {key: as_floats(value, f"{at}.{key}") for key, value in raw.items()}
    if isinstance(raw, list):
        return [as_floats(value, f"{at}[{i}]") for i, value in enumerate(raw)]
    if isinstance(raw, Decimal):
        if not raw.is_finite():
            written = "nan" if raw.is_nan() else "-inf" if raw < 0 else "inf"
            raise ConfigProblem(at, f"must be a finite number, got {written}")
        value = float(raw)
        if value in (float("inf"), float("-inf")):
            raise ConfigProblem(at, f"{raw} is out of range for a float")
        if Decimal(repr(value)) != raw:
            raise ConfigProblem(at, f"{raw} has more digits than a float holds (it would be "
                                    f"read as {value!r}): write at most 15 significant digits")
        return value
    return raw


def path_problem(path: Path, *, socket: bool = False) -> str | None:
    """Why the system would refuse `path` (an absolute path; `socket`: a unix socket's),
    or None. Only its spelling: whether it exists is the caller's question."""
    text = os.fspath(path)
    if "\0" in text:
        return f"{text!r} contains a NUL character"
    raw = os.fsencode(text)
    if len(raw) >= PATH_MAX:
        return f"path of {len(raw)} bytes: the system takes at most {PATH_MAX - 1}"
    for part in raw.split(b"/"):
        if len(part) > NAME_MAX:
            name = os.fsdecode(part)
            return (f"the name {name[:20]}... is {len(part)} bytes: a file name has at most "
                    f"{NAME_MAX}")
    if socket and len(raw) > SUN_PATH_MAX:
        return (f"unix socket path {text} is {len(raw)} bytes: at most {SUN_PATH_MAX} "
                "(use a shorter directory)")
    return None


def check_files(config: Config) -> tuple[str, str] | None:
    """What the files a start reads say (after `_resolve_paths`): each strategy's
    `initial_positions` parses. A sample recording is read whole by `check-config`
    (`daemon.commands.check_config`), not here: `run` reads it anyway."""
    from daemon.trading.positions_file import load_positions

    known = {(inst.venue, inst.symbol) for inst in config.instruments}
    for i, strat in enumerate(config.strategies):
        if strat.enabled and strat.initial_positions is not None:
            at = f"$.strategies[{i}].initial_positions"
            try:
                positions = load_positions(strat.initial_positions)
            except ValueError as exc:
                return at, str(exc)
            for p in positions:
                if (p.venue, p.symbol) not in known:  # a venue could not hold it
                    return at, (f"{strat.initial_positions}: a position in {p.symbol} on "
                                f"{p.venue}, which is not an instrument of the config")
    return None


_CLASS_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def check(config: Config) -> tuple[str, str] | None:
    """The first cross-field problem as (JSON path, message), or None."""
    try:
        parse_control(config.daemon.control)
    except ValueError as exc:
        return "$.daemon.control", str(exc)

    if problem := _check_alerts(config):
        return problem

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
        if venue.position_mode == "hedge":
            return f"{at}.position_mode", (
                "hedge mode (a long and a short position per symbol) is not supported: "
                'tapeloop keeps one position per symbol; use "one-way" (and switch the '
                "account's position mode to one-way on the exchange)")
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
        if problem := _check_grid(at, inst):
            return problem
        if problem := _check_perpetual(at, inst):
            return problem
    for i, venue in enumerate(config.venues):
        if problem := _check_fee_asset(f"$.venues[{i}]", venue, config.instruments):
            return problem
        if venue.kind == "binance" and not any(inst.venue == venue.name
                                               for inst in config.instruments):
            # its market data streams are its instruments': with none it cannot connect
            return f"$.venues[{i}]", (f'binance venue "{venue.name}" has no [[instruments]] '
                                      "(they name the symbols it streams)")
    if problem := _check_min_notional(config):
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
        from_exchange = config.venues[venues[strat.venue]].kind == "ccxt"
        for j, symbol in enumerate(strat.symbols):
            # a ccxt venue's instruments come from the exchange's markets at start
            # (daemon/venue_instruments.py), which check the symbol then
            if (strat.venue, symbol) not in symbols and not from_exchange:
                return f"{at}.symbols[{j}]", f'no instrument "{symbol}" on venue "{strat.venue}"'
            at_i = symbols.get((strat.venue, symbol))
            traded = None if at_i is None else config.instruments[at_i]
            if traded is not None and traded.perpetual and traded.contract_size != 1:
                return f"{at}.symbols[{j}]", (
                    f'"{symbol}" is a perpetual of contract size {traded.contract_size:g}: '
                    "tapeloop trades contracts of size 1 only (record it instead)")
        if strat.bar_interval is not None:
            try:
                parse_interval(strat.bar_interval)
            except ValueError as exc:
                return f"{at}.bar_interval", str(exc)
        if problem := _check_strategy(at, strat, config):
            return problem
    return None


def _check_alerts(config: Config) -> tuple[str, str] | None:
    email = config.alerts.email
    if email is None:
        return None
    if email.username and not email.starttls:
        return ("$.alerts.email.starttls",
                "starttls = false with a username would send the password in clear")
    if email.ca_file and not Path(email.ca_file).is_file():
        return "$.alerts.email.ca_file", f"{email.ca_file}: no such file"
    return None


def _check_strategy(at: str, strat: StrategyConfig, config: Config) -> tuple[str, str] | None:
    """Its class, params and `check_params`, as the runtime loads them before it builds
    the strategy (a disabled one is not loaded, at start or here)."""
    if not strat.enabled:
        return None
    from daemon.strategies.loader import StrategyError, load_strategy

    grids = {i.symbol: i for i in config.instruments if i.venue == strat.venue}
    if any(s not in grids for s in strat.symbols):
        return None  # from a ccxt exchange's markets: checked at start, with them
    try:
        load_strategy(strat, {s: grids[s].instrument() for s in strat.symbols})
    except StrategyError as exc:
        return (f"{at}.{exc.key}" if exc.key else at), exc.detail
    return None


_PERP_KEYS: dict[str, object] = {"margin_asset": None, "contract_size": 1.0, "margin_tiers": [],
              "leverage": 1, "margin_mode": "cross"}


def _check_perpetual(at: str, inst: InstrumentConfig) -> tuple[str, str] | None:
    """Perpetual keys only on a perpetual; tiers that ascend; leverage within them."""
    if not inst.perpetual:
        for key, default in _PERP_KEYS.items():
            if getattr(inst, key) != default:
                return f"{at}.{key}", 'only valid for kind = "perpetual" (this is "spot")'
        return None
    try:
        built = inst.instrument()
    except ValueError as exc:
        return f"{at}.margin_tiers", str(exc)
    if inst.leverage > built.max_leverage:
        return f"{at}.leverage", (f"{inst.leverage} is above the instrument's max leverage "
                                  f"{built.max_leverage}")
    return None


def _check_grid(at: str, inst: InstrumentConfig) -> tuple[str, str] | None:
    for key in ("tick_size", "step_size"):
        value = getattr(inst, key)
        if to_decimal(value).normalize().as_tuple().exponent < GRID_EXPONENT:  # type: ignore[operator]
            return f"{at}.{key}", (
                f"{value!r} is finer than the 1e{GRID_EXPONENT} grid tapeloop keeps exact "
                f"(Decimal's 28 digits): use at most {-GRID_EXPONENT} decimal places")
    return None


def _check_min_notional(config: Config) -> tuple[str, str] | None:
    """An instrument whose minimum notional is above the largest order notional the
    risk allows (the account's, or a strategy's own) can never be traded."""
    quotes = {i.quote for i in config.instruments}
    currency = config.account.currency or (next(iter(quotes)) if len(quotes) == 1 else None)
    rates = config.account.decimal_rates
    limits: list[tuple[str, float, StrategyConfig | None]] = [
        ("$.risk.max_order_notional", config.risk.max_order_notional, None)]
    for j, strat in enumerate(config.strategies):
        if strat.risk is not None and strat.risk.max_order_notional is not None:
            limits.append((f"$.strategies[{j}].risk.max_order_notional",
                           strat.risk.max_order_notional, strat))
    for i, inst in enumerate(config.instruments):
        rate = Decimal(1) if inst.quote == currency else rates.get(inst.quote)
        if rate is None:
            continue  # valued through market prices only: not known before a run
        floor = to_decimal(inst.min_notional) * rate
        for where, limit, owner in limits:
            if owner is not None and (owner.venue != inst.venue
                                      or inst.symbol not in owner.symbols):
                continue
            if floor > to_decimal(limit):
                return where, (
                    f"{limit} is below the min_notional {inst.min_notional} {inst.quote} "
                    f"of {inst.symbol} on {inst.venue} ($.instruments[{i}]): no order on it "
                    "could pass both")
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
    from events.client_ids import CLIENT_ID_PREFIX_LEN

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


_USDM_STREAM_RE = re.compile(r"markPrice(@1s)?")


# a live venue's keys that a ccxt venue shares with a binance one
_LIVE_KEYS = frozenset({"trade", "stale_after_s", "credentials", "unresolved_alert_after_s"})
_CCXT_KEYS = {"exchange": "", "sandbox": True, "options": {}, "urls": {}}


def _check_venue_kind(at: str, venue: VenueConfig) -> tuple[str, str] | None:
    if venue.kind == "sample" and venue.file is None:
        return f"{at}.file", 'missing required key for kind = "sample" (a Binance recording)'
    if venue.kind == "ccxt" and not venue.exchange:
        return f"{at}.exchange", 'missing required key for kind = "ccxt" (a ccxt exchange id)'
    for kind, keys in (("sample", _SAMPLE_KEYS), ("binance", _BINANCE_KEYS),
                       ("ccxt", _CCXT_KEYS)):
        if venue.kind == kind or (kind == "binance" and venue.kind == "binance-usdm"):
            continue  # a USD-M venue takes Spot's live keys
        for key, default in keys.items():
            if venue.kind == "ccxt" and key in _LIVE_KEYS:
                continue
            if getattr(venue, key) != default:
                return (f"{at}.{key}",
                        f'only valid for kind = "{kind}" (this venue is "{venue.kind}")')
    if venue.kind == "binance":
        from adapters.binance.endpoints import resolve_endpoints

        if not venue.streams:
            return f"{at}.streams", "at least one stream (e.g. \"trade\")"

        try:
            resolve_endpoints(venue.endpoints, env={})
        except ValueError as exc:
            return f"{at}.endpoints", str(exc)
        for j, stream in enumerate(venue.streams):
            if not _STREAM_RE.fullmatch(stream):
                return f"{at}.streams[{j}]", (
                    f"unknown stream {stream!r} (expected trade, aggTrade, bookTicker, depth, "
                    "depth@100ms, depth5|10|20[@100ms] or kline_<interval>)")
    if venue.kind == "binance-usdm":
        return _check_usdm(at, venue)
    return None


def _check_usdm(at: str, venue: VenueConfig) -> tuple[str, str] | None:
    from adapters.binance_usdm.endpoints import resolve_usdm_endpoints

    if venue.position_mode != "one-way":
        return f"{at}.position_mode", "Binance USD-M is traded in one-way mode only"
    try:
        resolve_usdm_endpoints(venue.endpoints, env={})
    except ValueError as exc:
        return f"{at}.endpoints", str(exc)
    for j, stream in enumerate(venue.streams):
        if not (_STREAM_RE.fullmatch(stream) or _USDM_STREAM_RE.fullmatch(stream)):
            return f"{at}.streams[{j}]", (
                f"unknown stream {stream!r} (expected trade, aggTrade, bookTicker, depth, "
                "depth@100ms, depth5|10|20[@100ms], kline_<interval> or markPrice[@1s])")
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
