"""Restart to READY with ~1 M events journaled today (target < 2 s, with snapshots).

Builds a data directory the way a day of paper trading leaves it: the bundled
Binance sample (trades, quotes, book deltas) looped with its timestamps moved
to the last hour, an order cycle every `ORDER_EVERY` market events
(`OrderSubmitted`, `OrderAccepted`, `Fill`, the portfolio's `PositionChanged`,
`BalanceChanged`s) and a portfolio `Snapshot` every `SNAPSHOT_EVERY` events, as
the kernel's snapshot timer publishes them. Everything goes through a real bus
into the real journal, and is rolled into Parquet (the state after a graceful
stop, or after the first start that follows a crash).

Then `tapeloop run` (paper, the sample venue) is started on it several times:
wall time from exec to `READY=1` on a notify socket, then SIGTERM. The split
comes from the daemon's own log: `daemon.opened` `open_ms` (lock, journal
recovery), `state.recovered` `ms` (the fold), `daemon.ready` `ready_s` (since
the kernel was built); `startup_s` = exec to READY minus `ready_s`
(interpreter, imports, config). The same on an empty data directory gives the
fixed cost, and one start on the same events left unrolled in the journal (a
crash before any background roll) shows what rolling at start costs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec

from bench.common import REPO, emit

N_EVENTS = 1_000_000
ORDER_EVERY = 500  # market events between two order cycles
SNAPSHOT_EVERY = 100_000
ROUNDS = 5
TARGET_S = 2.0
SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"


# -- building the data directory -------------------------------------------------------


def build_store(root: Path, n_events: int) -> int:
    """Journal ~n_events of today into `root` (left unrolled); returns the count."""
    from adapters.binance.stream import read_recording
    from daemon.trading.portfolio import Portfolio
    from events.bus import Bus
    from events.instruments import Instrument
    from events.journal import JournalPolicy
    from events.market import Trade
    from events.orders import Fill, OrderAccepted, OrderSubmitted
    from events.state import BalanceChanged
    from events.store import EventStore

    sample = [ev for _, ev in read_recording(SAMPLE, "binance", "BTCUSDT")]
    sample.sort(key=lambda e: e.ts_recv)
    first, span = sample[0].ts_recv, sample[-1].ts_recv - sample[0].ts_recv + 1_000_000
    passes = -(-n_events // len(sample))
    start = time.time_ns() - passes * span - 60 * 1_000_000_000  # ends a minute ago
    inst = Instrument(venue="binance", symbol="BTCUSDT", base="BTC", quote="USDT",
                      tick_size=Decimal("0.1"), step_size=Decimal("0.001"))

    store = EventStore.open_writer(root)
    journal = store.open_journal(JournalPolicy(fsync="never"))
    bus = Bus(next_seq=journal.next_seq, journal=journal.append)
    portfolio = Portfolio(bus.publish, time.time_ns, {inst.key: inst})
    portfolio.subscribe(bus)
    usdt, btc, qty = Decimal(100_000), Decimal(0), Decimal("0.010")
    replace = msgspec.structs.replace
    n = orders = 0
    last_price = Decimal(0)
    for p in range(passes):
        offset = start - first + p * span
        suffix = f"-{p}" if p else ""
        for ev in sample:
            ts = ev.ts_recv + offset
            if type(ev) is Trade:
                ev = replace(ev, ts_event=ev.ts_event + offset, ts_recv=ts,
                             trade_id=ev.trade_id + suffix)
                last_price = Decimal(str(ev.price)).quantize(inst.tick_size)
            else:
                ev = replace(ev, ts_event=ev.ts_event + offset, ts_recv=ts)
            bus.publish(ev)
            n += 1
            if n % ORDER_EVERY == 0 and last_price:
                orders += 1
                side = "BUY" if btc == 0 else "SELL"
                cid = f"sma-{orders}"
                common = dict(ts_event=ts, ts_recv=ts, venue="binance", symbol="BTCUSDT",
                              strategy_id="sma", client_order_id=cid)
                bus.publish(OrderSubmitted(**common, side=side, order_type="MARKET", qty=qty))
                bus.publish(OrderAccepted(**common, venue_order_id=str(orders)))
                fee = (qty * last_price * Decimal("0.0004")).quantize(Decimal("1e-8"))
                bus.publish(Fill(**common, trade_id=f"f{orders}", side=side, qty=qty,
                                 price=last_price, fee=fee, fee_currency="USDT",
                                 liquidity="TAKER"))
                sign = 1 if side == "BUY" else -1
                btc += sign * qty
                usdt -= sign * qty * last_price + fee
                for cur, total in (("USDT", usdt), ("BTC", btc)):
                    bus.publish(BalanceChanged(ts_event=ts, ts_recv=ts, venue="binance",
                                               currency=cur, total=total, free=total))
            if n % SNAPSHOT_EVERY == 0:
                bus.publish(portfolio.snapshot())
            if n >= n_events:
                break
        if n >= n_events:
            break
    bus.publish(portfolio.snapshot())
    journal.close()
    total = journal.written_seq
    store.close()
    return total


def roll_all(root: Path) -> None:
    from events.store import EventStore

    EventStore.open_writer(root).close()  # rolls every journal segment into Parquet


# -- timing a start ----------------------------------------------------------------------


def write_config(tmp: Path) -> Path:
    text = (REPO / "configs" / "paper.toml").read_text()
    text = text.replace('file = "samples/', f'file = "{SAMPLE.parent}/')
    text = text.replace('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"')
    path = tmp / "paper.toml"
    path.write_text(text)
    return path


def log_field(log: Path, event: str, field: str) -> float | None:
    needle = f'"event":"{event}"'.encode()
    for line in log.read_bytes().splitlines():
        if needle in line:
            return float(json.loads(line)[field])
    return None


def start_to_ready(config: Path, data: Path, tmp: Path, n: int) -> dict[str, float | None]:
    """One start: exec -> READY=1 (seconds), then SIGTERM; figures from the log."""
    path = tmp / f"notify-{n}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    log = tmp / f"run-{n}.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(path),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "daemon.cli", "run", "--config", str(config), "--data",
           str(data)]
    try:
        with log.open("wb") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            deadline = t0 + 120
            ready_s = None
            while ready_s is None:
                sock.settimeout(max(0.001, deadline - time.perf_counter()))
                try:
                    msg = sock.recv(65536)
                except TimeoutError:
                    proc.kill()
                    raise RuntimeError(f"no READY=1 within 120 s; see {log}") from None
                if b"READY=1" in msg.split(b"\n"):
                    ready_s = time.perf_counter() - t0
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            stop_s = time.perf_counter() - t0 - ready_s
        if code != 0:
            raise RuntimeError(f"daemon exited with {code}; see {log}")
    finally:
        sock.close()
        path.unlink(missing_ok=True)
    kernel_s = log_field(log, "daemon.ready", "ready_s") or 0.0
    return {"ready_s": ready_s, "startup_s": ready_s - kernel_s,
            "open_ms": log_field(log, "daemon.opened", "open_ms"),
            "recover_ms": log_field(log, "state.recovered", "ms"),
            "folded": log_field(log, "state.recovered", "folded"), "stop_s": stop_s}


def summary(runs: list[dict[str, float | None]]) -> dict[str, float | None]:
    def med(key: str) -> float | None:
        got = [r[key] for r in runs if r[key] is not None]
        return round(statistics.median(got), 3) if got else None  # type: ignore[type-var]

    ready = sorted(float(r["ready_s"] or 0) for r in runs)
    return {"best_s": round(ready[0], 3), "median_s": round(statistics.median(ready), 3),
            "startup_s": med("startup_s"), "open_ms": med("open_ms"),
            "recover_ms": med("recover_ms"), "folded_after_snapshot": med("folded"),
            "stop_s": med("stop_s"), "rounds": len(runs)}


def main() -> int:
    from daemon.logging import configure_logging

    configure_logging("warning", stream=sys.stderr)  # stdout carries the JSON figures
    with tempfile.TemporaryDirectory(prefix="tapeloop-bench-restart-") as tmpdir:
        tmp = Path(tmpdir)
        config = write_config(tmp)
        empty = [start_to_ready(config, tmp / "empty", tmp, i) for i in range(3)]
        emit("restart_to_ready_empty", events=0, **summary(empty))

        data, unrolled = tmp / "data", tmp / "unrolled"
        t0 = time.perf_counter()
        n = build_store(data, N_EVENTS)
        build_s = time.perf_counter() - t0
        shutil.copytree(data, unrolled)
        t0 = time.perf_counter()
        roll_all(data)
        roll_s = time.perf_counter() - t0
        runs = [start_to_ready(config, data, tmp, 10 + i) for i in range(ROUNDS)]
        emit("restart_to_ready", events=n, **summary(runs), target_s=TARGET_S,
             build_s=round(build_s, 1), roll_s=round(roll_s, 1))

        crash = start_to_ready(config, unrolled, tmp, 99)
        emit("restart_to_ready_unrolled", events=n, **summary([crash]), target_s=TARGET_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
