"""Crash recovery of the real daemon: `tapeloop run` in paper mode under a
stand-in for systemd ($NOTIFY_SOCKET), SIGKILLed at seeded random moments after
each READY=1 and restarted, then stopped with SIGTERM. The store it leaves must
be what event sourcing promises: a gap-free seq, client order ids never reused,
positions equal to the fold of every fill, nothing torn, and one writer only.

A crash is killed like systemd does it (`KillMode=control-group`, the shipped
unit's default): the daemon and its children (a background roller turning a
journal segment into Parquet) together. A `kill -9` of the daemon's pid alone
leaves the roller running while the next start opens the store: that case has
its own test below.

The seed is printed (shown by pytest on failure); rerun a failure with
TAPELOOP_CRASH_SEED=<seed>.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from daemon.errors import EXIT_LOCKED
from daemon.trading.portfolio import Portfolio
from events.base import Event
from events.instruments import Instrument
from events.journal import list_segments, scan_segment
from events.orders import Fill, OrderCanceled, OrderRejected, OrderSubmitted
from events.state import BalanceChanged, PositionChanged
from events.store import list_parts, read_manifest
from replay.reader import read_events
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.daemon.test_run_process import write_config
from tests.daemon.test_systemd import NotifySocket
from tests.daemon.user_view import agreed_views, ask

KILLS = 11
KILL_AFTER_READY_S = (0.2, 2.0)  # each SIGKILL lands this long after READY=1
SPEED = "20.0"
INSTRUMENT = Instrument(venue="binance", symbol="BTCUSDT", base="BTC", quote="USDT",
                        tick_size=Decimal("0.1"), step_size=Decimal("0.001"),
                        min_notional=Decimal(5))

# A second strategy that keeps post-only quotes resting at all times, so most
# kills land with orders open (the paper venue keeps them across the restart).
# Amending in place keeps its balance reservations single.
MARKET_MAKER = """
[[strategies]]
id = "mm"
class = "daemon.strategies.market_maker:MarketMaker"
venue = "binance"
symbols = ["BTCUSDT"]
params = { qty = 0.002, half_spread_bps = 0.5, max_position = 0.01, requote_bps = 0.5, \
requote = "amend" }
"""


def crash_config(tmp_path: Path) -> Path:
    path = write_config(tmp_path, speed=SPEED)
    text = path.read_text()
    for old, new in [
        # some BTC, so the market maker's asks are never refused for balance
        ("balances = { USDT = 100_000.0 }", "balances = { USDT = 100_000.0, BTC = 1.0 }"),
        ("max_orders_per_s = 20", "max_orders_per_s = 500"),
        # sma's market orders may cross mm's quotes: let them (fills, not refusals)
        ("price_band_pct = 5.0", "price_band_pct = 5.0\nself_trade_prevention = false"),
        # background rolls into Parquet while running: kills land during them too
        ("roll_interval_s = 60", "roll_interval_s = 1"),
        ('bar_interval = "5s"', 'bar_interval = "2s"'),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text + MARKET_MAKER)
    return path


class Daemon:
    """One `tapeloop run` with its own log file, in its own process group (its
    cgroup, as far as a crash is concerned)."""

    def __init__(self, config: Path, data: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                start_new_session=True)

    def crash(self) -> None:
        """SIGKILL the daemon and its children at once, then reap it."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def rollers(self) -> list[int]:
        """Pids of its running `python -m events.roll` children."""
        out = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            if ppid == self.proc.pid and b"events.roll" in cmdline:
                out.append(int(entry.name))
        return out

    def lines(self, event: str) -> list[dict[str, object]]:
        needle = f'"event":"{event}"'.encode()
        return [json.loads(line) for line in self.log.read_bytes().splitlines()
                if needle in line]

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n"
                                 + self.log.read_text()[-3000:])
        return True


def wait_ready(sock: NotifySocket, daemon: Daemon, starts: int) -> None:
    got = eventually(lambda: daemon.alive() and len(sock.seen("READY", "1")) >= starts,
                     timeout=30, message=f"READY=1 of start #{starts}")
    assert got
    assert sock.seen("READY", "1")[-1]["MAINPID"] == str(daemon.proc.pid)


def journal_last_seq(data: Path) -> int:
    """The last good seq the journal and Parquet hold (read only: no truncation)."""
    last = read_manifest(data).rolled_seq
    for first, path in list_segments(data / "journal"):
        try:
            last = max(last, scan_segment(path, first).last_seq)
        except FileNotFoundError:  # rolled meanwhile
            continue
    return last


def by_seq(data: Path, types: Iterable[type[Event]]) -> list[Event]:
    names = [t.__name__ for t in types]
    events = [e for batch in read_events(data, types=names) for e in batch]
    events.sort(key=lambda e: e.seq)
    return events


@pytest.mark.timeout(600)  # eleven daemon starts, each waiting for a fill
def test_sigkill_at_random_moments_then_sigterm_leaves_a_consistent_store(
        tmp_path: Path) -> None:
    seed = int(os.environ.get("TAPELOOP_CRASH_SEED", random.randrange(2**32)))
    print(f"crash-recovery seed {seed} (TAPELOOP_CRASH_SEED={seed} to rerun)")
    rng = random.Random(seed)
    config, data = crash_config(tmp_path), tmp_path / "data"
    sock = NotifySocket(tmp_path / "notify")
    env = {**cli_env(), "NOTIFY_SOCKET": str(sock.path)}
    daemons: list[Daemon] = []
    killed_at: list[int] = []  # last good seq on disk after each SIGKILL
    rolling = 0  # kills that landed during a background roll
    try:
        for run in range(1, KILLS + 1):
            daemon = Daemon(config, data, tmp_path / f"run-{run:02d}.log", env)
            daemons.append(daemon)
            wait_ready(sock, daemon, run)
            # what a user sees after each restart: the strategies keep trading
            eventually(lambda d=daemon: d.alive() and d.lines("order.filled"), timeout=60,
                       message=f"a fill in run #{run}")
            # Not a synchronisation: the random moment the "crash" happens.
            time.sleep(rng.uniform(*KILL_AFTER_READY_S))
            daemon.alive()
            rolling += bool(daemon.rollers())
            daemon.crash()
            killed_at.append(journal_last_seq(data))

        final_start_ns = time.time_ns()
        final = Daemon(config, data, tmp_path / "final.log", env)
        daemons.append(final)
        wait_ready(sock, final, KILLS + 1)
        eventually(lambda: final.alive() and final.lines("order.filled"), timeout=30,
                   message="a fill in the final run")
        # the OMS's view (the control API) is the journal's fold, the portfolio its fills
        # (the strategies stop first, as an operator would to look: mm requotes for ever)
        for sid in ("mm", "sma"):
            ask(config, data, "strategy", "stop", sid)
        seen, positions, book, folded = agreed_views(config, data)
        assert seen == {c: (o.state, o.filled_qty) for c, o in book.orders.items()}, \
            f"seed {seed}"
        assert positions == folded, f"seed {seed}: {positions} != {folded}"
        # One writer: a second daemon on the same data directory is refused.
        second = subprocess.run(
            tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
            capture_output=True, env=env, cwd=REPO, timeout=60)
        assert second.returncode == EXIT_LOCKED, second
        err = second.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and f"pid {final.proc.pid}" in err, err
        assert "Traceback" not in err and not second.stdout.strip(), second
        assert len(sock.seen("READY", "1")) == KILLS + 1, "the refused daemon said READY"
        final.alive()
        final.proc.send_signal(signal.SIGTERM)
        assert final.proc.wait(timeout=30) == 0, final.log.read_text()[-3000:]
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.crash()
        notes = sock.drain()
        sock.close()

    # -- every start reached READY; every restart recovered the state ---------------
    assert sum(m.get("READY") == "1" for m in notes) == len(daemons) == KILLS + 1
    assert any(m.get("STOPPING") == "1" for m in notes), "SIGTERM said STOPPING=1"
    recovered = []
    for i, d in enumerate(daemons[1:], start=2):
        lines = d.lines("state.recovered")
        assert len(lines) == 1, f"start #{i}: no state.recovered line ({d.log})"
        recovered.append(lines[0])
        opened = d.lines("daemon.opened")[0]
        assert opened["next_seq"] == killed_at[i - 2] + 1, (
            f"start #{i} continued at {opened['next_seq']}, the journal ended at "
            f"{killed_at[i - 2]} (seed {seed})")
    crashed_open = sum(1 for r in recovered[:KILLS] if int(str(r["open_orders"])) > 0)
    print(f"restarts that found open orders: {crashed_open}/{KILLS}; "
          f"kills during a background roll: {rolling}; "
          f"torn tails truncated: {sum(len(d.lines('journal.torn_tail')) for d in daemons)}")
    assert crashed_open >= 1, "no kill landed while an order was open"

    # -- nothing torn: the journal rolled, no pending store op, every part opens ---
    assert list_segments(data / "journal") == [], "SIGTERM left journal segments unrolled"
    assert read_manifest(data).pending is None
    leftovers = [p for p in (data / "events").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    seqs: list[int] = []
    parts = list_parts(data / "events")
    for part in parts:
        table = pq.read_table(part.path)  # every part opens and decodes
        seqs += table.column("seq").to_pylist()

    # -- the seq is gap-free from 1, without duplicates, and lost nothing ----------
    seqs.sort()
    dupes = [s for s, n in Counter(seqs).items() if n > 1]
    assert not dupes, f"duplicate seqs {dupes[:10]} (seed {seed})"
    assert seqs == list(range(1, len(seqs) + 1)), f"seq gaps (seed {seed})"
    assert seqs[-1] >= max(killed_at), "events journaled before a kill were lost"

    # -- client order ids are never reused ------------------------------------------
    orders = by_seq(data, [OrderSubmitted, OrderRejected, OrderCanceled])
    submitted = [e.client_order_id for e in orders if isinstance(e, OrderSubmitted)]
    reused = [c for c, n in Counter(submitted).items() if n > 1]
    assert not reused, f"client order ids submitted twice: {reused[:10]} (seed {seed})"
    refused = [e.client_order_id for e in orders
               if isinstance(e, OrderRejected) and e.check]  # by risk: never submitted
    assert not set(refused) & set(submitted) and len(set(refused)) == len(refused)
    # orders finish: the paper venue keeps what rests across a restart (nothing is
    # closed for it), and no order a kill interrupted is left unanswered
    assert not [e for e in orders if isinstance(e, OrderCanceled)
                and e.reason == "paper venue restarted"]
    stuck = [c for c, o in book.orders.items()
             if o.state in ("submitted", "pending_cancel") and o.ts_last < final_start_ns]
    assert not stuck, f"seed {seed}: orders never answered across restarts: {stuck}"
    assert {e.strategy_id for e in orders if isinstance(e, OrderSubmitted)} == {"sma", "mm"}

    # -- positions: the fold of every fill == the last PositionChanged == Portfolio --
    state = by_seq(data, [Fill, PositionChanged, BalanceChanged])
    fills = [e for e in state if isinstance(e, Fill)]
    assert len(fills) >= 20, f"only {len(fills)} fills: the test exercises too little"
    assert {f.client_order_id for f in fills} <= set(submitted)
    folded: dict[tuple[str, str, str], Decimal] = {}
    for f in fills:
        key = (f.strategy_id, f.venue, f.symbol)
        folded[key] = folded.get(key, Decimal(0)) + (f.qty if f.side == "BUY" else -f.qty)
    last_changed = {(e.strategy_id, e.venue, e.symbol): e.qty
                    for e in state if isinstance(e, PositionChanged)}
    assert last_changed == folded, f"seed {seed}"
    portfolio = Portfolio(lambda e: None, time.time_ns, {INSTRUMENT.key: INSTRUMENT})
    for e in state:
        if isinstance(e, Fill | BalanceChanged):
            portfolio.apply(e)
    fresh = {(p.strategy_id, p.venue, p.symbol): p.qty
             for p in portfolio.positions(include_flat=True)}
    assert fresh == folded
    print(f"{len(seqs)} events, {len(parts)} parts, {len(submitted)} orders, "
          f"{len(fills)} fills; positions {folded}")


def test_sigkill_of_the_daemon_alone_during_a_background_roll(tmp_path: Path) -> None:
    """`kill -9 <pid>` outside systemd, during a background roll: the roller child
    dies with the daemon (it works under the daemon's lock; left running it wrote the
    store while the next start recovered it, which then failed with the same events
    in a new part and in the journal), and a restart at once comes up consistent."""
    config, data = write_config(tmp_path, speed='"max"'), tmp_path / "data"
    # at full speed a segment of ~3 s holds a few 100k events: its roll takes seconds
    config.write_text(config.read_text().replace("roll_interval_s = 60", "roll_interval_s = 3"))
    sock = NotifySocket(tmp_path / "notify")
    env = {**cli_env(), "NOTIFY_SOCKET": str(sock.path)}
    first = Daemon(config, data, tmp_path / "first.log", env)
    rollers: list[int] = []
    second: Daemon | None = None
    try:
        wait_ready(sock, first, 1)
        rollers = eventually(lambda: first.alive() and first.rollers(), timeout=30,
                             message="a background roll")
        first.proc.send_signal(signal.SIGKILL)  # the daemon only, not its group
        first.proc.wait(timeout=10)
        eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in rollers),
                   timeout=10, message="the roller to die with the daemon")
        second = Daemon(config, data, tmp_path / "second.log", env)
        wait_ready(sock, second, 2)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=60) == 0, second.log.read_text()[-3000:]
    finally:
        for d in (first, second):
            if d is not None and d.proc.poll() is None:
                d.crash()
        sock.close()
    seqs: list[int] = []
    for part in list_parts(data / "events"):
        seqs += pq.read_table(part.path, columns=["seq"]).column("seq").to_pylist()
    seqs.sort()
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_roller_whose_parent_is_gone_rolls_nothing(tmp_path: Path) -> None:
    """The roller armed its death signal only after importing pyarrow, and compared its
    parent with whatever it had by then: a daemon killed in that window left a roller
    running under init. It now knows the pid it works for."""
    import sys

    from events.journal import Journal
    from events.market import Trade

    (tmp_path / "journal").mkdir()
    journal = Journal(tmp_path / "journal", next_seq=1)
    journal.append(Trade(ts_event=1, ts_recv=1, seq=1, venue="v", symbol="S", price=1.0,
                         size=1.0))
    segment = journal.close()
    assert segment is not None
    not_my_parent = "1"
    out = subprocess.run([sys.executable, "-m", "events.roll", str(tmp_path), str(segment),
                          not_my_parent], cwd=REPO, env=cli_env(), capture_output=True,
                         timeout=60)
    assert out.returncode == 3, out
    assert segment.exists() and not (tmp_path / "events").exists()
