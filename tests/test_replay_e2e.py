"""`tapeloop replay` end to end, as real processes on real data."""

from __future__ import annotations

import csv
import json
import math
import re
import signal
import subprocess
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from events.store import list_parts
from tests.conftest import REPO, SHARED_DATA, cli_env, eventually, tapeloop_cmd

BARS = SHARED_DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared market data absent")

BAR_CONFIG = """
[[venues]]
name = "ftx"
kind = "sim"
fill_model = "next"
balances = { USD = 10_000_000.0 }

[[instruments]]
venue = "ftx"
symbol = "BTC-PERP"
base = "BTC"
quote = "USD"
tick_size = 0.25
step_size = 0.001

[risk]
max_order_qty = 10.0
max_order_notional = 1_000_000.0
max_position_qty = 10.0
daily_loss_limit = 1_000_000.0
max_orders_per_s = 100
price_band_pct = 20.0

[[strategies]]
id = "sma"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "ftx"
symbols = ["BTC-PERP"]
bar_interval = "1m"
params = { fast = 10, slow = 30, qty = 0.01 }
"""


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tapeloop_cmd(*map(str, args)), capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def bar_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("bars") / "data"
    out = run_cli("import", "bars", BARS, "--venue", "ftx", "--symbol", "BTC-PERP",
                  "--interval", "1m", "--data", data)
    assert out.returncode == 0, out.stderr
    return data


def expected_fills() -> list[tuple[int, str, Decimal]]:
    """sma_cross computed independently: on each closed bar, SMAs of the last
    fast/slow closes (math.fsum / n); flat and fast > slow → buy; long and
    fast < slow → sell. A market order fills at the next bar's open, stamped
    with that bar's close time."""
    rows = list(csv.DictReader(BARS.open()))
    opens = [Decimal(r["open"]) for r in rows]
    closes = [float(r["close"]) for r in rows]
    ts_close = [int(datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S.%f")
                    .replace(tzinfo=UTC).timestamp()) * 10**9 + 60 * 10**9 for r in rows]
    fills = []
    long = False
    for i in range(29, len(rows) - 1):
        fast = math.fsum(closes[i - 9:i + 1]) / 10
        slow = math.fsum(closes[i - 29:i + 1]) / 30
        if not long and fast > slow:
            fills.append((ts_close[i + 1], "BUY", opens[i + 1]))
            long = True
        elif long and fast < slow:
            fills.append((ts_close[i + 1], "SELL", opens[i + 1]))
            long = False
    return fills


def test_sma_cross_on_real_1m_bars_gives_the_fills_computed_independently(
        bar_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "bars.toml"
    config.write_text(BAR_CONFIG)
    out = run_cli("replay", "--config", config, "--data", bar_store, "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("events")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    got = [(f["ts_event"], f["side"], Decimal(f["price"])) for f in report["fills"]]
    want = expected_fills()
    assert len(want) > 1000
    assert got == want
    assert all(Decimal(f["qty"]) == Decimal("0.01") for f in report["fills"])
    assert report["events_in"] == 45_031
    for name in ("report.html", "fills.csv", "equity.csv"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    # the run's own events, not a copy of the input
    types = {p.type for p in list_parts(tmp_path / "run" / "events")}
    assert "Bar" not in types and {"OrderSubmitted", "Fill", "PositionChanged"} <= types


def test_replay_is_deterministic_byte_for_byte(bar_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "bars.toml"
    config.write_text(BAR_CONFIG)
    runs = []
    for name in ("a", "b"):
        out = run_cli("replay", "--config", config, "--data", bar_store, "--to", "2022-01-05",
                      "--out", tmp_path / name)
        assert out.returncode == 0, out.stderr
        parts = list_parts(tmp_path / name / "events")
        runs.append({(p.date, p.type): p.path.read_bytes() for p in parts})
    assert runs[0] and runs[0] == runs[1]
    fills = [(tmp_path / name / "fills.csv").read_bytes() for name in ("a", "b")]
    assert fills[0] == fills[1]


def test_replay_refuses_to_overwrite_a_run_and_bad_input_is_one_line(
        bar_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "bars.toml"
    config.write_text(BAR_CONFIG)
    assert run_cli("replay", "--config", config, "--data", bar_store, "--to", "2022-01-01",
                   "--out", tmp_path / "r").returncode == 0
    again = run_cli("replay", "--config", config, "--data", bar_store, "--out", tmp_path / "r")
    assert again.returncode != 0 and "already holds a run" in again.stderr
    for args in (("--speed", "fast"), ("--from", "2022-13-01")):
        bad = run_cli("replay", "--config", config, "--data", bar_store, "--out",
                      tmp_path / "x", *args)
        assert bad.returncode != 0
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


def paper_config(tmp_path: Path) -> Path:
    text = (REPO / "configs" / "paper.toml").read_text()
    sample = REPO / "configs" / "samples"
    text = text.replace('file = "samples/', f'file = "{sample}/')
    text = re.sub(r"^speed = [0-9.]+", "speed = 25.0", text, flags=re.M)
    text = text.replace('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"')  # any free port
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def intents(data: Path) -> list[tuple]:
    """The order intents of a run, client order ids without the data directory's
    prefix (a live daemon's ids carry it so they are unique on the account; a replay
    sends nothing anywhere and numbers its orders plainly)."""
    from events.store import read_manifest

    prefix = read_manifest(data).client_id_prefix
    strip = len(prefix) + 1 if prefix else 0
    rows = []
    for part in list_parts(data / "events", types=["OrderSubmitted"]):
        t = pq.read_table(part.path, columns=["seq", "client_order_id", "side", "order_type",
                                               "qty", "price"])
        rows += [(r["seq"], r["client_order_id"][strip:], r["side"], r["order_type"], r["qty"],
                  r["price"]) for r in t.to_pylist()]
    return [r[1:] for r in sorted(rows)]


def test_live_equals_replay(tmp_path: Path) -> None:
    """A paper run of `tapeloop run` is journaled; `tapeloop replay` over the
    market data it recorded produces the same order intents."""
    config, data, log = paper_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    proc = subprocess.Popen(tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=cli_env(),
                            cwd=REPO)
    try:
        # six intents, each filled (an order may take several fills)
        eventually(lambda: log.read_bytes().count(b'"order.submitted"') >= 7, timeout=60,
                   message="the paper strategy trading")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
    live = intents(data)
    assert len(live) >= 6
    out = run_cli("replay", "--config", config, "--data", data, "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    replayed = intents(tmp_path / "run")
    assert replayed == live


def test_a_strategy_that_raises_is_stopped_while_another_keeps_trading(
        bar_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "two.toml"
    config.write_text(BAR_CONFIG + """
[[strategies]]
id = "boom"
class = "tests.strategies_for_tests:Boom"
venue = "ftx"
symbols = ["BTC-PERP"]
bar_interval = "1m"
params = { after_bars = 5 }
""")
    out = run_cli("replay", "--config", config, "--data", bar_store, "--to", "2022-01-01",
                  "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    status = pq.read_table(list_parts(tmp_path / "run" / "events", types=["StrategyStatus"])[0]
                           .path, columns=["strategy_id", "status", "reason"]).to_pylist()
    failed = [s for s in status if s["status"] == "failed"]
    assert [(s["strategy_id"], s["reason"]) for s in failed] == [
        ("boom", "RuntimeError('strategy bug')")]
    fills = json.loads((tmp_path / "run" / "report.json").read_text())["fills"]
    boom = [f for f in fills if f["strategy_id"] == "boom"]
    sma = [f for f in fills if f["strategy_id"] == "sma"]
    assert len(boom) == 4  # four buys, then the bug stopped it
    assert sma and max(f["ts_event"] for f in sma) > max(f["ts_event"] for f in boom)


SPY_DAY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy" / "20131007_trade.zip"


def _replay_events(config_path: Path, data: Path, out: Path, coalesce: bool) -> dict:
    from daemon.backtest import ReplaySpec, run_replay
    from daemon.config import load_config

    run_replay(load_config(config_path), ReplaySpec(data_dir=data, out_dir=out,
                                                    coalesce=coalesce))
    files = {(p.date, p.type): p.path.read_bytes() for p in list_parts(out / "events")}
    # marks only show in valuations: the equity curve and the report must match too
    report = json.loads((out / "report.json").read_text())
    for key in ("wall_s", "events_per_s"):
        report.pop(key)
    files[("report", "json")] = json.dumps(report, sort_keys=True).encode()
    files[("equity", "csv")] = (out / "equity.csv").read_bytes()
    return files


@pytest.mark.parametrize("dataset", ["spy", "binance-sample"])
def test_quiet_runs_change_nothing(dataset: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Absorbing quiet runs of trades in bulk (and repeating an equity sample
    whose portfolio has not changed) gives the same events, byte for byte, as
    dispatching every trade and valuing every sample."""
    import daemon.backtest
    data = tmp_path / "data"
    if dataset == "spy":
        config = REPO / "configs" / "replay-spy.toml"
        out = run_cli("import", "trades", SPY_DAY, "--venue", "lean", "--symbol", "SPY",
                      "--data", data)
    else:
        config = paper_config(tmp_path)
        out = run_cli("import", "binance-stream",
                      REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz",
                      "--venue", "binance", "--symbol", "BTCUSDT", "--data", data)
    assert out.returncode == 0, out.stderr
    fast = _replay_events(config, data, tmp_path / "fast", coalesce=True)
    monkeypatch.setattr(daemon.backtest, "_REUSE_SAMPLES", False)
    slow = _replay_events(config, data, tmp_path / "slow", coalesce=False)
    assert any(t == "Fill" for _, t in fast), "the strategy traded"
    assert fast == slow


@pytest.mark.parametrize("balances", ["{ USD = 1_000_000.0 }",
                                      "{ USD = 1_000_000.0, SPY = 10.0 }"])
def test_equity_samples_of_a_flat_account_repeat_only_what_no_mark_moves(
        balances: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample whose account is flat and holds only its own currency repeats
    the last figures when only marks moved; one holding another currency (SPY,
    valued at the mark) is valued again: both as valuing every sample gives."""
    import daemon.backtest
    data = tmp_path / "data"
    out = run_cli("import", "trades", SPY_DAY, "--venue", "lean", "--symbol", "SPY",
                  "--data", data)
    assert out.returncode == 0, out.stderr
    text = (REPO / "configs" / "replay-spy.toml").read_text()
    assert "balances = { USD = 1_000_000.0 }" in text
    config = tmp_path / "replay.toml"
    config.write_text(text.replace("balances = { USD = 1_000_000.0 }", f"balances = {balances}"))
    fast = _replay_events(config, data, tmp_path / "fast", coalesce=True)
    monkeypatch.setattr(daemon.backtest, "_REUSE_SAMPLES", False)
    slow = _replay_events(config, data, tmp_path / "slow", coalesce=True)
    assert any(t == "Fill" for _, t in fast), "the strategy traded"
    equity = fast[("equity", "csv")].decode().splitlines()
    assert len(set(equity[1:])) > 100, "the samples differ"
    assert fast == slow


def test_a_paper_strategy_trades_on_a_simulated_twin_of_its_venue(
        bar_store: Path, tmp_path: Path) -> None:
    config = tmp_path / "paper.toml"
    config.write_text(BAR_CONFIG + """
[[strategies]]
id = "shadow"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "ftx"
symbols = ["BTC-PERP"]
bar_interval = "1m"
paper = true
params = { fast = 10, slow = 30, qty = 0.01 }
""")
    out = run_cli("replay", "--config", config, "--data", bar_store, "--to", "2022-01-02",
                  "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    fills = pq.read_table(list_parts(tmp_path / "run" / "events", types=["Fill"])[0].path,
                          columns=["strategy_id", "venue", "side", "price"]).to_pylist()
    real = [(f["side"], f["price"]) for f in fills if f["strategy_id"] == "sma"]
    twin = [(f["side"], f["price"]) for f in fills if f["strategy_id"] == "shadow"]
    assert {f["venue"] for f in fills if f["strategy_id"] == "shadow"} == {"ftx.paper"}
    assert {f["venue"] for f in fills if f["strategy_id"] == "sma"} == {"ftx"}
    assert real and twin == real  # same market, same decisions, its own account


def test_a_strategy_seeded_from_a_positions_file_can_close_its_position(
        bar_store: Path, tmp_path: Path) -> None:
    """initial_positions: the portfolio starts long and, on a simulated venue,
    the account holds the base currency behind it, so the strategy's first sell
    closes the seeded position."""
    (tmp_path / "positions.csv").write_text(
        "Symbol,Exchange,Quantity,AvgEntryPrice,Currency\nBTC-PERP,ftx,0.01,46000,USD\n")
    config = tmp_path / "seeded.toml"
    config.write_text(BAR_CONFIG.replace(
        'params = { fast = 10, slow = 30, qty = 0.01 }',
        'params = { fast = 10, slow = 30, qty = 0.01 }\ninitial_positions = "positions.csv"'))
    out = run_cli("replay", "--config", config, "--data", bar_store, "--to", "2022-01-01",
                  "--out", tmp_path / "run")
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["rejections"] == {}, report["rejections"]
    first = report["fills"][0]
    assert first["side"] == "SELL" and Decimal(first["qty"]) == Decimal("0.01")
