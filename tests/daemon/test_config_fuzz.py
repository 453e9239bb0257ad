"""Fuzzing the config contract (issue 10, item 4) with hypothesis over mutations of the
shipped configs (values replaced by hostile ones, keys dropped or added, blocks doubled,
strategy classes swapped):

- `tapeloop check-config` exits 0, or 3 with exactly one stderr line naming the file;
  never a traceback;
- a config it accepts is one `tapeloop run` starts: `start_probe` builds from it what
  run builds before READY (the trading node with its strategies added and started, the
  venues' feeds and adapters, the alerts, the journal policy), without a store, a
  control socket or a network, and nothing in it may refuse.

`TAPELOOP_FUZZ_EXAMPLES` sets the examples per shipped config (default 60; `make soak`
may run many more). A failure prints the mutations and hypothesis' reproduction blob.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from daemon.cli import main
from daemon.config import load_config
from daemon.errors import EXIT_CONFIG
from tests.conftest import REPO

EXAMPLES = int(os.environ.get("TAPELOOP_FUZZ_EXAMPLES", "60"))
CONFIGS = sorted((REPO / "configs").glob("*.toml"))
SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"

_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\"[^\"]*\"|[^,}]+)")

# keys of every section and of the built-in strategies' params
KEYS = sorted({
    "data_dir", "control", "log_level", "snapshot_interval_s", "stop_budget_s", "on_stop",
    "on_strategy_error", "flush_interval_ms", "fsync_interval_ms", "segment_max_bytes",
    "roll_interval_s", "fsync", "webhook_env", "venue_down_after_s", "min_interval_s",
    "timeout_s", "retries", "name", "kind", "fill_model", "slippage_bps", "maker_fee_bps",
    "taker_fee_bps", "latency_ms", "balances", "allow_short", "fee_asset", "file", "speed",
    "loop", "endpoints", "trade", "streams", "depth_limit", "stale_after_s", "recv_window_ms",
    "credentials", "unresolved_alert_after_s", "venue", "symbol", "base", "quote",
    "tick_size", "step_size", "min_notional", "tradable", "currency", "rates",
    "max_order_qty", "max_order_notional", "max_position_qty", "daily_loss_limit",
    "max_orders_per_s", "price_band_pct", "max_position_notional", "max_concentration_pct",
    "halt_loss_multiple", "self_trade_prevention", "id", "class", "symbols", "bar_interval",
    "params", "enabled", "paper", "risk", "initial_positions", "state_file",
    "fast", "slow", "qty", "window", "entry_z", "exit_z", "half_spread_bps", "max_position",
    "skew_bps", "requote_bps", "requote", "side", "total_qty", "duration", "slices",
    "order_type",
})
WORDS = ["sim", "sample", "binance", "next", "aggressive", "conservative", "queue_aware",
         "keep", "cancel", "stop", "continue", "critical", "always", "never", "debug",
         "BUY", "SELL", "amend", "replace", "market", "limit", "quote", "received", "BNB",
         "USDT", "USD", "BTC", "BTCUSDT", "SPY", "1m", "5s", "0m", "10m", "1 minute",
         "testnet", "production", "http://127.0.0.1:1", "trade", "depth@50ms", "max",
         "127.0.0.1:0", "localhost", "[::1]:0", "./c.sock", "/tmp/" + "s" * 120,
         "x" * 300, "d/" + "x" * 300, "~nobody/x", "a\\u0000b", "", " ", "sma", "sma cross",
         "daemon.strategies.twap:Twap", "no.such.module:X", "samples/none.gz"]
CLASSES = ["daemon.strategies.sma_cross:SmaCross", "daemon.strategies.mean_reversion:MeanReversion",
           "daemon.strategies.market_maker:MarketMaker", "daemon.strategies.twap:Twap",
           "tests.strategies_for_tests:OneBid", "tests.strategies_for_tests:FailsAtStart"]
LITERALS = ["0", "-1", "1", "2", "3", "8", "30", "5000", "65536", "99999999999999999999",
            "0.0", "-0.0", "0.5", "0.001", "0.0001", "1e-30", "1e-12", "1e-13", "1e30",
            "0.1000000000000000000001", "1e400", "1e-400", "nan", "-inf", "inf", "true",
            "false", "[]", "{}", '["BTCUSDT"]', '["trade", "kline_1m"]', "{ USDT = 1.0 }",
            "{ fast = 2, slow = 1, qty = 1 }"]
VALUES = st.one_of(
    st.sampled_from(LITERALS),
    st.sampled_from(WORDS).map(lambda w: f'"{w}"'),
    st.integers(-10**7, 10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(lambda n, k: f"{n}e-{k}", st.integers(1, 999), st.integers(0, 20)),
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
        op = draw(st.sampled_from(["set", "set", "inner", "delete", "add", "class", "dup"]))
        if op == "set" and keyed:
            i = draw(st.sampled_from(keyed))
            key = _KEY_LINE.match(lines[i]).group(1)  # type: ignore[union-attr]
            lines[i] = f"{key} = {draw(VALUES)}"
        elif op == "inner":
            tables = [i for i in keyed if "= {" in lines[i] and _INNER.search(lines[i])]
            if tables:
                i = draw(st.sampled_from(tables))
                pairs = list(_INNER.finditer(lines[i]))
                pair = draw(st.sampled_from(pairs))
                key = draw(st.sampled_from([pair.group(1), pair.group(1), *KEYS]))
                lines[i] = (lines[i][:pair.start()] + f"{key} = {draw(VALUES)}"
                            + lines[i][pair.end():])
        elif op == "delete" and keyed:
            del lines[draw(st.sampled_from(keyed))]
        elif op == "add":
            headers = [i for i, line in enumerate(lines) if line.startswith("[")]
            at = draw(st.sampled_from(headers)) + 1 if headers else 0
            lines.insert(at, f"{draw(st.sampled_from(KEYS))} = {draw(VALUES)}")
        elif op == "class":
            classes = [i for i in keyed if lines[i].startswith("class")]
            if classes:
                cls = draw(st.sampled_from(CLASSES))
                lines[draw(st.sampled_from(classes))] = f'class = "{cls}"'
        elif op == "dup":
            headers = [i for i, line in enumerate(lines) if line.startswith("[[")]
            if headers:
                i = draw(st.sampled_from(headers))
                end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("[")),
                           len(lines))
                lines[end:end] = lines[i:end]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the mutated configs, with a short copy of the sample recording
    where paper.toml's relative `file` finds it."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "samples").mkdir()
    with gzip.open(SAMPLE) as fh:
        head = b"".join(fh.readline() for _ in range(400))
    with gzip.open(root / "samples" / SAMPLE.name, "wb") as out:
        out.write(head)
    return root


@contextlib.contextmanager
def credentials(config: object) -> Iterator[None]:
    """Fake keys for every trading Binance venue: the environment, not the config,
    holds them (check-config cannot know them; run refuses without)."""
    names = [f"{v.credentials}_API_{k}" for v in config.venues  # type: ignore[attr-defined]
             if v.kind == "binance" and v.trade for k in ("KEY", "SECRET")]
    saved = {n: os.environ.get(n) for n in [*names, "TAPELOOP_BINANCE_ENDPOINTS"]}
    os.environ.pop("TAPELOOP_BINANCE_ENDPOINTS", None)
    os.environ.update({n: "fuzz" for n in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_probe(path: Path, data: Path) -> str | None:
    """Build what `tapeloop run --config path --data data` builds before READY, minus
    the store, the control socket and the network; the refusal run would print, or None."""
    from daemon.alerts import Alerts
    from daemon.node import TradingNode
    from daemon.venues import make_venue
    from events.bus import Bus
    from events.journal import JournalPolicy
    from replay.clock import ReplayClock

    config = load_config(path, data_dir=data)
    j = config.journal
    JournalPolicy(fsync=j.fsync, flush_interval_ms=j.flush_interval_ms,
                  fsync_interval_ms=j.fsync_interval_ms,
                  segment_max_bytes=j.segment_max_bytes, roll_interval_s=j.roll_interval_s)
    config.daemon.control_address  # noqa: B018 - parsed at start
    bus, clock = Bus(), ReplayClock()
    clock.advance_to(1_700_000_000 * 10**9)
    node = TradingNode(config, bus, clock, replay=False, id_prefix="fuzz1")
    Alerts(config.alerts, bus, clock.now_ns, env={})
    with credentials(config):
        for vcfg in config.venues:
            make_venue(vcfg, config, bus, node)
    failures = node.start(stop_at_failure=config.daemon.on_strategy_error == "stop")
    try:
        return node.start_refusal(failures, str(path))
    finally:
        node.stop()


def check_config(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", str(path)])
    return code, out.getvalue(), err.getvalue()


# FailsAtStart is refused by design at start: the probe must see it, not the fuzz
_BY_DESIGN = "tests.strategies_for_tests:FailsAtStart"


@pytest.mark.parametrize("shipped", CONFIGS, ids=lambda p: p.name)
def test_check_config_is_ok_or_one_line_and_ok_means_run_starts(
        shipped: Path, workdir: Path) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=mutated(shipped.read_text()))
    def check(text: str) -> None:
        note(text)
        path = workdir / shipped.name
        path.write_text(text)
        code, out, err = check_config(path)
        assert "Traceback" not in err, err
        if code != 0:
            assert code == EXIT_CONFIG, (code, err)
            assert len(err.splitlines()) == 1, err
            assert err.startswith(f"tapeloop check-config: {path}"), err
            return
        assert out.startswith(f"{path}: ok ("), out
        refusal = start_probe(path, workdir / "data")
        if _BY_DESIGN in text and refusal is not None:
            assert "failed to start (on_start): RuntimeError('cannot start:" in refusal
            return
        assert refusal is None, refusal

    check()
