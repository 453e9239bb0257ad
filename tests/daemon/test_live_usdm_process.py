"""`tapeloop run` trading perpetuals on the fake Binance USD-M as a real child
process, SIGKILLed twice:

1. while an order placement is in flight (the fake has it, we never heard
   back): the restart finds it by client id and never sends it again;
2. after a fill and a funding payment, with another funding paid while the
   daemon is down: the next start records the missed one, and only it.
At the end the fills recorded add up to the fake's position, the funding
recorded equals the fake's income history, each once; and a hedge-mode
account is refused with one line and exit 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from decimal import Decimal
from pathlib import Path

from events.orders import Fill, OrderAccepted, OrderSubmitted
from events.perp import FundingPayment
from tests.conftest import REPO, cli_env, tapeloop_cmd, until
from tests.daemon.test_live_binance_process import recorded
from tests.fake_binance.common import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fake_binance.usdm import FakeUsdmServer

D = Decimal
HOUR_MS = 3_600_000

CONFIG = """\
[daemon]
control = "127.0.0.1:0"
snapshot_interval_s = 60.0

[[venues]]
name = "usdm"
kind = "binance-usdm"
endpoints = "{url}"
streams = ["bookTicker", "markPrice@1s"]
credentials = "USDM"
taker_fee_bps = 5.0

[[instruments]]
venue = "usdm"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
kind = "perpetual"
tick_size = 0.1
step_size = 0.001
min_notional = 100.0
leverage = 5

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
venue = "usdm"
symbols = ["BTCUSDT"]
params = {{ qty = 0.002, below = 0.01 }}
"""


async def start(config: Path, data: Path, log: Path) -> asyncio.subprocess.Process:
    env = {**cli_env(), "USDM_API_KEY": DEFAULT_API_KEY, "USDM_API_SECRET": DEFAULT_SECRET}
    env.pop("TAPELOOP_BINANCE_USDM_ENDPOINTS", None)
    return await asyncio.create_subprocess_exec(
        *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)


async def kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def ticker(server: FakeUsdmServer) -> None:
    while True:
        server.set_price("BTCUSDT", server.account.price["BTCUSDT"])
        await asyncio.sleep(0.1)


async def test_kill_restart_orders_fills_and_funding_once(tmp_path: Path) -> None:
    server = FakeUsdmServer()
    await server.start()
    tick = asyncio.get_running_loop().create_task(ticker(server))
    try:
        await _run(server, tmp_path)
    finally:
        tick.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tick
        await server.close()


async def _run(server: FakeUsdmServer, tmp_path: Path) -> None:
    config, data, log = tmp_path / "usdm.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base))
    server.delay_next(600)  # the fake takes the order, its answer never comes back
    server.lose_user_events(1_000_000)  # nor the user stream's report
    proc = await start(config, data, log)
    try:
        placed = await until(lambda: list(server.account.by_cid), timeout=60,
                             message="the order at the fake")
        cid = placed[0][1]
        await until(lambda: any(e.client_order_id == cid
                                for e in recorded(data, OrderSubmitted)),
                    message="OrderSubmitted journaled")
    finally:
        await kill(proc)
    assert not recorded(data, OrderAccepted), "the first run never heard back"
    server.clear_faults()
    proc = await start(config, data, log)
    try:
        await until(lambda: [e for e in recorded(data, OrderAccepted)
                             if e.client_order_id == cid], timeout=60,
                    message=f"{cid} found after the restart")
        assert server.posts[cid] == 1, "sent once, never again"
        server.fill_resting(cid, "BTCUSDT", D("0.002"))
        await until(lambda: recorded(data, Fill), message="the fill")
        funding_at = server.now_ms() // HOUR_MS * HOUR_MS
        server.pay_funding("BTCUSDT", D("0.0001"), funding_at - HOUR_MS)
        await until(lambda: recorded(data, FundingPayment), message="the live funding")
    finally:
        await kill(proc)
    server.pay_funding("BTCUSDT", D("-0.0003"), funding_at)  # while down
    proc = await start(config, data, log)
    try:
        await until(lambda: len(recorded(data, FundingPayment)) >= 2, timeout=60,
                    message="the missed funding")
        await until(lambda: log.read_bytes().count(b'"binance.reconciled"') >= 3,
                    message="the third start reconciled")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, log.read_text()[-3000:]
    fills = recorded(data, Fill)
    assert len({f.trade_id for f in fills}) == len(fills)
    assert sum(f.qty if f.side == "BUY" else -f.qty for f in fills) \
        == server.account.qty("BTCUSDT")
    paid = recorded(data, FundingPayment)
    assert sorted(p.amount for p in paid) == sorted(D(r["income"]) for r in server.account.income)
    assert DEFAULT_SECRET not in log.read_text()


async def test_hedge_mode_account_is_refused_with_one_line(tmp_path: Path) -> None:
    server = FakeUsdmServer()
    server.account.dual = True
    await server.start()
    try:
        config, data, log = tmp_path / "usdm.toml", tmp_path / "data", tmp_path / "out.log"
        config.write_text(CONFIG.format(url=server.base))
        proc = await start(config, data, log)
        code = await asyncio.wait_for(proc.wait(), 60)
    finally:
        await server.close()
    assert code == 3, log.read_text()[-2000:]
    assert "hedge mode" in log.read_text()
    assert server.requests[("POST", "/fapi/v1/order")] == 0
