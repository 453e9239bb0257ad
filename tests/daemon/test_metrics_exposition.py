"""/metrics through prometheus_client: the process collector's metrics are exposed
beside tapeloop's, every family tapeloop exposed before keeps its name and type,
and the output parses as the text format."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

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
