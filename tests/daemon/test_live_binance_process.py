"""`tapeloop run` trading on the fake Binance as a real child process: SIGKILLed
while an order placement is in flight (Binance has it, we never heard back),
then restarted: the order is found by its client id and never sent again."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from events.orders import OrderAccepted, OrderSubmitted
from replay.reader import read_events
from tests.adapters.binance.live import until
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer

INSTRUMENT = """\
[[instruments]]
venue = "binance"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.00001
"""

CONFIG = """\
[daemon]
control = "127.0.0.1:0"
snapshot_interval_s = 60.0

[[venues]]
name = "binance"
kind = "binance"
endpoints = "{url}"
taker_fee_bps = 10.0

{instrument}min_notional = 5.0

[risk]
max_order_qty = 0.01
max_order_notional = 10_000.0
max_position_qty = 0.05
daily_loss_limit = 1_000.0
max_orders_per_s = 5
price_band_pct = 5.0

[[strategies]]
id = "bid"
class = "tests.strategies_for_tests:OneBid"
venue = "binance"
symbols = ["BTCUSDT"]
"""


def recorded(data: Path, cls: type) -> list:
    """Events of `cls` in the store and in the journal (a running daemon's tail too)."""
    names = [cls.__name__]
    if not (data / "store.json").exists() and not (data / "journal").exists():
        return []  # the daemon has not created it yet
    # journal=True reads the journal and the parts consistently while a roll commits
    # (a tail taken apart from the parts showed a rolled event twice)
    return [e for batch in read_events(data, types=names, journal=True) for e in batch]


async def start(config: Path, data: Path, log: Path) -> asyncio.subprocess.Process:
    env = {**cli_env(), "BINANCE_API_KEY": DEFAULT_API_KEY,
           "BINANCE_API_SECRET": DEFAULT_SECRET}
    env.pop("TAPELOOP_BINANCE_ENDPOINTS", None)
    return await asyncio.create_subprocess_exec(
        *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)


async def test_sigkill_with_an_order_in_flight_then_restart_finds_it(tmp_path: Path) -> None:
    server = FakeBinanceServer(seed=5, tick_interval_s=0.05)
    await server.start()
    try:
        await _kill_and_restart(server, tmp_path)
    finally:
        await server.close()


async def _kill_and_restart(server: FakeBinanceServer, tmp_path: Path) -> None:
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, instrument=INSTRUMENT))
    # Binance takes the order, but neither its answer nor the user stream's
    # report comes back to this run.
    server.delay_next(600, method="POST", path="/api/v3/order")
    server.reorder_user_events(1_000_000)  # held back (until the restart's resubscription)
    proc = await start(config, data, log)
    try:
        placed = await until(lambda: list(server.orders.values()), timeout=60,
                             message="the order at Binance")
        cid = placed[0].client_order_id
        await until(lambda: any(e.client_order_id == cid for e in recorded(data, OrderSubmitted)),
                    message="OrderSubmitted journaled")
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert not recorded(data, OrderAccepted), "the first run never heard back"
    proc = await start(config, data, log)
    try:
        accepted = await until(
            lambda: [e for e in recorded(data, OrderAccepted) if e.client_order_id == cid],
            timeout=60, message=f"{cid} found at Binance after the restart")
        assert accepted[0].venue_order_id == str(placed[0].order_id)
        await until(lambda: b'"binance.reconciled"' in log.read_bytes(), message="reconciled")
        assert server.post_count(cid) == 1, "sent once, never again"
        assert server.count("GET", "/api/v3/order") >= 1, "looked up by client order id"
        assert len(server.orders) == 1, "the strategy saw its order open: no second one"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert DEFAULT_SECRET not in text, "the secret never reaches a log line"
    print(f"restart found {cid} (venue order {accepted[0].venue_order_id})", file=sys.stderr)


RECORD = """\
[daemon]
control = "127.0.0.1:0"

[journal]
fsync = "never"

[[venues]]
name = "binance"
kind = "binance"
endpoints = "{url}"
trade = false

{instrument}
[risk]
max_order_qty = 1.0
max_order_notional = 1.0
max_position_qty = 1.0
daily_loss_limit = 1.0
max_orders_per_s = 1
price_band_pct = 1.0
"""


async def test_record_only_journals_market_data_into_parquet_without_keys(
        tmp_path: Path) -> None:
    from events.market import BookDelta, BookSnapshot, Quote, Trade

    server = FakeBinanceServer(seed=9, tick_interval_s=0.02)
    await server.start()
    config, data, log = tmp_path / "record.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(RECORD.format(url=server.base_url, instrument=INSTRUMENT))
    env = cli_env()
    for key in ("BINANCE_API_KEY", "BINANCE_API_SECRET", "TAPELOOP_BINANCE_ENDPOINTS"):
        env.pop(key, None)
    proc = await asyncio.create_subprocess_exec(
        *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
    try:
        await until(lambda: len(recorded(data, BookDelta)) >= 50, timeout=60,
                    message="book updates journaled")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    users = list(server.user_connections)
    await server.close()
    assert code == 0, log.read_text()[-3000:]
    parts = {p.parent.name for p in (data / "events").rglob("*.parquet")}
    assert {"type=Trade", "type=Quote", "type=BookDelta", "type=BookSnapshot"} <= parts, parts
    snapshot = recorded(data, BookSnapshot)[0]
    deltas = [d for d in recorded(data, BookDelta) if d.seq > snapshot.seq]
    assert deltas[0].first_update_id <= snapshot.last_update_id + 1  # the book is rebuildable
    assert recorded(data, Trade) and recorded(data, Quote)
    assert not users and server.count("POST", "/api/v3/order") == 0


async def test_refused_credentials_exit_with_their_own_code(tmp_path: Path) -> None:
    server = FakeBinanceServer(seed=2, tick_interval_s=0.05)
    await server.start()
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, instrument=INSTRUMENT))
    env = {**cli_env(), "BINANCE_API_KEY": DEFAULT_API_KEY, "BINANCE_API_SECRET": "wrong"}
    env.pop("TAPELOOP_BINANCE_ENDPOINTS", None)
    try:
        proc = await asyncio.create_subprocess_exec(
            *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
            stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
        code = await asyncio.wait_for(proc.wait(), 60)
    finally:
        await server.close()
    text = log.read_text()
    assert code == 5, text[-3000:]  # EXIT_AUTH: systemd's RestartPreventExitStatus
    assert "credentials refused" in text and "wrong" not in text.replace('"wrong', "")
    assert b"daemon.ready" not in log.read_bytes()  # strategies never started
