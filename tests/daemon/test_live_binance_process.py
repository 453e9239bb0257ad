"""`tapeloop run` trading on the fake Binance as a real child process: SIGKILLed
while an order placement is in flight (Binance has it, we never heard back),
then restarted: the order is found by its client id and never sent again."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from events.orders import OrderAccepted, OrderSubmitted
from replay.reader import journal_tail_runs, read_events
from tests.adapters.binance.live import until
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer

CONFIG = """\
[daemon]
control = "127.0.0.1:0"
snapshot_interval_s = 60.0

[[venues]]
name = "binance"
kind = "binance"
endpoints = "{url}"
taker_fee_bps = 10.0

[[instruments]]
venue = "binance"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.00001
min_notional = 5.0

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
    tail = journal_tail_runs(data, types=names)
    return [e for batch in read_events(data, types=names, extra_runs=tail) for e in batch]


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
    config.write_text(CONFIG.format(url=server.base_url))
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
