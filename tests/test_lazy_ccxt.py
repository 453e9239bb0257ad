"""ccxt is large (issue 11 item 9): nothing `tapeloop status`, `replay` or a run without a
ccxt venue imports may pull it in. Checked in a fresh interpreter, importing what those
commands import and building a paper node."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, cli_env

PROBE = """
import sys
import daemon.cli, daemon.kernel, daemon.commands.status, daemon.commands.replay
import daemon.commands.run, daemon.venues, daemon.venue_instruments, daemon.wiring
import adapters.ccxt, adapters.ccxt.venue, adapters.ccxt.markets, adapters.ccxt.exchange
from daemon.config import load_config
from daemon.node import TradingNode
from events.bus import Bus
from replay.clock import ReplayClock
TradingNode(load_config("configs/paper.toml"), Bus(), ReplayClock(), replay=False)
print(sorted(m for m in sys.modules if m == "ccxt" or m.startswith("ccxt.")))
"""


def test_ccxt_is_imported_only_for_a_ccxt_venue() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=cli_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"ccxt imported: {out.stdout[:500]}"
