"""daemon.logging: JSON lines with bound context, redaction, one-line exceptions."""

from __future__ import annotations

import io
import json
import logging
import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
import structlog

from daemon.logging import configure_logging, get_logger, register_secret, render_console
from tests.daemon.conftest import Lines, _unconfigure

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_lines_are_json_with_ts_level_event_and_bound_context(
    captured: tuple[io.BytesIO, Lines],
) -> None:
    _, lines = captured
    log = get_logger("tapeloop.oms", venue="sim").bind(symbol="BTCUSDT", strategy_id="sma")
    log.info("order.accepted", client_order_id="sma-1", qty=0.5)
    log.debug("order.debug_detail")
    [first, second] = lines()
    assert list(first)[:3] == ["ts", "level", "event"]
    assert ISO_UTC.fullmatch(first["ts"]), first["ts"]
    assert first["level"] == "info"
    assert first["event"] == "order.accepted"
    assert first["logger"] == "tapeloop.oms"
    assert {k: first[k] for k in ("venue", "symbol", "strategy_id", "client_order_id", "qty")} == {
        "venue": "sim",
        "symbol": "BTCUSDT",
        "strategy_id": "sma",
        "client_order_id": "sma-1",
        "qty": 0.5,
    }
    assert second["level"] == "debug"


def test_contextvars_are_merged(captured: tuple[io.BytesIO, Lines]) -> None:
    _, lines = captured
    with structlog.contextvars.bound_contextvars(strategy_id="mm"):
        get_logger("t").info("strategy.started")
    assert lines()[0]["strategy_id"] == "mm"


def test_level_filter_drops_lower_levels(captured: tuple[io.BytesIO, Lines]) -> None:
    _, lines = captured
    configure_logging("warning", stream=captured[0])
    log = get_logger("t")
    log.debug("a.debug")
    log.info("a.info")
    log.warning("a.warning")
    log.error("a.error")
    assert [line["event"] for line in lines()] == ["a.warning", "a.error"]


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", stream=io.BytesIO())


def test_secret_named_keys_are_redacted(captured: tuple[io.BytesIO, Lines]) -> None:
    _, lines = captured
    get_logger("t").info(
        "venue.connected",
        api_key="AK",
        apiKey="AK2",
        Signature="sig",
        password="pw",
        auth_token="tok",
        client_secret="s",
        private_key="pk",
        headers={"X-MBX-APIKEY": "AK3", "Accept": "json"},
        user="alice",
    )
    line = lines()[0]
    for key in ("api_key", "apiKey", "Signature", "password", "auth_token", "client_secret"):
        assert line[key] == "***", key
    assert line["private_key"] == "***"
    assert line["headers"] == {"X-MBX-APIKEY": "***", "Accept": "json"}
    assert line["user"] == "alice"


def test_registered_secret_values_are_redacted_everywhere(
    captured: tuple[io.BytesIO, Lines],
) -> None:
    buf, lines = captured
    register_secret("s3cr3t-value-123")
    register_secret("")  # ignored: it would match everything
    log = get_logger("t")
    log.warning(
        "rest.request",
        url="https://api/x?key=s3cr3t-value-123&a=1",
        args=["s3cr3t-value-123", 1],
        nested={"note": "see s3cr3t-value-123"},
    )
    try:
        raise RuntimeError("auth failed for s3cr3t-value-123")
    except RuntimeError:
        log.exception("rest.failed")
    assert b"s3cr3t-value-123" not in buf.getvalue()
    first, second = lines()
    assert first["url"] == "https://api/x?key=***&a=1"
    assert first["args"] == ["***", 1]
    assert first["nested"] == {"note": "see ***"}
    assert "auth failed for ***" in second["exc"]


def test_exception_is_one_line_with_exc_field(captured: tuple[io.BytesIO, Lines]) -> None:
    buf, lines = captured
    log = get_logger("t")
    prices: dict[str, float] = {}
    try:
        prices["missing"]
    except KeyError:
        log.exception("strategy.on_bar_failed", strategy_id="sma")
    log.error("venue.failed", exc_info=ValueError("boom"))
    raw = buf.getvalue()
    assert raw.count(b"\n") == 2
    first, second = lines()
    assert first["level"] == "error"
    assert first["exc"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in first["exc"]
    assert "exc_info" not in first
    assert second["exc"] == "ValueError: boom"


def test_unencodable_values_do_not_lose_the_line(captured: tuple[io.BytesIO, Lines]) -> None:
    _, lines = captured

    class Thing:
        def __str__(self) -> str:
            return "a thing"

    get_logger("t").info("odd.values", thing=Thing(), keys={(1, 2): "tuple key"})
    line = lines()[0]
    assert line["event"] == "odd.values"
    assert line["thing"] == "a thing"


def test_stdlib_logging_is_routed_into_json(captured: tuple[io.BytesIO, Lines]) -> None:
    _, lines = captured
    logging.getLogger("aiohttp.server").warning("bad request from %s", "1.2.3.4")
    [line] = lines()
    assert line["event"] == "stdlib.aiohttp.server"
    assert line["msg"] == "bad request from 1.2.3.4"
    assert line["level"] == "warning"


def test_text_stream_is_accepted() -> None:
    out = io.StringIO()
    try:
        configure_logging("info", stream=out)
        get_logger("t").info("text.ok", n=1)
        assert json.loads(out.getvalue())["event"] == "text.ok"
    finally:
        _unconfigure()


def test_a_console_line_reads_as_logs_renders_its_json_twin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon's console line and `tapeloop logs` of the same event's JSON line are
    one rendering (past the timestamp, which each line takes when it is written)."""
    monkeypatch.setenv("NO_COLOR", "1")

    def log_with(fmt: str) -> bytes:
        buf = io.BytesIO()
        configure_logging("info", stream=buf, fmt=fmt)
        log = get_logger("tapeloop.test", venue="binance")
        log.info("order.filled", qty=Decimal("1.50"), price=Decimal("61800.2"),
                 path=Path("/var/lib/a b"), legs={"k": Decimal(1)}, none=None, ok=True, n=3)
        try:
            raise ValueError("boom")
        except ValueError:
            log.error("strategy.failed", strategy_id="sma", exc_info=True)
        _unconfigure()
        return buf.getvalue()

    console = log_with("console").decode()
    records = [msgspec.json.decode(line) for line in log_with("json").splitlines()]
    from_json = "\n".join(render_console(r, colors=False) for r in records) + "\n"
    strip_ts = re.compile(r"^\S+ \S+ ", flags=re.M)
    assert "Decimal(" not in console and "qty=1.50" in console
    assert strip_ts.sub("", console) == strip_ts.sub("", from_json)
