"""Configuration: the TOML file validated into frozen msgspec Structs.

Owns the config schema (every section and key, with its default; the venues,
instruments and account sections live in `daemon.config_markets`, the alerts in
`daemon.config_alerts`, the shared value types in `daemon.config_types`), `load_config`
(which runs the cross-field checks of `daemon.config_checks`), and the helpers other
modules reuse (`parse_interval`, `parse_control`, `with_data_dir`). Every user mistake becomes one
`ConfigError` line naming the file and the key: `paper.toml: $.risk.max_order_qty:
Expected int|float, got str`.

Paths: `daemon.data_dir` (and a unix-socket `daemon.control`) are resolved against
the current working directory at load time, as the shell would; under systemd that
is `WorkingDirectory=`. `--data DIR` overrides `data_dir` (`load_config(..., data_dir=)`
or `with_data_dir`). A sample venue's `file` is resolved against the directory of the
config file, so a config and its recording can move together. A path the system could
not use (a NUL, a name over 255 bytes, a unix socket over 107) is refused here.

Numbers mean what the file writes: tapeloop takes a float as the decimal of its
shortest repr (`events.instruments.to_decimal`), so a number whose written digits a
float cannot hold (`0.1000000000000000000001`, `1e-400`) and `nan`/`inf` are refused,
in every section, strategy params included. Grids (`tick_size`, `step_size`) are
multiples of 1e-12 (see `config_checks.GRID_EXPONENT`).

`load_config` is everything a start refuses before it runs anything: `tapeloop
check-config` calls it, and so does `tapeloop run`, so a config one accepts the other
starts (strategies: class, params and `Strategy.check_params` against the instruments;
`initial_positions` files parsed).
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from daemon.config_alerts import AlertsConfig, EmailAlertsConfig, TelegramAlertsConfig
from daemon.config_errors import explain, syntax_error, value_at
from daemon.config_markets import AccountConfig, InstrumentConfig, MarginTierConfig, VenueConfig
from daemon.config_types import (
    FillModel,
    FsyncPolicy,
    InstrumentKind,
    LogLevel,
    MarginMode,
    Name,
    NonNegFloat,
    PositiveFloat,
    PositiveInt,
    SlippageModel,
    VenueKind,
    _Section,
)
from daemon.errors import EXIT_CONFIG, UserError

# the sections kept in their own modules are part of this module's interface
__all__ = [
    "AccountConfig", "AlertsConfig", "Config", "ConfigError", "ControlAddress", "DaemonConfig",
    "EmailAlertsConfig", "FillModel", "FsyncPolicy", "InstrumentConfig", "InstrumentKind",
    "JournalConfig", "LogLevel", "MarginMode", "MarginTierConfig", "Name", "NonNegFloat",
    "PositiveFloat", "PositiveInt", "RiskConfig", "SlippageModel", "StrategyConfig",
    "StrategyRiskConfig", "TelegramAlertsConfig", "VenueConfig", "VenueKind", "load_config",
    "parse_control", "parse_interval", "with_data_dir",
]


class ConfigError(UserError):
    """An invalid config: one line `FILE[:LINE]: [$.path: ]message`, exit EXIT_CONFIG."""

    def __init__(
        self, file: str, message: str, *, path: str | None = None, line: int | None = None
    ) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(
            f"{where}: {path}: {message}" if path else f"{where}: {message}", EXIT_CONFIG
        )
        self.file = file
        self.path = path
        self.line = line
        self.detail = message


class ControlAddress(msgspec.Struct, frozen=True, kw_only=True):
    """Where the control API listens: TCP `host:port`, or a unix socket `path`."""

    host: str | None = None
    port: int | None = None
    path: Path | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None


class DaemonConfig(_Section, frozen=True):
    """`[daemon]`: where the data lives and where the control API listens."""

    data_dir: Path = Path("data")
    control: str = "127.0.0.1:8765"
    log_level: LogLevel = "info"
    # "console": coloured lines for a person; "json": one object a line (journald,
    # `tapeloop logs`); "auto": console on a terminal outside systemd, else json.
    # `tapeloop run --log-format` overrides it.
    log_format: Literal["auto", "console", "json"] = "auto"
    # how often the portfolio's state is journaled as a Snapshot (recovery folds
    # only the events after the last one)
    snapshot_interval_s: PositiveFloat = 60.0
    # SIGTERM/SIGINT: strategies stop, venues get this long to send what they
    # started (cancels...), then the journal is flushed and rolled; systemd's
    # TimeoutStopSec must be above it.
    stop_budget_s: PositiveFloat = 10.0
    # Open orders at a graceful stop: "keep" them resting at the venue (the next
    # start reconciles them), or "cancel" every one before exiting.
    on_stop: Literal["keep", "cancel"] = "keep"
    # A strategy that cannot start (its construction, state file or on_start raises):
    # "stop" the start (one line, exit 3; nothing trades), or "continue" with the
    # others (the failure is a StrategyStatus failed and an alert). Either way the
    # daemon never reports READY with none of its strategies running.
    on_strategy_error: Literal["stop", "continue"] = "stop"

    @property
    def control_address(self) -> ControlAddress:
        return parse_control(self.control)


class JournalConfig(_Section, frozen=True):
    """`[journal]`: batching and durability (`fsync = "critical"` syncs orders and fills)."""

    flush_interval_ms: PositiveInt = 200
    fsync_interval_ms: PositiveInt = 1000
    segment_max_bytes: PositiveInt = 256 * 1024 * 1024
    roll_interval_s: PositiveInt = 300
    fsync: FsyncPolicy = "critical"
    # how a commit waits for its fdatasync: "block" sleeps in the call; "spin" keeps
    # the CPU busy meanwhile (events.disk_sync: it helped on a loaded machine here)
    sync_wait: Literal["spin", "block"] = "block"


class RiskConfig(_Section, frozen=True):
    """Account-wide limits. The six DESIGN keys are required: no silent "unlimited".
    Money limits (notional, daily loss) are in the account currency."""

    max_order_qty: PositiveFloat
    max_order_notional: PositiveFloat
    max_position_qty: PositiveFloat
    daily_loss_limit: PositiveFloat
    max_orders_per_s: PositiveFloat
    price_band_pct: PositiveFloat
    max_position_notional: PositiveFloat | None = None
    max_concentration_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    # Daily loss at this multiple of `daily_loss_limit` escalates REDUCING to HALTED.
    halt_loss_multiple: Annotated[float, msgspec.Meta(ge=1)] = 1.5
    # Refuse an order that would cross one of the account's own resting orders.
    self_trade_prevention: bool = True
    # Perpetuals (each unset = not checked; an order that reduces the account's
    # position always passes): the account's effective leverage (perpetual
    # notional at the mark over equity) after the order; the initial margin in use
    # as % of the margin balance after the order; how close (% of the mark) the
    # position's liquidation price may come after the order. An open position
    # whose liquidation price is within `liquidation_alert_pct` % of the mark
    # raises a `near_liquidation` alert.
    max_leverage: PositiveFloat | None = None
    max_margin_usage_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    min_liquidation_distance_pct: Annotated[float, msgspec.Meta(gt=0, lt=100)] | None = None
    liquidation_alert_pct: Annotated[float, msgspec.Meta(gt=0, lt=100)] = 10.0


class StrategyRiskConfig(_Section, frozen=True):
    """`[strategies.risk]`: a strategy's own limits. Each only tightens the account's
    (the risk engine applies the smaller of the two); unset keys inherit it."""

    max_order_qty: PositiveFloat | None = None
    max_order_notional: PositiveFloat | None = None
    max_position_qty: PositiveFloat | None = None
    max_position_notional: PositiveFloat | None = None
    max_concentration_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] | None = None
    daily_loss_limit: PositiveFloat | None = None
    max_orders_per_s: PositiveFloat | None = None
    price_band_pct: PositiveFloat | None = None


class StrategyConfig(_Section, frozen=True):
    """One `[[strategies]]` entry; `class` is any importable `module:Class`."""

    id: Name
    class_: str = msgspec.field(name="class")
    venue: Name
    symbols: Annotated[list[Name], msgspec.Meta(min_length=1)]
    bar_interval: str | None = None
    params: dict[str, Any] = {}
    enabled: bool = True
    paper: bool = False
    risk: StrategyRiskConfig | None = None
    # Both resolved against the config file's directory, like a sample venue's `file`.
    initial_positions: Path | None = None  # positions to seed at start (must exist)
    state_file: Path | None = None  # get_state()/set_state() persistence (may not exist yet)

    @property
    def module(self) -> str:
        return self.class_.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.class_.partition(":")[2]

    @property
    def bar_interval_ns(self) -> int | None:
        return None if self.bar_interval is None else parse_interval(self.bar_interval)


class Config(_Section, frozen=True):
    """A whole config file, validated and with its paths resolved (see the module doc)."""

    risk: RiskConfig
    venues: Annotated[list[VenueConfig], msgspec.Meta(min_length=1)]
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    account: AccountConfig = msgspec.field(default_factory=AccountConfig)
    instruments: list[InstrumentConfig] = []
    strategies: list[StrategyConfig] = []

    def venue(self, name: str) -> VenueConfig:
        for venue in self.venues:
            if venue.name == name:
                return venue
        raise KeyError(name)

    def instrument(self, venue: str, symbol: str) -> InstrumentConfig:
        for inst in self.instruments:
            if inst.venue == venue and inst.symbol == symbol:
                return inst
        raise KeyError((venue, symbol))


# --- helpers other modules reuse -------------------------------------------------

_MS = 1_000_000
_UNIT_NS = {"ms": _MS, "s": 1000 * _MS, "m": 60_000 * _MS, "h": 3_600_000 * _MS}
_UNIT_NS |= {"d": 24 * _UNIT_NS["h"], "w": 7 * 24 * _UNIT_NS["h"]}
_INTERVAL_RE = re.compile(r"([1-9][0-9]*)(ms|s|m|h|d|w)")


def parse_interval(text: str) -> int:
    """`"1s"`, `"5m"`, `"1h"`, `"1d"`, `"250ms"` -> nanoseconds; ValueError otherwise."""
    match = _INTERVAL_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"bad interval {text!r}: expected a whole number and a unit "
            '(ms, s, m, h, d, w), e.g. "1m", "5m", "1h"'
        )
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


def parse_control(text: str) -> ControlAddress:
    """`"host:port"` (IPv6 as `"[::1]:8765"`) or a unix socket path (anything with a `/`).

    Port 0 is allowed: the OS picks one (tests).
    """
    if "/" in text:
        return ControlAddress(path=Path(text))
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f'bad control address {text!r}: expected "host:port" (e.g. "127.0.0.1:8765") '
            'or a unix socket path containing "/" (e.g. "./tapeloop.sock")'
        )
    return ControlAddress(host=host, port=int(port))


def with_data_dir(config: Config, data_dir: str | os.PathLike[str]) -> Config:
    """`config` with `daemon.data_dir` replaced (the `--data DIR` override), made absolute."""
    path = Path(data_dir).expanduser().absolute()
    return msgspec.structs.replace(
        config, daemon=msgspec.structs.replace(config.daemon, data_dir=path)
    )


# --- loading -----------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str], *, data_dir: str | os.PathLike[str] | None = None
) -> Config:
    """Read, validate and resolve a config file; `data_dir` overrides `daemon.data_dir`.

    Raises `ConfigError` (a `UserError` with code `EXIT_CONFIG`) on any mistake.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            # every float as the exact decimal written, to refuse what a float cannot hold
            exact = tomllib.load(fh, parse_float=Decimal)
    except OSError as exc:
        raise ConfigError(file, f"cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(file, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(file, exc) from None
    except ValueError as exc:  # a NUL in the file name (after its subclasses above)
        raise ConfigError(file, f"cannot read config: {exc}") from None

    from daemon.config_checks import ConfigProblem, as_floats, check, check_files

    try:
        raw = as_floats(exact)
    except ConfigProblem as exc:
        raise ConfigError(file, exc.message, path=exc.path) from None
    try:
        config = msgspec.convert(raw, Config, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        json_path, message = explain(str(exc))
        if message.startswith("Expected") and ", got" not in message:
            # A constraint failed ("Expected int > 0"): show the value that broke it.
            value = value_at(raw, json_path)
            message += "" if value is None else f", got {value!r}"
        raise ConfigError(file, message, path=json_path) from None

    problem = check(config)
    if problem is not None:
        raise ConfigError(file, problem[1], path=problem[0])
    config = _resolve_paths(file, _with_account_currency(file, config), data_dir)
    problem = check_files(config)
    if problem is not None:
        raise ConfigError(file, problem[1], path=problem[0])
    return config


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Path and isinstance(obj, str) and obj:
        return Path(obj)
    raise TypeError(f"Expected a path string, got {type(obj).__name__}")


def _with_account_currency(file: str, config: Config) -> Config:
    """`config` with `[account] currency` inferred from the instruments' quote."""
    if config.account.currency is not None:
        return config
    quotes = sorted({inst.quote for inst in config.instruments})
    if len(quotes) <= 1:
        account = msgspec.structs.replace(config.account, currency=quotes[0] if quotes else None)
        return msgspec.structs.replace(config, account=account)
    raise ConfigError(file, (
        f"missing: the instruments are quoted in {', '.join(quotes)}; name the currency "
        f'the account is stated in (e.g. currency = "{quotes[-1]}") and, for the '
        f"others, a market that prices them or [account] rates"), path="$.account.currency")


def _resolve_paths(file: str, config: Config, data_dir: str | os.PathLike[str] | None) -> Config:
    """Every path of the config made absolute and checked usable: one line naming the
    key for a path the system would refuse, a missing input file or any OSError."""
    from daemon.config_checks import path_problem

    base = Path(file).absolute().parent

    def resolve(value: Path, at: str, kind: Literal["input", "output", "socket", "dir"],
                relative_to: Path | None = base) -> Path:
        """`kind`: a file read at start (must exist), a file written (may not exist
        yet, is not a directory), a unix socket, a directory (created if missing)."""
        try:
            path = value.expanduser()
            path = (path if relative_to is None else relative_to / path).absolute()
        except (OSError, RuntimeError) as exc:  # "~nobody/x", a vanished working directory
            raise ConfigError(file, f"cannot resolve {str(value)!r}: {exc}", path=at) from None
        if problem := path_problem(path, socket=kind == "socket"):
            raise ConfigError(file, problem, path=at)
        try:
            if kind == "input" and not path.is_file():
                raise ConfigError(file, f"no such file: {path}", path=at)
            if kind == "output" and path.is_dir():
                raise ConfigError(file, f"is a directory: {path}", path=at)
            if kind == "dir" and path.exists() and not path.is_dir():
                raise ConfigError(file, f"not a directory: {path}", path=at)
        except OSError as exc:  # e.g. a parent directory we may not search
            raise ConfigError(file, f"cannot use {path}: {exc.strerror or exc}", path=at) from None
        return path

    venues = list(config.venues)
    for i, venue in enumerate(venues):
        if venue.file is not None:
            recording = resolve(venue.file, f"$.venues[{i}].file", "input")
            venues[i] = msgspec.structs.replace(venue, file=recording)
    strategies = list(config.strategies)
    for i, strat in enumerate(strategies):
        at = f"$.strategies[{i}]"
        changes: dict[str, Path] = {}
        if strat.initial_positions is not None:
            changes["initial_positions"] = resolve(
                strat.initial_positions, f"{at}.initial_positions", "input")
        if strat.state_file is not None:
            changes["state_file"] = resolve(strat.state_file, f"{at}.state_file", "output")
        if changes:
            strategies[i] = msgspec.structs.replace(strat, **changes)
    daemon = config.daemon
    address = parse_control(daemon.control)
    if address.path is not None:
        # as the shell would: relative to the working directory
        socket_path = resolve(address.path, "$.daemon.control", "socket", relative_to=None)
        daemon = msgspec.structs.replace(daemon, control=str(socket_path))
    if data_dir is None:
        data_dir = resolve(daemon.data_dir, "$.daemon.data_dir", "dir", relative_to=None)
    elif problem := path_problem(Path(data_dir).absolute()):
        raise UserError(f"--data {os.fspath(data_dir)!r}: {problem}", EXIT_CONFIG)
    config = msgspec.structs.replace(config, venues=venues, daemon=daemon, strategies=strategies)
    return with_data_dir(config, data_dir)
