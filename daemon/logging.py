"""Structured logging: JSON lines for machines, coloured lines for people.

Owns the structlog configuration, the secret redaction every log line passes
through, and the two renderings of a line. For journald, a pipe or a file (and
`tapeloop logs` reads these back) a line is one JSON object:

    {"ts":"2024-05-01T12:00:00.123456Z","level":"info","event":"journal.opened",...}

On a terminal it is structlog's ConsoleRenderer (`render_console`, which
`tapeloop logs` uses too, so both views read the same):

    2024-05-01 12:00:00.123Z [info     ] journal.opened   logger=tapeloop.kernel ...

`resolve_format("auto", stream)` picks between them.

`event` is a stable dotted name (grep for it, alert on it); everything else is bound
context (venue, symbol, strategy_id, client_order_id, ...). Exceptions become one
`exc` string field, so a traceback never spans lines.

Speed: the level filter is decided when the logger class is built
(`make_filtering_bound_logger`), so a filtered-out call is a no-op method;
serialisation is msgspec straight to bytes. Call `configure_logging` once at
start-up, before the first log call: loggers are cached on first use.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import MutableMapping
from functools import lru_cache
from typing import IO, Any

import msgspec
import structlog
from structlog.typing import FilteringBoundLogger, WrappedLogger

__all__ = [
    "FORMATS",
    "LEVELS",
    "configure_logging",
    "get_logger",
    "register_secret",
    "render_console",
    "resolve_format",
]

FORMATS = ("auto", "console", "json")

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
REDACTED = "***"

_SECRET_KEY = re.compile(r"secret|password|token|api_?key|signature|private", re.IGNORECASE)
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact `value` wherever it appears in a logged string from now on.

    Call it at start-up for every secret the process loads (API keys, the control
    token), before anything can log them.
    """
    global _secrets
    if not value:
        return  # "" is in every string
    with _secrets_lock:
        if value not in _secrets:
            # Longest first, so a secret that contains another is removed whole.
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


@lru_cache(maxsize=4096)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _redact(_: WrappedLogger, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key, value in event_dict.items():
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        elif _secrets or isinstance(value, dict | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def _format_exc(_: WrappedLogger, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if isinstance(exc_info, tuple) and exc_info[0] is not None:
            # One string; JSON escapes its newlines, so the line stays one line.
            event_dict["exc"] = "".join(traceback.format_exception(*exc_info)).rstrip()
    return event_dict


def _enc_hook(obj: Any) -> Any:
    # Anything msgspec cannot encode is logged as its str(), which may hold a secret.
    return _scrub(str(obj))


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


def _render(_: WrappedLogger, __: str, event_dict: MutableMapping[str, Any]) -> bytes:
    # ts, level, event (then logger) first: the fields a human scans for.
    head = {
        "ts": event_dict.pop("ts", None),
        "level": event_dict.pop("level", None),
        "event": event_dict.pop("event", None),
    }
    if "logger" in event_dict:
        head["logger"] = event_dict.pop("logger")
    head.update(event_dict)
    try:
        return _encoder.encode(head)
    except (TypeError, ValueError, OverflowError) as exc:
        # A value msgspec refuses (e.g. a dict with non-str keys): log it as text rather
        # than lose the line.
        safe = {
            k: v if isinstance(v, str | int | float | bool | None) else str(v)
            for k, v in head.items()
        }
        safe["log_error"] = f"{type(exc).__name__}: {exc}"
        return _encoder.encode(_scrub(safe))


_TS = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z?)$")


@lru_cache(maxsize=4)
def _console_renderer(colors: bool) -> structlog.dev.ConsoleRenderer:
    # Keys keep the order they were bound in (the JSON order): sorted keys would scatter
    # client_order_id and strategy_id across lines.
    return structlog.dev.ConsoleRenderer(
        colors=colors, sort_keys=False, timestamp_key="ts", pad_level=True
    )


def _short_ts(ts: Any) -> Any:
    """`2024-05-01 12:00:00.123Z` from the ISO stamp: milliseconds are what a person reads."""
    match = _TS.match(ts) if isinstance(ts, str) else None
    if match is None:
        return ts
    day, clock, frac, zone = match.groups()
    return f"{day} {clock}.{(frac or '').ljust(3, '0')[:3]}{zone}"


def render_console(event_dict: MutableMapping[str, Any], *, colors: bool) -> str:
    """One log record (the JSON line's fields) as a human line, coloured if `colors`.

    The record's `exc` (a formatted traceback) follows the line, as ConsoleRenderer
    prints an exception. Used by the daemon on a terminal and by `tapeloop logs`.
    """
    record = dict(event_dict)
    if "ts" in record:
        record["ts"] = _short_ts(record["ts"])
    # A line from elsewhere may hold anything: the renderer wants these as text.
    for key in ("level", "event", "logger"):
        if key in record:
            value = record.pop(key)
            if value is not None:
                record[key] = value if isinstance(value, str) else str(value)
    exc = [str(v) for k in ("exception", "exc_info", "exc") if (v := record.pop(k, None))
           and not isinstance(v, bool)]
    if "stack" in record:
        record["stack"] = str(record["stack"])
    if exc:
        record["exception"] = "\n".join(exc)
    return str(_console_renderer(colors)(None, "", record))


def resolve_format(choice: str, stream: Any = None, env: Any = None) -> str:
    """"console" or "json" for `choice` ("auto", "console", "json").

    auto: console on a terminal, JSON to a pipe, a file or systemd's journal
    (JOURNAL_STREAM: systemd may hand a unit a TTY, and journald wants JSON).
    """
    if choice not in FORMATS:
        raise ValueError(f"unknown log format {choice!r}: expected one of {', '.join(FORMATS)}")
    if choice != "auto":
        return choice
    env = os.environ if env is None else env
    stream = sys.stdout if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed or not a file
        tty = False
    return "console" if tty and not env.get("JOURNAL_STREAM") else "json"


def _console_processor(colors: bool) -> Any:
    def render(_: WrappedLogger, __: str, event_dict: MutableMapping[str, Any]) -> bytes:
        # The values the JSON line would hold (a Decimal as "1.50", not Decimal('1.50')),
        # so a line reads the same here and in `tapeloop logs` of its JSON twin.
        try:
            record = msgspec.to_builtins(dict(event_dict), enc_hook=_enc_hook, str_keys=True)
        except (TypeError, ValueError, OverflowError):
            record = {str(k): _scrub(str(v)) if not isinstance(v, str | int | float | bool | None)
                      else v for k, v in event_dict.items()}
        return render_console(record, colors=colors).encode("utf-8", errors="replace")

    return render


def _redact_rendered(_: WrappedLogger, __: str, rendered: Any) -> Any:
    """The last processor (after the renderer): a registered secret that reached the
    rendered line anyway (inside an object the encoder serialises itself, such as a
    dataclass or a Struct, a dict key, a renderer's repr) is replaced there, as
    written and JSON-escaped. A line without one costs a substring test per secret."""
    secrets = _secrets
    if not secrets:
        return rendered
    for secret in secrets:
        for form in {secret.encode(), msgspec.json.encode(secret)[1:-1]}:
            if isinstance(rendered, bytes):
                if form in rendered:
                    rendered = rendered.replace(form, REDACTED.encode())
            elif isinstance(rendered, str) and form.decode() in rendered:
                rendered = rendered.replace(form.decode(), REDACTED)
    return rendered


class _Sink:
    """The binary stream the loggers write to; swappable after loggers are cached."""

    def __init__(self) -> None:
        self.target: Any = None
        self.use(None)

    def use(self, stream: IO[bytes] | IO[str] | None) -> None:
        if stream is None:
            # The daemon's case: bytes straight to fd 1's buffer, no text layer.
            stream = getattr(sys.stdout, "buffer", None) or sys.stdout
        # A text stream keeps its own buffer (and ordering with print()) via the adapter.
        self.target = _TextTarget(stream) if isinstance(stream, io.TextIOBase) else stream

    def write(self, data: bytes) -> int:
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


class _TextTarget:
    """Adapts a text stream (io.StringIO, a test's capture) to the bytes the sink writes."""

    def __init__(self, stream: IO[str] | io.TextIOBase) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        return self.stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


_sink = _Sink()


def _logger_factory(name: str | None = None, *_: Any) -> structlog.BytesLogger:
    return structlog.BytesLogger(_sink, name=name)  # type: ignore[arg-type]


def _add_logger_name(
    logger: WrappedLogger, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    name = getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


def configure_logging(
    level: str | int = "info",
    stream: IO[bytes] | IO[str] | None = None,
    fmt: str = "json",
) -> None:
    """Lines at `level` and above to `stream` (default: stdout), as `fmt`:
    "json", "console" (coloured unless NO_COLOR is set), or "auto" (`resolve_format`).

    Also routes the standard library's `logging` (aiohttp, asyncio) into the same
    stream, as `event = "stdlib.<logger name>"` with the message in `msg`.
    """
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(LEVELS)}")
        level = LEVELS[level.lower()]
    fmt = resolve_format(fmt, stream)
    if fmt == "console":
        renderer = _console_processor(colors=not os.environ.get("NO_COLOR"))
    else:
        renderer = _render
    _sink.use(stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _format_exc,
            _redact,
            renderer,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=True,
    )
    _bridge_stdlib(level)


def get_logger(name: str, **context: Any) -> FilteringBoundLogger:
    """A logger with `logger=name` (and any `context`) bound to every line it writes."""
    # The name travels as a logger-factory argument: `logger=` is taken by structlog.
    logger: FilteringBoundLogger = structlog.get_logger(name, **context)
    return logger


class _StdlibBridge(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(record.name)
            exc: BaseException | bool = False
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
            log.log(record.levelno, f"stdlib.{record.name}", msg=record.getMessage(), exc_info=exc)
        except Exception:
            self.handleError(record)


def _bridge_stdlib(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibBridge):
            root.removeHandler(handler)
    root.addHandler(_StdlibBridge())
    root.setLevel(level)
