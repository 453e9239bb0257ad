"""`tapeloop run` as a real child process: SIGKILL and restart, SIGTERM, lock."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from events.journal import read_journal
from events.store import list_parts
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd

SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"


def write_config(tmp_path: Path, speed: str = "20.0") -> Path:
    text = (REPO / "configs" / "paper.toml").read_text()
    text = text.replace('file = "samples/', f'file = "{SAMPLE.parent}/')
    text = re.sub(r"^speed = [0-9.]+", f"speed = {speed}", text, flags=re.M)
    text = text.replace('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"')  # any free port
    path = tmp_path / "paper.toml"
    path.write_text(text)
    return path


def start(config: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT, env=cli_env(),
                            cwd=REPO)


def stored_seqs(data: Path) -> list[int]:
    seqs: list[int] = []
    for part in list_parts(data / "events"):
        seqs += pq.read_table(part.path, columns=["seq"])["seq"].to_pylist()
    seqs += [e.seq for e in read_journal(data / "journal")]
    return sorted(seqs)


def journal_seqs(data: Path) -> list[int]:
    return [e.seq for e in read_journal(data / "journal")]


def wait_ready(log: Path, runs: int) -> None:
    """Wait until the log shows `runs` daemons reached daemon.ready (signal
    handlers are installed by then)."""
    eventually(lambda: log.read_bytes().count(b'"daemon.ready"') >= runs, timeout=30,
               message=f"daemon.ready #{runs}")


def wait_journal_past(data: Path, floor: int) -> None:
    eventually(lambda: any(s > floor for s in journal_seqs(data)), timeout=30,
               message=f"the daemon journaling events past seq {floor}")


def test_sigkill_and_restart_keep_a_gap_free_seq(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    seen_before_kill: set[int] = set()
    for run in range(1, 4):
        proc = start(config, data, log)
        try:
            wait_ready(log, run)
            # wait until this run has written events of its own to the journal
            wait_journal_past(data, max(seen_before_kill, default=0) + 200)
            seen_before_kill |= set(stored_seqs(data))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    # the last run stops gracefully and rolls everything into Parquet
    proc = start(config, data, log)
    wait_ready(log, 4)
    wait_journal_past(data, max(seen_before_kill) + 50)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    seqs = stored_seqs(data)
    assert seqs == list(range(1, len(seqs) + 1)), "gap-free, no duplicates"
    assert seen_before_kill <= set(seqs), "nothing that reached the journal was lost"
    assert journal_seqs(data) == []  # SIGTERM rolled the journal into Parquet
    types = {p.type for p in list_parts(data / "events")}
    assert {"Trade", "Quote", "BookDelta", "VenueStatus"} <= types


def test_second_daemon_on_the_same_data_dir_refuses_with_one_line(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        second = subprocess.run(tapeloop_cmd("run", "--config", str(config), "--data", str(data)),
                                capture_output=True, env=cli_env(), cwd=REPO, timeout=60)
        assert second.returncode == 4
        err = second.stderr.decode().strip()
        assert len(err.splitlines()) == 1 and f"pid {proc.pid}" in err, err
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("bad", ["speed = \"fast\"", "file = \"/nonexistent/recording.gz\""])
def test_bad_config_is_one_line_and_nonzero(tmp_path: Path, bad: str) -> None:
    config = write_config(tmp_path)
    text = config.read_text()
    key = bad.split(" =")[0]
    lines = [bad if line.startswith(f"{key} =") else line for line in text.splitlines()]
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(tapeloop_cmd("run", "--config", str(config), "--data",
                                       str(tmp_path / "d")),
                          capture_output=True, env=cli_env(), cwd=REPO, timeout=60)
    assert proc.returncode != 0
    err = proc.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_events_shows_a_running_daemons_journal(tmp_path: Path) -> None:
    import json

    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        wait_journal_past(data, 20)
        out = subprocess.run(tapeloop_cmd("events", "--data", str(data), "--limit", "5"),
                             capture_output=True, env=cli_env(), cwd=REPO, timeout=60)
        assert out.returncode == 0, out.stderr
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(lines) == 5
        keys = [(e["ts_event"], e["seq"]) for e in lines]
        assert keys == sorted(keys)
        trades = subprocess.run(tapeloop_cmd("events", "--data", str(data), "--type", "Trade",
                                             "--limit", "2"),
                                capture_output=True, env=cli_env(), cwd=REPO, timeout=60)
        got = [json.loads(line) for line in trades.stdout.splitlines()]
        assert len(got) == 2 and {e["type"] for e in got} == {"Trade"}
        assert got[0]["venue"] == "binance" and got[0]["symbol"] == "BTCUSDT"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_journal_segments_are_rolled_into_parquet_while_running(tmp_path: Path) -> None:
    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    text = config.read_text().replace("roll_interval_s = 60", "roll_interval_s = 1")
    config.write_text(re.sub(r"^snapshot_interval_s = [0-9.]+", "snapshot_interval_s = 0.5", text,
                             flags=re.M))
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        eventually(lambda: log.read_bytes().count(b'"journal.segment_rolled"') >= 2, timeout=30,
                   message="two background rolls")
        assert list_parts(data / "events"), "Parquet parts exist while the daemon runs"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    seqs = stored_seqs(data)
    assert seqs == list(range(1, len(seqs) + 1))
    assert b"journal.roll_failed" not in log.read_bytes()
    assert list_parts(data / "events", types=["Snapshot"]), "the portfolio was snapshotted"


def test_on_stop_cancel_cancels_resting_orders_at_a_graceful_stop(tmp_path: Path) -> None:
    from events.orders import CancelOrder, OrderAccepted, OrderCanceled
    from replay.reader import read_events

    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    text = config.read_text().replace("[daemon]", '[daemon]\non_stop = "cancel"', 1)
    text = re.sub(r'class = "daemon.strategies.sma_cross:SmaCross"',
                  'class = "tests.strategies_for_tests:OneBid"', text)
    text = re.sub(r"^params = .*$", "params = { qty = 0.01 }", text, flags=re.M)
    config.write_text(text)
    proc = start(config, data, log)
    try:
        wait_ready(log, 1)
        eventually(lambda: b'"order.submitted"' in log.read_bytes(), timeout=30,
                   message="the resting bid")
        eventually(lambda: any(type(e).__name__ == "OrderAccepted"
                               for e in read_journal(data / "journal")), timeout=30,
                   message="the bid accepted")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]
    names = ["OrderAccepted", "CancelOrder", "OrderCanceled"]
    events = [e for batch in read_events(data, types=names) for e in batch]
    accepted = {e.client_order_id for e in events if isinstance(e, OrderAccepted)}
    cancels = {e.client_order_id: e.reason for e in events if isinstance(e, CancelOrder)}
    canceled = {e.client_order_id for e in events if isinstance(e, OrderCanceled)}
    assert accepted and set(cancels) == accepted == canceled, (accepted, cancels, canceled)
    assert set(cancels.values()) == {"daemon stopping"}


@pytest.mark.timeout(300)  # two daemon runs of four fills each, then many control calls
def test_run_stop_run_again_keeps_trading(tmp_path: Path) -> None:
    """Issue 9, found as a new user: `make run`, Ctrl-C, `make run` again on the same
    data. The paper venue numbered its trade ids from T1 again, the OMS dropped the new
    fills as duplicates, `tapeloop orders` showed them accepted for ever and every later
    SELL was refused for balance "reserved by open orders". What the user sees must be
    a daemon that trades on: fills applied, orders finished, the OMS's view equal to
    the journal's fold and the portfolio equal to its fills."""
    from tests.daemon.user_view import agreed_views, ask

    config, data, log = write_config(tmp_path), tmp_path / "data", tmp_path / "daemon.log"
    for run in (1, 2):
        proc = start(config, data, log)
        try:
            wait_ready(log, run)
            eventually(lambda run=run: log.read_bytes().split(b'"daemon.ready"')[run]
                       .count(b'"order.filled"') >= 4, timeout=60,
                       message=f"four fills in run #{run}")
            if run == 2:
                # the strategy stops first, as in the crash test: trading on, it kept the
                # views moving, and comparing them was a matter of luck (and minutes)
                ask(config, data, "strategy", "stop", "sma")
                seen, positions, book, folded = agreed_views(config, data)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    second = log.read_bytes().split(b'"daemon.ready"')[2]
    assert b"reserved by open orders" not in second, "stale reservations refused orders"
    # every fill of the second run reached the OMS: the view is the journal's fold
    # (four fills a run; an order may take several: hybrid slippage caps each fill
    # at a share of the volume seen)
    assert sum(1 for state, _ in seen.values() if state == "filled") >= 3
    assert seen == {c: (o.state, o.filled_qty) for c, o in book.orders.items()}
    assert positions == folded, (positions, folded)
    trade_ids = [e.trade_id for e in read_events_of(data, "Fill")]
    assert len(trade_ids) == len(set(trade_ids)), "a paper trade id was used twice"


def read_events_of(data: Path, name: str) -> list:
    from replay.reader import read_events

    return [e for batch in read_events(data, types=[name]) for e in batch]
