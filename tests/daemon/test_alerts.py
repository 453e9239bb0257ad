"""daemon.alerts: bus events -> `alert` log lines and webhook POSTs to a real receiver."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

import daemon.alerts.secrets as secrets_mod
import daemon.alerts.webhook as webhook_mod
from daemon.alerts import Alerts
from daemon.config import AlertsConfig
from daemon.logging import get_logger
from events.bus import Bus
from events.system import (
    CONNECTED,
    DISCONNECTED,
    HALTED,
    REDUCING,
    RESYNCING,
    StrategyStatus,
    TradingState,
    VenueStatus,
)
from tests.conftest import until

HOOK_PATH = "/services/T0001/B0002/s3cr3t-hook-token"
ENV = "TAPELOOP_ALERT_WEBHOOK"
T0 = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z
S = 1_000_000_000

Lines = Callable[[], list[dict[str, Any]]]


class Receiver:
    """A webhook endpoint: records every POST; answers from `script` (status, headers,
    or "hang" until `release` is set), then 200."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[float, dict[str, Any]]] = []
        self.delivered: list[dict[str, Any]] = []
        self.script: deque[tuple[int | str, dict[str, str]]] = deque()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((time.monotonic(), body))
        status, headers = self.script.popleft() if self.script else (200, {})
        if status == "hang":
            await self.release.wait()
            status = 200
        assert isinstance(status, int)
        if status == 200:
            self.delivered.append(body)
        return web.Response(status=status, text="ok" if status == 200 else "invalid_payload",
                            headers=headers)

    def kinds(self) -> list[str]:
        return [body["tapeloop"]["kind"] for body in self.delivered]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post(HOOK_PATH, rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}{HOOK_PATH}"
    yield rec
    rec.release.set()
    await runner.cleanup()


@pytest.fixture
def logs(captured: tuple[io.BytesIO, Lines]) -> tuple[io.BytesIO, Lines]:
    """Logging at debug into a buffer (tests/daemon/conftest.py `captured`)."""
    return captured


class Clock:
    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns


@contextlib.asynccontextmanager
async def started(url: str | None = None, *, env: dict[str, str] | None = None,
                  clock: Clock | None = None, run: bool = True, queue_size: int = 1000,
                  **cfg: Any) -> AsyncIterator[tuple[Alerts, Bus]]:
    config = AlertsConfig(**{"venue_down_after_s": 0.05, "min_interval_s": 0.0,
                             "timeout_s": 2.0, "retries": 2, **cfg})
    if env is None:
        env = {ENV: url} if url else {}
    bus = Bus()
    alerts = Alerts(config, bus, clock or Clock(), env=env, rng=random.Random(7),
                    backoff_s=0.01, queue_size=queue_size)
    alerts.subscribe()
    task = asyncio.create_task(alerts.run()) if run else None
    if task is not None:
        await until(lambda: alerts.running, message="the sender")
    try:
        yield alerts, bus
    finally:
        await alerts.close()
        assert task is None or task.done()


def trading(state: str, reason: str) -> TradingState:
    return TradingState(ts_event=T0, ts_recv=T0, state=state, reason=reason)


def venue(name: str, status: str, reason: str = "") -> VenueStatus:
    return VenueStatus(ts_event=T0, ts_recv=T0, venue=name, status=status, reason=reason)


def strategy(sid: str, status: str, reason: str = "") -> StrategyStatus:
    return StrategyStatus(ts_event=T0, ts_recv=T0, strategy_id=sid, status=status,
                          reason=reason)


def alert_lines(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line["event"] == "alert"]


async def test_halted_posts_one_webhook_with_the_reason(receiver: Receiver, logs) -> None:
    buf, lines = logs
    async with started(receiver.url) as (alerts, bus):
        bus.publish(trading(REDUCING, "binance:feed market data disconnected"))  # no alert
        bus.publish(trading(HALTED, "halted by operator"))
        bus.publish(trading("active", "resumed by operator"))  # no alert
        await until(lambda: alerts.sent == 1, message="the webhook")
        assert alerts.raised == 1 and alerts.pending == 0
    [(_, body)] = receiver.requests
    assert body["text"].endswith("ERROR trading_halted: Trading HALTED: halted by operator")
    meta = body["tapeloop"]
    assert meta["kind"] == "trading_halted" and meta["severity"] == "error"
    assert meta["reason"] == "halted by operator" and meta["state"] == HALTED
    assert meta["ts"] == "2024-05-01T12:00:00.000Z" and meta["ts_ns"] == T0
    assert meta["suppressed"] == 0
    [line] = alert_lines(lines)
    assert line["level"] == "error" and line["kind"] == "trading_halted"
    assert line["message"] == "Trading HALTED: halted by operator"
    assert line["reason"] == "halted by operator"
    assert receiver.url.encode() not in buf.getvalue()


async def test_daily_loss_reducing_then_halted(receiver: Receiver, logs) -> None:
    _, lines = logs
    async with started(receiver.url, min_interval_s=60.0) as (alerts, bus):
        bus.publish(trading(REDUCING, "daily loss 120 >= daily_loss_limit 100"))
        bus.publish(trading(HALTED, "daily loss 240 >= 2 x daily_loss_limit 100"))
        bus.publish(trading("active", "daily loss 10 < daily_loss_limit 100"))  # no alert
        await until(lambda: alerts.sent == 2, message="two webhooks")
    assert receiver.kinds() == ["daily_loss", "daily_loss"]  # the halt is not rate-limited
    reducing, halted = (body["tapeloop"] for body in receiver.delivered)
    assert reducing["state"] == REDUCING and halted["state"] == HALTED
    assert "Trading HALTED: daily loss 240" in receiver.delivered[1]["text"]
    assert [line["kind"] for line in alert_lines(lines)] == ["daily_loss", "daily_loss"]


async def test_venue_down_past_threshold_then_up(receiver: Receiver, logs) -> None:
    _, lines = logs
    async with started(receiver.url, venue_down_after_s=0.1) as (alerts, bus):
        bus.publish(venue("flaky", DISCONNECTED, "ws closed 1006"))
        bus.publish(venue("flaky", CONNECTED))  # back before the threshold: nothing
        bus.publish(venue("leaving", DISCONNECTED, "stopped"))  # an orderly stop: nothing
        # "slow"'s timer is set after "flaky"'s would have been: it is the witness.
        bus.publish(venue("slow", DISCONNECTED, "ws closed 1006"))
        bus.publish(venue("slow", RESYNCING, "depth gap"))  # still not connected
        assert set(alerts.venues_down()) == {"slow"}
        await until(lambda: alerts.sent == 1, message="venue_down")
        bus.publish(venue("slow", CONNECTED, "feed resumed"))
        await until(lambda: alerts.sent == 2, message="venue_up")
        assert alerts.venues_down() == {}
    assert receiver.kinds() == ["venue_down", "venue_up"]
    down, up = (body["tapeloop"] for body in receiver.delivered)
    assert down["venue"] == "slow" and down["status"] == RESYNCING
    assert down["reason"] == "depth gap" and down["down_s"] >= 0.1
    assert "Venue slow resyncing for" in receiver.delivered[0]["text"]
    assert up["severity"] == "info" and up["venue"] == "slow" and up["down_s"] >= 0.1
    assert [(line["level"], line["kind"]) for line in alert_lines(lines)] == [
        ("error", "venue_down"), ("info", "venue_up")]


async def test_strategy_failed(receiver: Receiver) -> None:
    async with started(receiver.url) as (alerts, bus):
        bus.publish(strategy("mm", "running"))
        bus.publish(strategy("mm", "failed", "ZeroDivisionError('division by zero')"))
        await until(lambda: alerts.sent == 1, message="strategy_failed")
    [body] = receiver.delivered
    assert body["tapeloop"]["kind"] == "strategy_failed"
    assert body["tapeloop"]["strategy_id"] == "mm"
    assert "Strategy mm failed: ZeroDivisionError" in body["text"]


async def test_rate_limit_suppresses_and_summarises(receiver: Receiver, logs) -> None:
    _, lines = logs
    clock = Clock()
    async with started(receiver.url, clock=clock, min_interval_s=60.0) as (alerts, bus):
        for _ in range(5):
            bus.publish(strategy("mm", "failed", "boom"))
            clock.ns += S
        bus.publish(strategy("sma", "failed", "boom"))  # another key: its own limit
        assert (alerts.raised, alerts.dropped) == (2, 4)
        clock.ns = T0 + 61 * S
        bus.publish(strategy("mm", "failed", "boom again"))
        await until(lambda: alerts.sent == 3, message="three webhooks")
    assert [b["tapeloop"]["strategy_id"] for b in receiver.delivered] == ["mm", "sma", "mm"]
    last = receiver.delivered[2]
    assert last["tapeloop"]["suppressed"] == 4
    assert last["text"].endswith("(+4 more since 2024-05-01T12:00:00.000Z)")
    assert [line.get("suppressed") for line in alert_lines(lines)] == [None, None, 4]


async def test_retry_after_500_delivers_once(receiver: Receiver, logs) -> None:
    _, lines = logs
    receiver.script.append((500, {}))
    async with started(receiver.url) as (alerts, bus):
        alerts.raise_alert("reconcile_diff", "binance: 1 order differs", venue="binance",
                           client_order_id="mm-7", ours="NEW", theirs="FILLED")
        await until(lambda: alerts.sent == 1, message="the retried webhook")
        assert alerts.failed == 0
    assert len(receiver.requests) == 2 and len(receiver.delivered) == 1
    meta = receiver.delivered[0]["tapeloop"]
    assert meta["kind"] == "reconcile_diff" and meta["client_order_id"] == "mm-7"
    [retry] = [line for line in lines() if line["event"] == "alert.webhook_retry"]
    assert retry["status"] == 500 and retry["attempt"] == 1


async def test_429_honours_retry_after(receiver: Receiver) -> None:
    receiver.script.append((429, {"Retry-After": "0.2"}))
    async with started(receiver.url) as (alerts, _):
        alerts.raise_alert("reconcile_diff", "diff", venue="binance")
        await until(lambda: alerts.sent == 1, message="the webhook after Retry-After")
    (first, _), (second, _) = receiver.requests
    assert second - first >= 0.2  # the jittered backoff alone would be ~0.01 s


async def test_400_is_not_retried_and_the_url_is_never_logged(
        receiver: Receiver, logs, monkeypatch: pytest.MonkeyPatch) -> None:
    buf, lines = logs
    # No redaction: the URL must stay out of the log because it is never logged.
    monkeypatch.setattr(secrets_mod, "register_secret", lambda value: None)
    monkeypatch.setattr(webhook_mod, "register_secret", lambda value: None)
    receiver.script.append((400, {}))
    async with started(receiver.url) as (alerts, bus):
        bus.publish(trading(HALTED, "halted by operator"))
        await until(lambda: alerts.failed == 1, message="the failure")
    assert len(receiver.requests) == 1 and alerts.sent == 0
    [failed] = [line for line in lines() if line["event"] == "alert.webhook_failed"]
    assert failed["status"] == 400 and failed["attempts"] == 1
    assert failed["response"] == "invalid_payload"
    assert HOOK_PATH.encode() not in buf.getvalue()


async def test_connection_errors_are_retried_then_given_up(
        logs, monkeypatch: pytest.MonkeyPatch) -> None:
    buf, lines = logs
    monkeypatch.setattr(secrets_mod, "register_secret", lambda value: None)
    monkeypatch.setattr(webhook_mod, "register_secret", lambda value: None)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}{HOOK_PATH}"
    async with started(url, retries=2) as (alerts, _):
        alerts.raise_alert("reconcile_diff", "diff", venue="binance")
        await until(lambda: alerts.failed == 1, message="the failure")
    retries = [line for line in lines() if line["event"] == "alert.webhook_retry"]
    [failed] = [line for line in lines() if line["event"] == "alert.webhook_failed"]
    assert len(retries) == 2 and failed["attempts"] == 3 and failed["status"] is None
    assert failed["error"].startswith("ClientConnectorError")
    assert HOOK_PATH.encode() not in buf.getvalue()


async def test_a_slow_webhook_times_out_and_is_retried(receiver: Receiver, logs) -> None:
    _, lines = logs
    receiver.script.append(("hang", {}))
    async with started(receiver.url, timeout_s=0.1, retries=1) as (alerts, _):
        alerts.raise_alert("reconcile_diff", "diff", venue="binance")
        await until(lambda: alerts.sent == 1, message="the retried webhook")
    [retry] = [line for line in lines() if line["event"] == "alert.webhook_retry"]
    assert retry["error"].startswith("TimeoutError"), retry


async def test_no_webhook_only_logs(logs) -> None:
    _, lines = logs
    async with started(None) as (alerts, bus):
        assert not alerts.webhook_configured
        bus.publish(trading(HALTED, "halted by operator"))
        assert (alerts.raised, alerts.pending, alerts.sent, alerts.failed) == (1, 0, 0, 0)
    [line] = alert_lines(lines)
    assert line["kind"] == "trading_halted" and line["reason"] == "halted by operator"
    assert [a.kind for a in alerts.history] == ["trading_halted"]


async def test_url_from_the_credentials_directory_is_a_secret(
        receiver: Receiver, logs, tmp_path: Path) -> None:
    buf, _ = logs
    (tmp_path / ENV.lower()).write_text(receiver.url + "\n")
    async with started(env={"CREDENTIALS_DIRECTORY": str(tmp_path)}) as (alerts, _):
        assert alerts.webhook_configured
        get_logger("t").info("oops", note=f"posting to {receiver.url}", path=HOOK_PATH)
        alerts.raise_alert("reconcile_diff", "diff", venue="binance")
        await until(lambda: alerts.sent == 1, message="the webhook")
    assert receiver.url.encode() not in buf.getvalue()
    assert HOOK_PATH.encode() not in buf.getvalue()


def test_a_bad_url_is_refused_without_showing_it(logs) -> None:
    with pytest.raises(ValueError, match=f"\\${ENV}") as info:
        Alerts(AlertsConfig(), Bus(), Clock(), env={ENV: "hooks.example/s3cr3t-hook-token"})
    assert "s3cr3t" not in str(info.value)


async def test_overflow_drops_the_oldest_and_close_drains(receiver: Receiver) -> None:
    async with started(receiver.url, run=False, queue_size=2) as (alerts, _):
        for i in range(5):
            alerts.raise_alert("reconcile_diff", f"diff {i}", key=str(i))
        assert (alerts.pending, alerts.dropped, alerts.overflowed) == (2, 3, 3)
        assert [a.message for a in alerts.history] == [f"diff {i}" for i in range(5)]
    async with started(receiver.url) as (alerts, _):
        alerts.raise_alert("reconcile_diff", "diff at shutdown", venue="binance")
    # close() returned: it gave the queued alert its chance first.
    assert [b["tapeloop"]["message"] for b in receiver.delivered] == ["diff at shutdown"]
    receiver.script.append(("hang", {}))
    async with started(receiver.url) as (alerts, _):
        alerts.raise_alert("reconcile_diff", "in flight", venue="binance")
        await until(lambda: len(receiver.requests) == 2, message="the POST in flight")
        asyncio.get_running_loop().call_soon(receiver.release.set)
    assert receiver.delivered[-1]["tapeloop"]["message"] == "in flight"  # close() waited


async def test_odd_context_never_raises(receiver: Receiver, logs) -> None:
    _, lines = logs
    async with started(receiver.url) as (alerts, _):
        alert = alerts.raise_alert("reconcile_diff", "odd", severity="loud", event="x",
                                   thing=object(), venue="binance")
        assert alert is not None and alert.severity == "error"
        await until(lambda: alerts.sent == 1, message="the webhook")
    meta = receiver.delivered[0]["tapeloop"]
    assert meta["ctx_event"] == "x" and meta["thing"].startswith("<object")
    assert alert_lines(lines)[0]["ctx_event"] == "x"
