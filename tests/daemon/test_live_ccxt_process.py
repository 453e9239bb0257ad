"""`tapeloop run` with a `kind = "ccxt"` venue (ccxt's own binance class, its URLs
moved to the fake Binance) as a real child process: SIGKILLed while a placement is
in flight (the fake has it, we never heard back), restarted: the order is found by
its client id, never sent twice, and what the journal folds to is what the
exchange holds. Record-only needs no keys."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec

from events.instruments import Instrument
from events.market import BookSnapshot, Quote, Trade
from events.orders import Fill, OrderAccepted, OrderSubmitted
from tests.conftest import REPO, cli_env, tapeloop_cmd, until
from tests.daemon.test_live_binance_process import recorded
from tests.daemon.user_view import agreed_views, ask
from tests.fake_binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinanceServer

BTC = Instrument(venue="bn", symbol="BTC/USDT", base="BTC", quote="USDT",
                 tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
                 min_notional=Decimal(5))

CONFIG = """\
[daemon]
control = "127.0.0.1:0"
snapshot_interval_s = 60.0

[[venues]]
name = "bn"
kind = "ccxt"
exchange = "binance"
trade = {trade}
taker_fee_bps = 10.0
urls = {{ "*" = "{url}" }}

[[instruments]]
venue = "bn"
symbol = "BTC/USDT"
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
{strategy}"""

STRATEGY = """
[[strategies]]
id = "bid"
class = "tests.strategies_for_tests:OneBid"
venue = "bn"
symbols = ["BTC/USDT"]
"""


async def start(config: Path, data: Path, log: Path, *, keys: bool = True
                ) -> asyncio.subprocess.Process:
    env = cli_env()
    for key in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
        env.pop(key, None)
    if keys:
        env.update(BINANCE_API_KEY=DEFAULT_API_KEY, BINANCE_API_SECRET=DEFAULT_SECRET)
    return await asyncio.create_subprocess_exec(
        *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)


def fake_trades(server: FakeBinanceServer) -> Counter[str]:
    return Counter(str(t["id"]) for t in server.trades)


async def test_sigkill_with_a_placement_in_flight_then_restart_finds_it(
        tmp_path: Path) -> None:
    server = FakeBinanceServer(seed=5, tick_interval_s=0.05)
    await server.start()
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, trade="true", strategy=STRATEGY))
    try:
        server.delay_next(600, method="POST", path="/api/v3/order")  # taken, never answered
        server.reorder_user_events(1_000_000)  # its report held back too
        proc = await start(config, data, log)
        try:
            placed = await until(lambda: list(server.orders.values()), timeout=60,
                                 message="the order at the fake")
            cid = placed[0].client_order_id
            await until(lambda: any(e.client_order_id == cid
                                    for e in recorded(data, OrderSubmitted)),
                        message="OrderSubmitted journaled")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert not recorded(data, OrderAccepted), "the first run never heard back"
        server.clear_user_faults()
        proc = await start(config, data, log)
        try:
            accepted = await until(
                lambda: [e for e in recorded(data, OrderAccepted) if e.client_order_id == cid],
                timeout=60, message=f"{cid} found after the restart")
            assert accepted[0].venue_order_id == str(placed[0].order_id)
            await until(lambda: b'"ccxt.reconciled"' in log.read_bytes(), message="reconciled")
            assert server.post_count(cid) == 1, "sent once, never again"
            assert len(server.orders) == 1, "the strategy saw its order open: no second one"
            # the market trades through it: filled once, and what the journal folds
            # to is what the daemon shows (OneBid places nothing once it holds BTC)
            server.set_price("BTCUSDT", server.book("BTCUSDT")[0][0][0] - Decimal(2000))
            await until(lambda: sum(f.qty for f in recorded(data, Fill)
                                    if f.client_order_id == cid) == placed[0].orig_qty,
                        timeout=60, message="filled")
            fills = [f for f in recorded(data, Fill) if f.client_order_id == cid]
            assert Counter(f.trade_id for f in fills) == fake_trades(server), "fills once"
            orders, positions, book, folded = agreed_views(config, data, [BTC])
            assert orders == {c: (o.state, o.filled_qty) for c, o in book.orders.items()}
            assert orders[cid][0] == "filled" and positions == folded
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, log.read_text()[-3000:]
        assert DEFAULT_SECRET not in log.read_text()
    finally:
        await server.close()


async def test_record_only_needs_no_keys_and_records_market_data(tmp_path: Path) -> None:
    server = FakeBinanceServer(seed=9, tick_interval_s=0.02)
    await server.start()
    config, data, log = tmp_path / "rec.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, trade="false", strategy=""))
    try:
        proc = await start(config, data, log, keys=False)
        try:
            await until(lambda: len(recorded(data, Trade)) >= 20
                        and recorded(data, Quote) and recorded(data, BookSnapshot),
                        timeout=60, message="market data journaled")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, log.read_text()[-3000:]
        assert server.count("POST", "/api/v3/order") == 0
        trades = recorded(data, Trade)
        assert len({t.trade_id for t in trades}) == len(trades)
    finally:
        await server.close()


async def test_an_exchange_that_drops_client_ids_is_refused_in_one_line(
        tmp_path: Path) -> None:
    config, data, log = tmp_path / "k.toml", tmp_path / "data", tmp_path / "daemon.log"
    text = CONFIG.format(url="http://127.0.0.1:9", trade="true", strategy="")
    config.write_text(text.replace('exchange = "binance"',
                                   'exchange = "kraken"\nsandbox = false'))
    proc = await start(config, data, log)
    code = await asyncio.wait_for(proc.wait(), 60)
    out = log.read_text()
    assert code == 3, out[-3000:]
    assert "cannot trade through tapeloop" in out and "Traceback" not in out


async def test_refused_keys_exit_with_their_own_code(tmp_path: Path) -> None:
    server = FakeBinanceServer(seed=2, tick_interval_s=0.05)
    await server.start()
    config, data, log = tmp_path / "live.toml", tmp_path / "data", tmp_path / "daemon.log"
    config.write_text(CONFIG.format(url=server.base_url, trade="true", strategy=STRATEGY))
    env = {**cli_env(), "BINANCE_API_KEY": DEFAULT_API_KEY, "BINANCE_API_SECRET": "wrong"}
    try:
        proc = await asyncio.create_subprocess_exec(
            *tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
            stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
        code = await asyncio.wait_for(proc.wait(), 60)
    finally:
        await server.close()
    text = log.read_text()
    assert code == 5, text[-3000:]  # EXIT_AUTH: systemd's RestartPreventExitStatus
    assert "credentials refused" in text and b"daemon.ready" not in log.read_bytes()


PAPER = """
[[strategies]]
id = "buyer"
class = "tests.strategies_for_tests:Boom"
venue = "bn"
symbols = ["BTC/USDT"]
bar_interval = "1s"
paper = true
params = { after_bars = 1000000 }
"""


async def test_paper_on_a_ccxt_feed_keeps_trading_across_a_kill(tmp_path: Path) -> None:
    """A `paper = true` strategy on a record-only ccxt venue (no keys): its orders fill
    on the simulated twin from the exchange's market data, none reaches the exchange,
    and after a SIGKILL and a restart it trades on and the journal folds to what the
    daemon shows."""
    from daemon.strategies.runtime import paper_venue

    twin = paper_venue("bn")
    server = FakeBinanceServer(seed=11, tick_interval_s=0.02)
    await server.start()
    config, data, log = tmp_path / "paper.toml", tmp_path / "data", tmp_path / "daemon.log"
    # the twin's simulated account (a simulation parameter, valid on every kind)
    text = CONFIG.format(url=server.base_url, trade="false", strategy=PAPER)
    config.write_text(text.replace("taker_fee_bps = 10.0",
                                   "taker_fee_bps = 10.0\nbalances = { USDT = 10000.0 }"))

    def paper_fills() -> list[Fill]:
        return [f for f in recorded(data, Fill) if f.venue == twin]

    try:
        proc = await start(config, data, log, keys=False)
        try:
            await until(lambda: len(paper_fills()) >= 2, timeout=90, message="paper fills")
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        before = len(paper_fills())
        proc = await start(config, data, log, keys=False)
        try:
            await until(lambda: len(paper_fills()) > before, timeout=90,
                        message="paper fills after the restart")
            ask(config, data, "strategy", "stop", "buyer")  # so the views hold still
            orders, positions, book, folded = agreed_views(
                config, data, [msgspec.structs.replace(BTC, venue=twin)])
            assert orders == {c: (o.state, o.filled_qty) for c, o in book.orders.items()}
            assert positions == folded
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 30)
        assert code == 0, log.read_text()[-3000:]
        assert server.count("POST", "/api/v3/order") == 0, "paper orders stay paper"
        trades = [f.trade_id for f in paper_fills()]
        assert len(set(trades)) == len(trades), "no paper trade applied twice"
    finally:
        await server.close()
