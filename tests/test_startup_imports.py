"""What a replay's start-up imports (issue 15: the time outside the loop counts).
Checked in a fresh interpreter, as `tapeloop replay` starts: only the chosen
command's module, and structlog without rich (whose ~80 modules it would pull in
for tracebacks tapeloop formats itself), while rich stays importable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, cli_env, import_spy

PROBE = """
import sys
import daemon.cli
parser = daemon.cli.build_parser(daemon.cli._chosen(["replay", "--help"]))
import daemon.backtest, daemon.commands.replay
from daemon.logging import configure_logging
configure_logging("warning", stream=sys.stderr)
heavy = ("rich", "pygments", "attr", "http.client", "daemon.commands.run",
         "daemon.commands.top", "daemon.commands.sweep")
print(sorted(m for m in sys.modules if m in heavy))
import rich.progress, structlog.dev
print(structlog.dev.ConsoleRenderer(colors=False)(None, "", {"event": "e", "exception": "X"}))
import pyarrow
print(pyarrow.default_memory_pool().backend_name)
"""


def test_a_replay_starts_without_the_other_commands_and_without_rich() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=cli_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[]", f"imported at start-up: {lines[0]}"
    assert lines[1:3] == ["e", "X"], "the console renderer prints a formatted exception as is"
    # mimalloc kept ~35 MB more of a replay's peak RSS (issue 15: <= 150 MB)
    assert lines[3] == "jemalloc", lines[3]


REPLAY_PROBE = """
import sys
import daemon.cli
code = daemon.cli.main(sys.argv[1:])
print(code, sorted(m for m in sys.modules
                   if m in ("numpy.ma", "rich", "pygments", "pyarrow.compute", "events.remote",
                            "daemon.research.montecarlo")))
"""


def test_a_whole_replay_and_its_report_never_import_numpy_ma(tmp_path: Path) -> None:
    """np.unique's first call imports numpy.ma (20 ms): the report's charts
    deduplicate without it. pyarrow.compute (~30 ms with pydoc) is not imported
    either: the reader's symbol filter, the aggressor's nulls and the run's roll
    to Parquet work on the columns' buffers."""
    # three days: more equity samples than a chart draws, so the charts downsample
    data = import_spy(tmp_path / "data", "20131007", "20131008", "20131009")
    out = subprocess.run(
        [sys.executable, "-c", REPLAY_PROBE, "replay", "--config",
         str(REPO / "configs" / "replay-spy.toml"), "--data", str(data), "--out",
         str(tmp_path / "run")], cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "0 []", out.stdout[-500:]
    assert (tmp_path / "run" / "report.html").stat().st_size > 0


GC_PROBE = """
import gc, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info))
import daemon.backtest as backtest
drive = backtest._drive
def counted(*args, **kwargs):
    print("collections before the loop:", len(collections), flush=True)
    return drive(*args, **kwargs)
backtest._drive = counted
sys.argv = ["tapeloop", *sys.argv[1:]]
import daemon.cli
collections.clear()  # the probe's own imports ran with the collector on
daemon.cli.entry()
"""


def test_a_replay_runs_no_collection_before_its_loop(tmp_path: Path) -> None:
    """The cyclic collector walks the objects start-up made, which all live:
    `tapeloop replay` keeps it off until its loop (which freezes them)."""
    data = import_spy(tmp_path / "data", "20131007")
    out = subprocess.run(
        [sys.executable, "-c", GC_PROBE, "replay", "--config",
         str(REPO / "configs" / "replay-spy.toml"), "--data", str(data), "--out",
         str(tmp_path / "run")], cwd=REPO, env=cli_env(), capture_output=True, text=True,
        timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert "collections before the loop: 0" in out.stdout, out.stdout[-500:]
    assert (tmp_path / "run" / "report.json").exists()


CONTROL_PROBE = """
import sys
import daemon.cli
code = daemon.cli.main(sys.argv[1:])
print(code, sorted(m for m in sys.modules
                   if m in ("aiohttp", "pyarrow", "numpy", "daemon.control", "events.store")))
"""


def test_a_control_command_starts_without_aiohttp_or_the_store(tmp_path: Path) -> None:
    """`tapeloop status` (and positions, orders, halt, resume, strategy) read the
    config, `control.json` and the token, and ask the daemon over http.client:
    neither aiohttp (the control API's server, ~0.25 s to import) nor the store's
    pyarrow and numpy (~0.2 s) are needed for that."""
    out = subprocess.run(
        [sys.executable, "-c", CONTROL_PROBE, "status", "--config",
         str(REPO / "configs" / "paper.toml"), "--data", str(tmp_path / "data"), "--json"],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120, check=False)
    assert "no tapeloop daemon answers" in out.stderr, out.stderr  # none runs here
    assert out.stdout.split() == ["1", "[]"], out.stdout
