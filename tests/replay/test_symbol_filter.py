"""The reader's symbol filter (`replay.runs.all_in`, `none_in`) keeps a portfolio's parts
(one instrument each, read for a set of several) without pyarrow.compute, whose
import alone costs a replay ~30 ms and ~17 MB of peak RSS (issue 15: the
4-symbol replay's RSS flat). `all_in` saying True must mean every row is wanted,
`none_in` that none is (False only sends the batch to the compute path, which
is still right)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.runs import all_in, none_in
from tests.conftest import LEAN_SPY, REPO, cli_env, import_spy, tapeloop_cmd

NAMES = ["SPY", "SPYB", "QQQ", "SP", "SPYSPY", "", None]


@settings(max_examples=300, deadline=None)
@given(names=st.lists(st.sampled_from(NAMES), max_size=40),
       cut=st.tuples(st.integers(0, 20), st.integers(0, 40)), dictionary=st.booleans(),
       wanted=st.frozensets(st.sampled_from(["SPY", "SPYB", "QQQ", "SP"]), max_size=3))
def test_all_in_never_keeps_a_row_is_in_would_drop(names: list[str | None],
                                                    cut: tuple[int, int], dictionary: bool,
                                                    wanted: frozenset[str]) -> None:
    col = pa.array(names, pa.string()).slice(*cut)
    if dictionary:
        col = col.dictionary_encode()
    value_set = pa.array(sorted(wanted), pa.string())
    truth = bool(len(col)) and pc.all(pc.is_in(col, value_set=value_set)).as_py() is True \
        and col.null_count == 0
    got = all_in(col, frozenset(w.encode() for w in wanted))
    assert not got or truth, (names, cut, wanted)
    distinct = set(col.to_pylist())
    if truth and (dictionary or len(distinct) == 1):
        # the portfolio's case (a dictionary column of its own instrument, or one
        # plain value repeated) takes the fast path
        assert got, (names, cut, wanted)
    # and the other instruments' parts are dropped, never a wanted row
    dropped = none_in(col, frozenset(w.encode() for w in wanted))
    kept_any = pc.any(pc.is_in(col, value_set=value_set)).as_py() is True
    assert not (dropped and kept_any), (names, cut, wanted)
    if dictionary and not kept_any:
        assert dropped, (names, cut, wanted)


PROBE = """
import sys
from replay.reader import read_events
rows = 0
for batch in read_events(sys.argv[1], types=["Trade"], symbols=["SPY", "SPYB"], lazy=True):
    rows += len(batch)
print(rows, "pyarrow.compute" in sys.modules)
"""


def test_a_portfolio_read_keeps_pyarrow_compute_out(tmp_path: Path) -> None:
    data = import_spy(tmp_path / "data", "20131007")
    out = subprocess.run(tapeloop_cmd("import", "trades", str(LEAN_SPY / "20131007_trade.zip"),
                                      "--venue", "lean", "--symbol", "SPYB", "--data", str(data)),
                         capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    probe = subprocess.run([sys.executable, "-c", PROBE, str(data)], cwd=REPO, env=cli_env(),
                           capture_output=True, text=True, timeout=300, check=False)
    assert probe.returncode == 0, probe.stderr
    rows, imported = probe.stdout.split()
    assert int(rows) > 0 and int(rows) % 2 == 0, rows  # both symbols' trades, whole
    assert imported == "False", "the symbol filter imported pyarrow.compute"
