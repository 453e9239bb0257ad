"""The control API (daemon.control), its metrics (daemon.metrics) and the
`tapeloop status|positions|orders|halt|resume` commands.

A real `ControlServer` on 127.0.0.1:0 (or a unix socket) over a small kernel
built from the real parts: an EventStore journal, the Bus, and `TradingNode`
on a simulated venue. The CLI runs as real child processes while the test's
event loop keeps serving (asyncio subprocesses, awaited).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.config import ControlAddress, load_config
from daemon.control import ControlServer
from daemon.control_files import load_control_token, read_control_file
from daemon.errors import UserError
from daemon.metrics import KernelMetrics, LatencyHistogram, RateMeter, Registry
from daemon.node import TradingNode
from daemon.trading.api import OrderRequest
from events.bus import Bus
from events.market import Trade
from events.state import BalanceChanged
from events.store import EventStore
from replay.clock import LiveClock
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.daemon.test_config import VALID

# -- a small kernel over the real node ------------------------------------------------------


class MiniKernel:
    """The parts of daemon.kernel.Kernel the control API reads (see KernelView)."""

    def __init__(self, tmp_path: Path) -> None:
        self.config_path = tmp_path / "test.toml"
        self.config_path.write_text(VALID)
        self.config = load_config(self.config_path, data_dir=tmp_path / "data")
        self.data_dir = Path(self.config.daemon.data_dir)
        self.store = EventStore.open_writer(self.data_dir)
        self.journal = self.store.open_journal()
        self.metrics = KernelMetrics()
        self.counts: Counter[str] = Counter()
        self.bus = Bus(next_seq=self.journal.next_seq, journal=self.journal.append)
        self.bus.subscribe_all(self._count)
        loop = asyncio.get_running_loop()
        self.node = TradingNode(self.config, self.bus, LiveClock(loop), replay=False)
        self.ready = False
        self.stopping = False
        self.started_monotonic = time.monotonic()
        self._strategies = {s.id: "starting" for s in self.config.strategies}

    def _count(self, event: Any) -> None:
        self.counts[type(event).__name__] += 1

    def start(self) -> None:
        self.node.start()
        self._strategies = dict.fromkeys(self._strategies, "running")
        self.ready = True

    def close(self) -> None:
        self.node.stop()
        self.journal.close()
        self.store.close()

    def venue_states(self) -> dict[str, dict[str, Any]]:
        return {"sim": {"status": "connected", "reconnects": 2}}

    def strategy_states(self) -> dict[str, str]:
        return dict(self._strategies)

    def stop_strategy(self, strategy_id: str) -> None:
        if self._strategies[strategy_id] != "running":
            raise ValueError(f"strategy {strategy_id!r} is not running")
        self._strategies[strategy_id] = "stopped"

    def start_strategy(self, strategy_id: str) -> None:
        if self._strategies[strategy_id] == "running":
            raise ValueError(f"strategy {strategy_id!r} is already running")
        self._strategies[strategy_id] = "running"

    # -- trading ---------------------------------------------------------------------

    def trade(self, price: float) -> None:
        now = time.time_ns()
        self.bus.publish(Trade(ts_event=now, ts_recv=now, venue="sim", symbol="BTCUSDT",
                               price=price, size=1.0))

    def submit(self, qty: str, price: str | None = None) -> str:
        return self.node.oms.submit("sma", OrderRequest(
            venue="sim", symbol="BTCUSDT", side="BUY", qty=Decimal(qty),
            order_type="MARKET" if price is None else "LIMIT",
            price=None if price is None else Decimal(price)))

    def trade_a_little(self) -> None:
        """A balance, trades, a filled market buy, a resting limit, a risk refusal."""
        now = time.time_ns()
        self.bus.publish(BalanceChanged(ts_event=now, ts_recv=now, venue="sim", currency="BNB",
                                        total=Decimal(1), free=Decimal(1), reason="test"))
        self.trade(50000.0)
        self.submit("0.5")
        self.trade(50010.0)  # fills the market order (fill model "next")
        self.submit("0.1", "48000")  # rests: below the market, inside the price band
        self.trade(50010.0)  # the venue accepts it
        self.submit("11")  # > max_order_qty: rejected
        t0 = time.perf_counter()
        self.journal.flush(sync=True)
        self.metrics.journal_flush.observe(time.perf_counter() - t0)
        self.metrics.bus_dispatch.observe(0.00002)


@asynccontextmanager
async def serving(tmp_path: Path, *, ready: bool = True, address: ControlAddress | None = None
                  ) -> AsyncIterator[tuple[MiniKernel, ControlServer, str, str]]:
    kernel = MiniKernel(tmp_path)
    token = load_control_token(kernel.data_dir)
    assert token is not None
    server = ControlServer(kernel, address or ControlAddress(host="127.0.0.1", port=0), token)
    try:
        url = await server.start()
        if ready:
            kernel.start()
        yield kernel, server, url, token
    finally:
        await server.close()
        kernel.close()


async def get(url: str, path: str, token: str | None = None, *, method: str = "GET",
              body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, \
            http.request(method, url + path, headers=headers, json=body) as r:
        text = await r.text()
        if r.content_type == "application/json":
            return r.status, json.loads(text)
        return r.status, text


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


def parse_prometheus(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every non-comment line is `name{labels} value`; every sample's family has
    a `# TYPE` above it."""
    assert text.endswith("\n")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m.groups()
        labels = _LABEL.findall(labels_text or "")
        assert ",".join(f'{k}="{v}"' for k, v in labels) == (labels_text or ""), line
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name}: no # TYPE line"
        samples[(name, frozenset(labels))] = float(value)
    return samples


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# -- the API --------------------------------------------------------------------------------


async def test_health_is_503_until_ready_then_200(tmp_path: Path) -> None:
    async with serving(tmp_path, ready=False) as (kernel, _server, url, _token):
        status, body = await get(url, "/health")
        assert status == 503
        assert (body["status"], body["ready"], body["pid"]) == ("starting", False, os.getpid())
        kernel.start()
        status, body = await get(url, "/health")
        assert status == 200
        assert body["status"] == "ok" and body["ready"] is True
        assert body["trading_state"] == "active"
        assert body["venues"] == {"sim": "connected"}
        assert body["uptime_s"] >= 0
        kernel.stopping = True
        status, body = await get(url, "/health")
        assert (status, body["status"], body["ready"]) == (503, "stopping", False)


async def test_metrics_are_prometheus_text_built_from_the_kernel(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, _token):
        kernel.trade_a_little()
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
        written, synced = kernel.journal.written_seq, kernel.journal.synced_seq
        equity = kernel.node.portfolio.equity()
    s = parse_prometheus(text)
    assert sample(s, "tapeloop_events_total", type="Trade") == 3
    assert sample(s, "tapeloop_events_total", type="Fill") == 1
    assert sample(s, "tapeloop_position", venue="sim", symbol="BTCUSDT", strategy="sma") == 0.5
    assert sample(s, "tapeloop_orders", state="filled") == 1
    assert sample(s, "tapeloop_orders", state="accepted") == 1
    assert sample(s, "tapeloop_orders", state="expired") == 0
    assert sample(s, "tapeloop_fills_total") == 1
    assert sample(s, "tapeloop_rejections_total", check="max_order_qty") == 1
    assert sample(s, "tapeloop_pnl", strategy="sma", kind="unrealized") == 0
    assert sample(s, "tapeloop_pnl", strategy="sma", kind="realized") == 0
    assert sample(s, "tapeloop_equity") == float(equity) > 0
    assert sample(s, "tapeloop_unvalued_balance", venue="sim", currency="BNB") == 1
    assert sample(s, "tapeloop_trading_state", state="active") == 1
    assert sample(s, "tapeloop_trading_state", state="halted") == 0
    assert sample(s, "tapeloop_venue_up", venue="sim") == 1
    assert sample(s, "tapeloop_venue_reconnects_total", venue="sim") == 2
    assert sample(s, "tapeloop_strategy_up", strategy="sma") == 1
    assert sample(s, "tapeloop_journal_written_seq") == written > 0
    assert sample(s, "tapeloop_journal_synced_seq") == synced
    assert sample(s, "tapeloop_journal_backlog_bytes") == 0
    assert sample(s, "tapeloop_events_per_second") >= 0
    assert sample(s, "tapeloop_journal_flush_seconds_count") == 1
    assert sample(s, "tapeloop_journal_flush_seconds_bucket", le="+Inf") == 1
    assert sample(s, "tapeloop_bus_dispatch_seconds_bucket", le="2.5e-05") == 1
    assert sample(s, "tapeloop_bus_dispatch_seconds_bucket", le="1e-05") == 0
    assert sample(s, "process_resident_memory_bytes") > 1_000_000
    assert abs(sample(s, "process_start_time_seconds") - time.time()) < 3600


async def test_token_endpoints_refuse_a_missing_or_wrong_token(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, token):
        kernel.trade_a_little()
        for path, method in [("/positions", "GET"), ("/orders", "GET"), ("/status", "GET"),
                             ("/halt", "POST"), ("/resume", "POST"),
                             ("/strategies/sma/stop", "POST")]:
            for wrong in (None, "nope", token + "x"):
                status, body = await get(url, path, wrong, method=method)
                assert status == 401, (path, wrong)
                assert "token" in body["error"]
        assert kernel.node.risk.state == "active"
        assert kernel.strategy_states() == {"sma": "running"}

        status, body = await get(url, "/positions", token)
        assert status == 200
        [pos] = body["positions"]
        assert pos | {"mark": None} == {
            "venue": "sim", "symbol": "BTCUSDT", "strategy_id": "sma", "qty": "0.5",
            "avg_price": "50010.00", "mark": None, "unrealized_pnl": "0", "realized_pnl": "0",
            "fees": "0"}
        assert Decimal(body["equity"]) == kernel.node.portfolio.equity()
        # the BNB balance has no price here: left out of equity and listed
        assert body["account_currency"] == "USDT"
        assert [(u["currency"], u["balance"]) for u in body["unvalued"]] == [("BNB", "1")]

        status, body = await get(url, "/orders", token)
        assert status == 200
        [order] = body["orders"]
        assert (order["state"], order["qty"], order["price"], order["order_type"]) == (
            "accepted", "0.1", "48000", "LIMIT")
        status, body = await get(url, "/orders?all=1", token)
        assert sorted(o["state"] for o in body["orders"]) == ["accepted", "filled"]

        status, body = await get(url, "/status", token)
        assert status == 200
        assert (body["open_orders"], body["fills"]) == (1, 1)
        assert body["strategies"] == {"sma": "running"}
        assert body["pnl"]["sma"]["pnl"] == "0"
        assert body["account_currency"] == "USDT" and body["unvalued"][0]["currency"] == "BNB"


async def test_halt_resume_and_strategy_control(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, token):
        status, body = await get(url, "/halt", token, method="POST", body={"reason": "lunch"})
        assert (status, body) == (200, {"state": "halted", "reason": "lunch"})
        assert kernel.node.risk.state == "halted"
        status, body = await get(url, "/halt", token, method="POST", body={"reason": 3})
        assert status == 400
        status, body = await get(url, "/resume", token, method="POST")
        assert (status, body["state"]) == (200, "active")
        assert kernel.node.risk.state == "active"

        status, body = await get(url, "/strategies/sma/stop", token, method="POST")
        assert (status, body) == (200, {"strategy_id": "sma", "status": "stopped"})
        status, body = await get(url, "/strategies/sma/stop", token, method="POST")
        assert status == 409 and "not running" in body["error"]
        status, body = await get(url, "/strategies/nope/start", token, method="POST")
        assert status == 404
        status, body = await get(url, "/strategies/sma/start", token, method="POST")
        assert (status, body["status"]) == (200, "running")
        status, body = await get(url, "/strategies", token)
        assert body == {"strategies": {"sma": "running"}}


async def test_a_unix_socket_0600_and_the_control_file(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    async with serving(tmp_path, address=ControlAddress(path=path)) as (kernel, _s, url, token):
        assert url == f"unix://{path}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        control = kernel.data_dir / "control.json"
        assert read_control_file(kernel.data_dir) == {"url": url, "pid": os.getpid()}
        assert stat.S_IMODE(control.stat().st_mode) == 0o644
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http:
            async with http.get("http://localhost/health") as r:
                assert r.status == 200
            async with http.post("http://localhost/halt",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
        assert kernel.node.risk.state == "halted"
    assert not path.exists()
    assert not control.exists()


async def test_a_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    async with serving(tmp_path, address=ControlAddress(path=path)) as (_k, _s, url, _t):
        assert url == f"unix://{path}"
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http:
            async with http.get("http://localhost/health") as r:
                assert r.status == 200


# -- the CLI, as real child processes -------------------------------------------------------


async def tapeloop(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *tapeloop_cmd(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=cli_env(), cwd=REPO)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_status_positions_orders_halt_resume(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, url, _token):
        kernel.trade_a_little()
        where = ["--config", str(kernel.config_path), "--data", str(kernel.data_dir)]

        code, out, err = await tapeloop("status", *where)
        assert (code, err) == (0, ""), err
        assert re.search(r"^url\s+" + re.escape(url) + "$", out, re.M), out
        assert re.search(r"^status\s+ok \(ready\)$", out, re.M), out
        assert re.search(r"^trading\s+active$", out, re.M), out
        assert re.search(r"^sim\s+connected\s+2$", out, re.M), out
        assert re.search(r"^sma\s+running\s+0\s+0\s+0\s+0$", out, re.M), out

        code, out, err = await tapeloop("positions", *where)
        assert code == 0, err
        assert re.search(r"^sim\s+BTCUSDT\s+sma\s+0\.5\s+50010\.00\s", out, re.M), out

        code, out, err = await tapeloop("orders", *where)
        assert code == 0, err
        assert re.search(r"^sma-2\s+sma\s+sim\s+BTCUSDT\s+BUY\s+LIMIT\s+0\.1\s+48000\s+0\s+"
                         r"accepted$", out, re.M), out
        code, out, err = await tapeloop("orders", "--all", "--json", *where)
        assert code == 0, err
        assert len(json.loads(out)["orders"]) == 2

        code, out, err = await tapeloop("halt", "--reason", "fat finger", *where)
        assert (code, out.strip()) == (0, "trading halted: fat finger"), err
        assert kernel.node.risk.state == "halted"
        code, out, err = await tapeloop("resume", *where)
        assert (code, out.strip()) == (0, "trading active: resumed by operator (control API)")
        assert kernel.node.risk.state == "active"


async def test_cli_with_no_daemon_says_so_in_one_line(tmp_path: Path) -> None:
    # a bound socket that does not listen: connections to it are refused
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = tmp_path / "test.toml"
        config.write_text(VALID.replace('control = "127.0.0.1:8765"',
                                        f'control = "127.0.0.1:{port}"'))
        for command in ("status", "halt"):
            code, out, err = await tapeloop(command, "--config", str(config),
                                            "--data", str(tmp_path / "data"))
            assert (code, out) == (1, "")
            assert err == (f"tapeloop {command}: no tapeloop daemon answers at "
                           f"http://127.0.0.1:{port} (is it running?)\n")
    assert not (tmp_path / "data" / "control.token").exists()  # a client creates no token


async def test_cli_refuses_a_token_file_others_can_read(tmp_path: Path) -> None:
    async with serving(tmp_path) as (kernel, _server, _url, _token):
        (kernel.data_dir / "control.token").chmod(0o644)
        code, out, err = await tapeloop("status", "--config", str(kernel.config_path),
                                        "--data", str(kernel.data_dir))
        assert code == 1 and out == ""
        assert len(err.splitlines()) == 1 and "readable by group or others" in err, err


# -- the token ------------------------------------------------------------------------------


def test_the_token_file_is_created_0600_and_a_0644_one_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert load_control_token(data, env={}, create=False) is None
    token = load_control_token(data, env={})
    path = data / "control.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token and len(token) >= 40
    assert load_control_token(data, env={}) == token  # read back, not replaced
    path.chmod(0o644)
    with pytest.raises(UserError, match="readable by group or others.*chmod 600"):
        load_control_token(data, env={})
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "control_token").write_text("from-systemd\n")
    assert load_control_token(data, env={"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"


# -- the registry ---------------------------------------------------------------------------


def test_render_escapes_and_histograms_are_cumulative() -> None:
    reg = Registry()
    c = reg.counter("x_total", "a help\nline with \\", ["path"])
    c.inc(path='a"b\\c\nd')
    c.inc(2, path='a"b\\c\nd')
    reg.gauge("g", "a gauge").set(Decimal("1.5"))
    h = reg.histogram("lat_seconds", "latency", ["op"], buckets=[0.1, 1.0])
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v, op="x")
    text = reg.render()
    assert "# HELP x_total a help\\nline with \\\\\n" in text
    assert 'x_total{path="a\\"b\\\\c\\nd"} 3.0\n' in text  # the library writes floats
    s = parse_prometheus(text)
    assert sample(s, "g") == 1.5
    assert [sample(s, "lat_seconds_bucket", op="x", le=le) for le in ("0.1", "1", "+Inf")] == [
        2, 3, 4]
    assert sample(s, "lat_seconds_count", op="x") == 4
    assert sample(s, "lat_seconds_sum", op="x") == pytest.approx(3.65)
    with pytest.raises(ValueError):
        c.inc(-1, path="p")
    with pytest.raises(ValueError):
        c.inc(other="p")
    with pytest.raises(ValueError):
        reg.gauge("g", "twice")
    with pytest.raises(ValueError):
        LatencyHistogram("bad name")


def test_rate_meter_uses_a_sliding_window() -> None:
    meter = RateMeter(0, now=0.0, window_s=10.0)
    assert meter.rate(100, now=1.0) == 100.0
    assert meter.rate(1100, now=11.0) == 100.0
    assert meter.rate(1200, now=21.0) == pytest.approx(10.0)  # (1200 - 1100) / (21 - 11)
