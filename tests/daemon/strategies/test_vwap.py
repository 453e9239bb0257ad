"""Vwap on the real node: slices sized by the profile, catch-up of what did not fill,
and a restart mid-run (the node rebuilt from the journal) that neither repeats nor
loses a slice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.strategies.volume_profile import DAY_NS, Profile, measure
from tests.daemon.strategies.algo_world import T0, Daemon, S, algo_config, trades

CLS = "daemon.strategies.vwap:Vwap"
PARAMS = '{ side = "BUY", total_qty = 1.0, duration = "10m", slices = 4, weights = [1, 2, 3, 4] }'
END = T0 + 15 * 60 * S


def test_slices_follow_the_weights(tmp_path: Path) -> None:
    d = Daemon(algo_config(tmp_path, "vwap", CLS, PARAMS))
    d.boot(T0)
    d.feed(trades(T0, END, 10 * S))
    assert [(e.ts_event - T0) // S for e in d.children("vwap")] == [0, 150, 300, 450]
    assert [e.qty for e in d.children("vwap")] == [Decimal("0.1"), Decimal("0.2"),
                                                   Decimal("0.3"), Decimal("0.4")]
    assert all(e.parent_order_id == f"vwap@{T0}" for e in d.children("vwap"))
    assert d.filled("vwap") == Decimal(1)
    assert d.node is not None and d.node.runtime.status("vwap") == "stopped"


def test_profile_from_trades_weights_by_time_of_day(tmp_path: Path) -> None:
    """Two days of trades: bucket 0 trades 2 then 4 (average 3), bucket 1 trades 1 a day."""
    hour = 3600 * S
    day0 = (T0 // DAY_NS) * DAY_NS
    pairs = [(day0 + 60 * S, Decimal(2)), (day0 + hour + 5, Decimal(1)),
             (day0 + DAY_NS + 7, Decimal(4)), (day0 + DAY_NS + hour + 9, Decimal(1))]
    volumes, days = measure(pairs, hour)
    assert days == 2 and volumes[:3] == [Decimal(3), Decimal(1), Decimal(0)]
    profile = Profile(venue="sim", symbol="BTCUSDT", bucket="1h", days=days, volumes=volumes)
    assert profile.weights(day0, hour // 2, 4) == [Decimal(3), Decimal(3), Decimal(1), Decimal(1)]
    assert profile.weights(day0 + 5 * hour, hour, 2) == [Decimal(1), Decimal(1)]  # none seen
    path = tmp_path / "profile.json"
    path.write_bytes(msgspec.json.encode(profile))
    params = (f'{{ side = "SELL", total_qty = 0.8, duration = "2h", slices = 4, '
              f'profile_file = "{path}" }}')
    (tmp_path / "pos.csv").write_text(
        "Symbol,Exchange,Quantity,AvgEntryPrice,Currency\nBTCUSDT,sim,1,100,USDT\n")
    d = Daemon(algo_config(tmp_path, "vwap", CLS, params,
                           extra='initial_positions = "pos.csv"\n'))
    d.boot(day0)
    d.feed(trades(day0, day0 + 3 * hour, 60 * S))
    assert [e.qty for e in d.children("vwap")] == [Decimal("0.3"), Decimal("0.3"),
                                                   Decimal("0.1"), Decimal("0.1")]
    assert d.filled("vwap") == Decimal("0.8")


def run_with_kills(tmp_path: Path, kills: list[tuple[int, int]]) -> Daemon:
    """Feed trades every 10 s; at each (kill_s, down_s) kill the node, lose `down_s` of
    data, and boot it again from the journal."""
    d = Daemon(algo_config(tmp_path, "vwap", CLS, PARAMS))
    d.boot(T0)
    t = T0
    for kill_s, down_s in sorted(kills):
        stop = T0 + kill_s * S
        d.feed(trades(t, stop, 10 * S))
        t = stop + down_s * S
        d.boot(t)
    d.feed(trades(t, END, 10 * S))
    return d


def test_restart_mid_run_resumes_without_repeat_or_loss(tmp_path: Path) -> None:
    """Killed after slice 1; down over slice 2's time: slice 2 is sent at the boot,
    slice 3 on time; nothing twice."""
    d = run_with_kills(tmp_path, [(200, 150)])
    assert [(e.ts_event - T0) // S for e in d.children("vwap")] == [0, 150, 350, 450]
    assert [e.qty for e in d.children("vwap")] == [Decimal("0.1"), Decimal("0.2"),
                                                   Decimal("0.3"), Decimal("0.4")]
    assert d.filled("vwap") == Decimal(1)
    assert d.node is not None and d.node.runtime.status("vwap") == "stopped"


def test_restart_after_done_sends_nothing(tmp_path: Path) -> None:
    d = run_with_kills(tmp_path, [(700, 10)])
    assert len(d.children("vwap")) == 4 and d.filled("vwap") == Decimal(1)
    assert d.node is not None and d.node.runtime.status("vwap") == "stopped"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 800), st.integers(0, 200)), max_size=3,
                unique_by=lambda k: k[0]))
def test_any_kills_fill_the_total_exactly_once(tmp_path_factory, kills) -> None:  # type: ignore[no-untyped-def]
    """Whatever the kills and downtimes (one a slice may straddle), the children add up
    to the total, all filled, at most one child per slice."""
    d = run_with_kills(tmp_path_factory.mktemp("vwap"), kills)
    children = d.children("vwap")
    assert sum((e.qty for e in children), Decimal(0)) == Decimal(1), kills
    assert d.filled("vwap") == Decimal(1), kills
    assert len(children) <= 4, kills


def test_profile_command_without_data_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from daemon.strategies.volume_profile import main

    code = main(["--data", str(tmp_path / "nothing"), "--venue", "sim", "--symbol", "BTCUSDT",
                 "--out", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "p.json").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"venue": "sim"}')
    params = (f'{{ side = "BUY", total_qty = 1.0, duration = "1h", slices = 4, '
              f'profile_file = "{bad}" }}')
    try:
        algo_config(tmp_path, "vwap", CLS, params)
    except Exception as exc:  # the config's one line names the key and the file
        assert "params.profile_file" in str(exc) and str(bad) in str(exc)
    else:
        raise AssertionError("a broken profile file was accepted")
