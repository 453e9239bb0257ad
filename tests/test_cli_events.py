"""`tapeloop events` as a real child process: lines, order, filters, --limit,
and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from events.codec import to_json
from tests.conftest import REPO, cli_env, tapeloop_cmd
from tests.replay.helpers import DAY0, DAY0_NS, DAY_NS, key, make_event, part_path, write_store

TIMEOUT_S = 60


def tapeloop(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        tapeloop_cmd("events", *args),
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        timeout=TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("store")
    events = []
    seq = 1
    for day in range(3):
        for i in range(40):
            kind = ("Trade", "Quote", "Fill", "VenueStatus")[i % 4]
            symbol = ("BTCUSDT", "ETHUSDT")[i % 3 % 2]
            # descending seqs within a day: the order is by ts first
            ts = DAY0_NS + day * DAY_NS + (i // 2) * 1000
            events.append(make_event(kind, ts, 10_000 - seq, symbol))
            seq += 1
    write_store(root, events, parts=3, seed=7)
    return root, sorted(events, key=key)


def lines(result: subprocess.CompletedProcess[bytes]) -> list[bytes]:
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return result.stdout.splitlines()


def test_prints_every_event_in_order(store: tuple[Path, list]) -> None:
    root, events = store
    out = lines(tapeloop("--data", str(root)))
    assert out == [to_json(e) for e in events]
    assert json.loads(out[0])["type"] == type(events[0]).__name__


def test_filters(store: tuple[Path, list]) -> None:
    root, events = store
    day1 = DAY0 + timedelta(days=1)
    lo, hi = DAY0_NS + DAY_NS, DAY0_NS + 2 * DAY_NS
    assert lines(tapeloop("--data", str(root), "--date", day1.isoformat())) == [
        to_json(e) for e in events if lo <= e.ts_event < hi
    ]
    assert lines(
        tapeloop(
            "--data", str(root), "--from", day1.isoformat(), "--type", "quote", "--type", "Fill"
        )
    ) == [to_json(e) for e in events if e.ts_event >= lo and type(e).__name__ in ("Quote", "Fill")]
    assert lines(
        tapeloop("--data", str(root), "--to", DAY0.isoformat(), "--symbol", "ETHUSDT")
    ) == [to_json(e) for e in events if e.ts_event < lo and getattr(e, "symbol", "") == "ETHUSDT"]


def test_limit_stops_before_reading_the_rest(store: tuple[Path, list], tmp_path: Path) -> None:
    root, events = store
    assert lines(tapeloop("--data", str(root), "--limit", "5")) == [to_json(e) for e in events[:5]]
    assert lines(tapeloop("--data", str(root), "--limit", "0")) == []
    # A later day that cannot be read is never reached with a small --limit.
    write_store(tmp_path, events[:10])
    bad = part_path(tmp_path, DAY0 + timedelta(days=9), "Trade", 99)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"garbage")
    assert lines(tapeloop("--data", str(tmp_path), "--limit", "3")) == [
        to_json(e) for e in events[:3]
    ]
    failed = tapeloop("--data", str(tmp_path))
    err = failed.stderr.decode()
    assert failed.returncode != 0
    assert err.count("\n") == 1 and "part-00099.parquet" in err


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--data", "{missing}"], "{missing}"),
        (["--data", "{root}", "--date", "2024-3-01"], "2024-3-01"),
        (["--data", "{root}", "--from", "yesterday"], "yesterday"),
        (["--data", "{root}", "--from", "2024-03-05", "--to", "2024-03-01"], "2024-03-05"),
        (["--data", "{root}", "--date", "2024-03-01", "--to", "2024-03-02"], "--date"),
        (["--data", "{root}", "--type", "Trades"], "Trades"),
        (["--data", "{root}", "--limit", "-3"], "-3"),
        (["--data", "{root}", "--limit", "lots"], "lots"),
        (["--data", "{not_a_store}"], "{not_a_store}"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(
    store: tuple[Path, list], tmp_path: Path, args: list[str], names: str
) -> None:
    root, _ = store
    places = {"root": str(root), "missing": str(tmp_path / "nope"), "not_a_store": str(tmp_path)}
    result = tapeloop(*[a.format(**places) for a in args])
    err = result.stderr.decode()
    assert result.returncode != 0
    assert result.stdout == b""
    assert err.count("\n") == 1 and err.startswith("tapeloop events: "), err
    assert names.format(**places) in err
