"""Freqtrade's XRP perpetual data imported (bars, marks, funding) and replayed:
the replay takes the marks and funding rates in with the bars, and the report
samples the portfolio's margin usage beside each equity sample (margin.csv)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from daemon.backtest import ReplaySpec, run_replay
from daemon.config import load_config
from daemon.trading.portfolio import Portfolio
from tests.conftest import SHARED_DATA
from tests.test_cli_import import run_in_process

FUTURES = SHARED_DATA / "freqtrade" / "futures"
pytestmark = pytest.mark.skipif(not FUTURES.is_dir(), reason=f"{FUTURES} is absent")

CONFIG = """
[[venues]]
name = "usdm"
kind = "sim"
fill_model = "next"
balances = { USDT = 10_000.0 }

[[instruments]]
venue = "usdm"
symbol = "XRP/USDT:USDT"
base = "XRP"
quote = "USDT"
tick_size = 0.0001
step_size = 0.1

[risk]
max_order_qty = 100000.0
max_order_notional = 1_000_000.0
max_position_qty = 100000.0
daily_loss_limit = 1_000_000.0
max_orders_per_s = 100
price_band_pct = 20.0

[[strategies]]
id = "sma"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "usdm"
symbols = ["XRP/USDT:USDT"]
bar_interval = "1h"
params = { fast = 3, slow = 8, qty = 100.0 }
"""


def test_imported_perpetual_data_replays_with_margin_usage_sampled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for kind, name in (("bars", "XRP_USDT_USDT-1h-futures.feather"),
                       ("marks", "XRP_USDT_USDT-8h-mark.feather"),
                       ("funding", "XRP_USDT_USDT-8h-funding_rate.feather")):
        rc, _, err = run_in_process("import", kind, FUTURES / name, "--venue", "usdm",
                                    "--symbol", "XRP/USDT:USDT", "--data", data)
        assert rc == 0, err
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    # The lead's Portfolio.margin_usage() (not on this branch): a stand-in that
    # counts its calls, to see the report sample it once per equity sample.
    calls: list[int] = []

    def usage(self: Portfolio) -> Decimal:
        calls.append(1)
        return Decimal(len(calls)) / 1000

    monkeypatch.setattr(Portfolio, "margin_usage", usage, raising=False)
    out = tmp_path / "run"
    report = run_replay(load_config(config), ReplaySpec(data_dir=data, out_dir=out))
    # 100 bars and every mark and funding time in the bars' span went in
    assert report["events_in"] > 100
    assert report["fills"], "the strategy traded"
    with (out / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    with (out / "margin.csv").open() as f:
        margin = list(csv.DictReader(f))
    assert [m["ts_ns"] for m in margin] == [e["ts_ns"] for e in equity]
    assert [m["margin_usage"] for m in margin] == [
        str(Decimal(i + 1) / 1000) for i in range(len(margin))]
    perp = json.loads((out / "report.json").read_text())["perpetuals"]
    assert perp["margin_usage"]["samples"] == len(equity) == report["equity_samples"]
    assert perp["margin_usage"]["max"] == len(equity) / 1000
