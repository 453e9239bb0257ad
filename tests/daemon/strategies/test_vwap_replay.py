"""End to end through the CLI: a volume profile measured from an imported store by
`python -m daemon.strategies.volume_profile`, then `tapeloop replay` of the shipped
configs/replay-vwap.toml with that profile: the slices follow the profile and add up
to the parent's total, twice byte-identical."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import msgspec
import pytest

from daemon.strategies.volume_profile import Profile
from tests.conftest import REPO, SHARED_DATA, cli_env, tapeloop_cmd

BARS = SHARED_DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
pytestmark = pytest.mark.skipif(not BARS.is_file(), reason="shared market data absent")


def run(cmd: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env(), cwd=cwd,
                          timeout=300)


def test_vwap_replay_follows_the_measured_profile(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = run(tapeloop_cmd("import", "bars", str(BARS), "--venue", "ftx", "--symbol",
                           "BTC-PERP", "--interval", "1m", "--data", str(data)))
    assert out.returncode == 0, out.stderr
    profile_path = tmp_path / "profile.json"
    out = run([sys.executable, "-m", "daemon.strategies.volume_profile", "--data", str(data),
               "--venue", "ftx", "--symbol", "BTC-PERP", "--bucket", "15m", "--out",
               str(profile_path)])
    assert out.returncode == 0, out.stderr
    profile = msgspec.json.decode(profile_path.read_bytes(), type=Profile)
    assert profile.days >= 7 and len(profile.volumes) == 96 and all(profile.volumes)

    text = (REPO / "configs" / "replay-vwap.toml").read_text()
    head, _, params = text.rpartition("params = ")
    config = tmp_path / "vwap.toml"
    config.write_text(head + 'params = { side = "BUY", total_qty = 1.2, duration = "6h", '
                      f'slices = 24, profile_file = "{profile_path}" }}\n')
    fills = []
    for name in ("a", "b"):
        out = run(tapeloop_cmd("replay", "--config", str(config), "--data", str(data), "--to",
                               "2022-01-01", "--out", str(tmp_path / name)))
        assert out.returncode == 0, out.stderr
        fills.append((tmp_path / name / "fills.csv").read_bytes())
        report = json.loads((tmp_path / name / "report.json").read_text())
        got = [Decimal(f["qty"]) for f in report["fills"]]
    assert fills[0] == fills[1]
    # the schedule, computed here from the profile: slice k in the time-of-day bucket of
    # t0 + k × 15m, t0 the first bar's close (2021-12-31 23:02 UTC), past midnight too
    t0 = 23 * 3600 + 2 * 60
    weights = [profile.volumes[(t0 + k * 900) % 86_400 // 900] for k in range(24)]
    whole = sum(weights, Decimal(0))
    targets, cum = [], Decimal(0)
    for w in weights[:-1]:
        cum += w
        targets.append((Decimal("1.2") * cum / whole).quantize(Decimal("0.001"), ROUND_DOWN))
    targets.append(Decimal("1.2"))
    want = [b - a for a, b in zip([Decimal(0), *targets], targets, strict=False) if b - a > 0]
    assert got == want
    assert sum(got, Decimal(0)) == Decimal("1.2")
