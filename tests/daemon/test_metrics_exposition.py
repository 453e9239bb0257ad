"""/metrics through prometheus_client: the process collector's metrics are exposed
beside tapeloop's, every family tapeloop exposed before keeps its name and type,
the output parses as the text format; the alerts are counted per channel."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from daemon.alerts import Alerts
from daemon.config import AlertsConfig
from tests.conftest import until
from tests.daemon.test_alerts import ENV, Receiver, receiver  # noqa: F401 (the fixture)
from tests.daemon.test_control import parse_prometheus, sample, serving

# every family /metrics exposed before prometheus_client rendered it (MiniKernel's)
FAMILIES = {
    "tapeloop_events_total": "counter", "tapeloop_events_per_second": "gauge",
    "tapeloop_journal_written_seq": "gauge", "tapeloop_journal_synced_seq": "gauge",
    "tapeloop_journal_backlog_bytes": "gauge", "tapeloop_fills_total": "counter",
    "tapeloop_rejections_total": "counter", "tapeloop_orders": "gauge",
    "tapeloop_pnl": "gauge", "tapeloop_position": "gauge", "tapeloop_equity": "gauge",
    "tapeloop_unvalued_balance": "gauge", "tapeloop_trading_state": "gauge",
    "tapeloop_venue_up": "gauge", "tapeloop_venue_reconnects_total": "counter",
    "tapeloop_strategy_up": "gauge", "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge", "tapeloop_journal_flush_seconds": "histogram",
    "tapeloop_bus_dispatch_seconds": "histogram",
}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process collector "
                    "reads /proc (Linux)")
async def test_metrics_keep_their_names_and_gain_the_process_collector(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, _token):
        kernel.trade_a_little()
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
            text = await r.text()
    types = dict(line.split(" ")[2:4] for line in text.splitlines()
                 if line.startswith("# TYPE "))
    assert {name: types.get(name) for name in FAMILIES} == FAMILIES
    s = parse_prometheus(text)
    assert sample(s, "process_cpu_seconds_total") > 0
    assert 3 < sample(s, "process_open_fds") < sample(s, "process_max_fds")
    assert sample(s, "process_max_fds") > 0 and sample(s, "process_virtual_memory_bytes") > 0
    assert sample(s, "tapeloop_bus_dispatch_seconds_bucket", le="1") >= 0  # `le` as before


async def test_alerts_are_counted_per_channel(
        tmp_path: Path, receiver: Receiver) -> None:  # noqa: F811 (the fixture)
    async with serving(tmp_path) as (kernel, _server, url, _token):
        alerts = Alerts(AlertsConfig(min_interval_s=60.0), kernel.bus, time.time_ns,
                        env={ENV: receiver.url})
        kernel.alerts = alerts
        task = asyncio.create_task(alerts.run())
        try:
            alerts.raise_alert("reconcile_diff", "diff", venue="sim")
            alerts.raise_alert("reconcile_diff", "again", venue="sim")  # rate-limited
            await until(lambda: alerts.sent == 1, message="the webhook")
            async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
                s = parse_prometheus(await r.text())
        finally:
            await alerts.close()
            await asyncio.wait([task])
    assert sample(s, "tapeloop_alerts_raised_total") == 1
    assert sample(s, "tapeloop_alerts_suppressed_total") == 1
    assert sample(s, "tapeloop_alerts_sent_total", channel="webhook") == 1
    assert sample(s, "tapeloop_alerts_failed_total", channel="webhook") == 0
    assert sample(s, "tapeloop_alerts_pending", channel="webhook") == 0
