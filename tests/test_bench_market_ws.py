"""`make bench`'s market-data stream bench runs end to end: its child serves the
recording's messages over a real websocket, the stream receives every one of them
(the bench waits for the n-th; a message that parsed to nothing would hang it), and
the JSON line holds its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.bench_market_ws import RECORDING
from tests.conftest import REPO


def test_the_bench_receives_every_message_and_prints_its_line() -> None:
    if not RECORDING.exists():
        pytest.skip(f"{RECORDING} not found")
    out = subprocess.run([sys.executable, "-m", "bench.bench_market_ws"], cwd=REPO,
                         env={**os.environ, "TAPELOOP_BENCH_WS_MESSAGES": "2000"},
                         capture_output=True, text=True, timeout=120, check=True)
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["bench"] == "binance_market_ws"
    assert line["messages"] == 2000
    assert line["rounds"] == 5
    assert line["median_msgs_per_s"] <= line["msgs_per_s"]
    assert 0 < line["cpu_us_per_msg"] <= line["median_cpu_us_per_msg"]
