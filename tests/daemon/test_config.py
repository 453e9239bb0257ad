"""daemon.config: a valid file loads; every kind of mistake is one line naming file and key."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from daemon.config import (
    Config,
    ConfigError,
    load_config,
    parse_control,
    parse_interval,
    with_data_dir,
)
from daemon.errors import EXIT_CONFIG, UserError
from tests.conftest import REPO

VALID = """\
[daemon]
data_dir = "data"
control = "127.0.0.1:8765"

[[venues]]
name = "sim"
kind = "sim"
balances = { USDT = 1_000_000.0 }

[[instruments]]
venue = "sim"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.00001
min_notional = 5.0

[risk]
max_order_qty = 10.0
max_order_notional = 250_000.0
max_position_qty = 20.0
daily_loss_limit = 10_000.0
max_orders_per_s = 20
price_band_pct = 5.0

[[strategies]]
id = "sma"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "sim"
symbols = ["BTCUSDT"]
bar_interval = "1m"
params = { fast = 10, slow = 30, qty = 0.01 }
"""


SPY = """\
[[instruments]]
venue = "sim"
symbol = "SPY"
base = "SPY"
quote = "USD"
tick_size = 0.01
step_size = 1.0

"""


def write(tmp_path: Path, text: str, name: str = "test.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def mutate(old: str, new: str) -> str:
    assert old in VALID, f"test bug: {old!r} is not in VALID"
    return VALID.replace(old, new, 1)


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert isinstance(config, Config)
    assert [v.name for v in config.venues] == ["sim"]
    venue = config.venue("sim")
    assert (venue.fill_model, venue.allow_short, venue.balances) == (
        "next",
        False,
        {"USDT": 1_000_000.0},
    )
    assert config.instrument("sim", "BTCUSDT").tick_size == 0.01
    assert config.risk.max_orders_per_s == 20
    assert config.daemon.log_level == "info"
    assert config.daemon.control_address.port == 8765
    assert (config.journal.flush_interval_ms, config.journal.fsync_interval_ms) == (200, 1000)
    assert config.journal.segment_max_bytes == 256 * 1024 * 1024
    assert (config.journal.roll_interval_s, config.journal.fsync) == (300, "critical")
    assert config.journal.sync_wait == "block"
    strat = config.strategies[0]
    assert (strat.module, strat.class_name) == ("daemon.strategies.sma_cross", "SmaCross")
    assert strat.bar_interval_ns == 60 * 10**9
    assert (strat.enabled, strat.paper, strat.params["slow"]) == (True, False, 30)


def test_the_account_currency_is_inferred_or_given(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert (config.account.currency, config.account.rates) == ("USDT", {})
    two = mutate("[risk]", SPY + '[account]\ncurrency = "USDT"\nrates = { USD = 0.9995 }\n\n'
                 "[risk]")
    config = load_config(write(tmp_path, two))
    assert config.account.currency == "USDT"
    assert config.account.decimal_rates == {"USD": Decimal("0.9995")}  # exact


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path) -> None:
    load_config(path)


def test_data_dir_is_relative_to_cwd_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path, VALID)
    monkeypatch.chdir(tmp_path.parent)
    assert load_config(cfg).daemon.data_dir == tmp_path.parent / "data"
    assert load_config(cfg, data_dir="elsewhere").daemon.data_dir == tmp_path.parent / "elsewhere"
    assert with_data_dir(load_config(cfg), "/srv/x").daemon.data_dir == Path("/srv/x")


def test_sample_file_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "day.gz").write_bytes(b"")
    text = mutate('kind = "sim"', 'kind = "sample"\nfile = "rec/day.gz"\nspeed = "max"')
    cfg = write(tmp_path, text)
    monkeypatch.chdir("/")
    venue = load_config(cfg).venues[0]
    assert venue.file == tmp_path / "rec" / "day.gz"
    assert (venue.speed, venue.loop) == ("max", True)


# (old text, new text, the JSON path named, a phrase of the message)
MISTAKES = [
    pytest.param(
        "max_order_qty = 10.0",
        'max_order_qty = "10"',
        "$.risk.max_order_qty",
        "Expected int|float, got str",
        id="wrong-type",
    ),
    pytest.param(
        "max_order_qty = 10.0",
        "max_ordr_qty = 10.0",
        "$.risk.max_ordr_qty",
        'unknown key (did you mean "max_order_qty"?)',
        id="unknown-key",
    ),
    pytest.param(
        "max_order_qty = 10.0\n", "", "$.risk.max_order_qty", "missing required key", id="missing"
    ),
    pytest.param(
        'kind = "sim"', 'kind = "simulated"', "$.venues[0].kind", "'simulated'", id="bad-enum"
    ),
    pytest.param(
        "tick_size = 0.01",
        "tick_size = 0",
        "$.instruments[0].tick_size",
        "got 0",
        id="not-positive",
    ),
    pytest.param(
        'venue = "sim"\nsymbol',
        'venue = "simm"\nsymbol',
        "$.instruments[0].venue",
        'unknown venue "simm"',
        id="instrument-unknown-venue",
    ),
    pytest.param(
        'venue = "sim"\nsymbols',
        'venue = "nope"\nsymbols',
        "$.strategies[0].venue",
        'unknown venue "nope"',
        id="strategy-unknown-venue",
    ),
    pytest.param(
        'symbols = ["BTCUSDT"]',
        'symbols = ["BTCUSDT", "ETHUSDT"]',
        "$.strategies[0].symbols[1]",
        'no instrument "ETHUSDT" on venue "sim"',
        id="symbol-without-instrument",
    ),
    pytest.param(
        'bar_interval = "1m"',
        'bar_interval = "1 minute"',
        "$.strategies[0].bar_interval",
        "bad interval '1 minute'",
        id="bad-interval",
    ),
    pytest.param(
        'class = "daemon.strategies.sma_cross:SmaCross"',
        'class = "daemon.strategies.sma_cross.SmaCross"',
        "$.strategies[0].class",
        '"module:Class"',
        id="bad-class",
    ),
    pytest.param(
        "[[instruments]]",
        '[[venues]]\nname = "sim"\n\n[[instruments]]',
        "$.venues[1].name",
        'duplicate venue "sim"',
        id="duplicate-venue",
    ),
    pytest.param(
        'control = "127.0.0.1:8765"',
        'control = "localhost"',
        "$.daemon.control",
        "bad control address 'localhost'",
        id="bad-control",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sample"',
        "$.venues[0].file",
        "missing required key",
        id="sample-without-file",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sim"\nloop = false',
        "$.venues[0].loop",
        'only valid for kind = "sample"',
        id="sample-key-on-sim",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sample"\nfile = "missing.gz"',
        "$.venues[0].file",
        "no such file",
        id="sample-file-missing",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sample"\nfile = "x.gz"\nspeed = "fast"',
        "$.venues[0].speed",
        "invalid value 'fast' (expected a number or \"max\")",
        id="bad-speed",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sim"\nendpoints = "production"',
        "$.venues[0].endpoints",
        'only valid for kind = "binance"',
        id="binance-key-on-sim",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "binance"\nendpoints = "prod"',
        "$.venues[0].endpoints",
        "bad endpoints 'prod': expected one of production, testnet, demo",
        id="binance-bad-endpoints",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "binance"\nstreams = ["trade", "depth@50ms"]',
        "$.venues[0].streams[1]",
        "unknown stream 'depth@50ms'",
        id="binance-bad-stream",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "binance"\nrecv_window_ms = 90000',
        "$.venues[0].recv_window_ms",
        "Expected int <= 60000, got 90000",
        id="binance-recv-window",
    ),
    pytest.param(
        "USDT = 1_000_000.0",
        "USDT = -1.0",
        "$.venues[0].balances.USDT",
        "balance must be >= 0",
        id="negative-balance",
    ),
    pytest.param(
        'id = "sma"', 'id = "sma cross"', "$.strategies[0].id", "bad strategy id", id="bad-id"
    ),
    pytest.param(
        "[daemon]",
        '[daemon]\nlog_level = "loud"',
        "$.daemon.log_level",
        "invalid value 'loud'",
        id="bad-log-level",
    ),
    pytest.param(
        "[risk]",
        '[journal]\nfsync = "sometimes"\n\n[risk]',
        "$.journal.fsync",
        "'sometimes'",
        id="bad-fsync",
    ),
    pytest.param(
        "[risk]",
        '[journal]\nsync_wait = "sleep"\n\n[risk]',
        "$.journal.sync_wait",
        "invalid value 'sleep'",
        id="bad-sync-wait",
    ),
    pytest.param(
        "[risk]",
        SPY + "[risk]",
        "$.account.currency",
        "missing: the instruments are quoted in USD, USDT; name the currency",
        id="account-currency-ambiguous",
    ),
    pytest.param(
        "[risk]",
        '[account]\ncurrency = "USDT"\nrates = { USD = 0 }\n\n[risk]',
        "$.account.rates.USD",
        "rate must be a positive number, got 0",
        id="account-rate-zero",
    ),
    pytest.param(
        "[risk]",
        '[account]\ncurrency = "USDT"\nrates = { USDT = 1.0 }\n\n[risk]',
        "$.account.rates.USDT",
        "USDT is the account currency itself",
        id="account-rate-of-itself",
    ),
    pytest.param(
        "[risk]",
        '[account]\ncurrncy = "USDT"\n\n[risk]',
        "$.account.currncy",
        'unknown key (did you mean "currency"?)',
        id="account-unknown-key",
    ),
    # issue 10, item 4: what `run` refused at start (or broke on later), refused here first
    pytest.param(
        'kind = "sim"',
        'kind = "binance"\nstreams = []',
        "$.venues[0].streams",
        "at least one stream",
        id="binance-no-streams",
    ),
    pytest.param(
        "[[instruments]]",
        '[[venues]]\nname = "live"\nkind = "binance"\n\n[[instruments]]',
        "$.venues[1]",
        'binance venue "live" has no [[instruments]]',
        id="binance-venue-without-instruments",
    ),
    pytest.param(
        "step_size = 0.00001",
        "step_size = 1e-30",
        "$.instruments[0].step_size",
        "1e-30 is finer than the 1e-12 grid",
        id="grid-below-decimal-precision",
    ),
    pytest.param(
        "tick_size = 0.01",
        "tick_size = 0.0000000000005",
        "$.instruments[0].tick_size",
        "5e-13 is finer than the 1e-12 grid",
        id="grid-13-places",
    ),
    pytest.param(
        "tick_size = 0.01",
        "tick_size = 0.01000000000000000001",
        "$.instruments[0].tick_size",
        "0.01000000000000000001 has more digits than a float holds (it would be read as 0.01)",
        id="grid-not-a-float",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sim"\nlatency_ms = inf',
        "$.venues[0].latency_ms",
        "must be a finite number, got inf",
        id="inf-latency",
    ),
    pytest.param(
        'kind = "sim"',
        'kind = "sim"\nmaker_fee_bps = nan',
        "$.venues[0].maker_fee_bps",
        "must be a finite number, got nan",
        id="nan-fee",
    ),
    pytest.param(
        "USDT = 1_000_000.0",
        "USDT = inf",
        "$.venues[0].balances.USDT",
        "must be a finite number, got inf",
        id="inf-balance",
    ),
    pytest.param(
        "max_order_qty = 10.0",
        "max_order_qty = 1e400",
        "$.risk.max_order_qty",
        "1E+400 is out of range for a float",
        id="float-overflow",
    ),
    pytest.param(
        "qty = 0.01 }",
        "qty = -nan }",
        "$.strategies[0].params.qty",
        "must be a finite number, got nan",
        id="nan-param",
    ),
    pytest.param(
        "qty = 0.01 }",
        "qty = 0.000001 }",
        "$.strategies[0].params.qty",
        "0.000001 rounds down to 0 at BTCUSDT's step 0.00001",
        id="qty-below-step",
    ),
    pytest.param(
        "qty = 0.01 }",
        "qty = 1e30 }",
        "$.strategies[0].params.qty",
        "1E+30 is too large for BTCUSDT's step 0.00001",
        id="qty-beyond-the-grid",
    ),
    pytest.param(
        "daemon.strategies.sma_cross:SmaCross",
        "daemon.strategies.nope:SmaCross",
        "$.strategies[0].class",
        "cannot import module 'daemon.strategies.nope'",
        id="class-module-missing",
    ),
    pytest.param(
        "daemon.strategies.sma_cross:SmaCross",
        "daemon.strategies.sma_cross:SmaCros",
        "$.strategies[0].class",
        "module 'daemon.strategies.sma_cross' has no 'SmaCros'",
        id="class-missing",
    ),
    pytest.param(
        "fast = 10,",
        "fastt = 10,",
        "$.strategies[0].params.fastt",
        'unknown key (did you mean "fast"?)',
        id="param-unknown",
    ),
    pytest.param(
        "fast = 10,",
        "fast = 40,",
        "$.strategies[0].params",
        "fast (40) must be less than slow (30)",
        id="param-cross-check",
    ),
    pytest.param(
        "min_notional = 5.0",
        "min_notional = 300_000.0",
        "$.risk.max_order_notional",
        "250000.0 is below the min_notional 300000.0 USDT of BTCUSDT",
        id="min-notional-above-the-risk-limit",
    ),
    pytest.param(
        "qty = 0.01 }",
        "qty = 0.01 }\nrisk = { max_order_notional = 1.0 }",
        "$.strategies[0].risk.max_order_notional",
        "1.0 is below the min_notional 5.0 USDT of BTCUSDT",
        id="min-notional-above-a-strategy-limit",
    ),
    pytest.param(
        "[daemon]",
        '[daemon]\non_strategy_error = "ignore"',
        "$.daemon.on_strategy_error",
        "invalid value 'ignore' (expected \"continue\" or \"stop\")",
        id="bad-on-strategy-error",
    ),
    pytest.param(
        'data_dir = "data"',
        f'data_dir = "{"d" * 300}"',
        "$.daemon.data_dir",
        "is 300 bytes: a file name has at most 255",
        id="data-dir-name-too-long",
    ),
    pytest.param(
        'kind = "sim"',
        f'kind = "sample"\nfile = "{"x" * 300}/day.gz"',
        "$.venues[0].file",
        "is 300 bytes: a file name has at most 255",
        id="sample-file-name-too-long",
    ),
    pytest.param(
        'control = "127.0.0.1:8765"',
        f'control = "/tmp/{"s" * 120}.sock"',
        "$.daemon.control",
        "bytes: at most 107",
        id="socket-path-too-long",
    ),
    pytest.param(
        "qty = 0.01 }",
        'qty = 0.01 }\nstate_file = "sma\\u0000.json"',
        "$.strategies[0].state_file",
        "contains a NUL character",
        id="nul-in-a-path",
    ),
    pytest.param(
        "qty = 0.01 }",
        'qty = 0.01 }\nstate_file = "."',
        "$.strategies[0].state_file",
        "is a directory",
        id="state-file-is-a-directory",
    ),
]


@pytest.mark.parametrize(("old", "new", "json_path", "phrase"), MISTAKES)
def test_mistake_is_one_line_naming_file_and_key(
    tmp_path: Path, old: str, new: str, json_path: str, phrase: str
) -> None:
    cfg = write(tmp_path, mutate(old, new))
    (tmp_path / "x.gz").write_bytes(b"")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    err = info.value
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"{cfg}: {json_path}: "), text
    assert phrase in text, text
    assert (err.path, err.code) == (json_path, EXIT_CONFIG)
    assert isinstance(err, UserError)


def test_wrong_type_message_matches_the_documented_form(tmp_path: Path) -> None:
    cfg = write(tmp_path, mutate("max_order_qty = 10.0", 'max_order_qty = "ten"'))
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value) == f"{cfg}: $.risk.max_order_qty: Expected int|float, got str"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, mutate('base = "BTC"', 'base = "BTC'))
    line = VALID.splitlines().index('base = "BTC"') + 1
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{cfg}:{line}: TOML syntax error: "), text
    assert info.value.line == line


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert (
        str(info.value)
        == f"{tmp_path / 'nope.toml'}: cannot read config: No such file or directory"
    )


def test_no_venues_is_an_error(tmp_path: Path) -> None:
    text = VALID.split("[[venues]]")[0] + "[risk]" + VALID.split("[risk]")[1].split("[[")[0]
    with pytest.raises(ConfigError, match=r"\$\.venues: "):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("250ms", 250_000_000),
        ("1s", 10**9),
        ("1m", 60 * 10**9),
        ("5m", 300 * 10**9),
        ("1h", 3600 * 10**9),
        ("1d", 86400 * 10**9),
        ("1w", 7 * 86400 * 10**9),
    ],
)
def test_parse_interval(text: str, ns: int) -> None:
    assert parse_interval(text) == ns


@pytest.mark.parametrize("text", ["", "m", "0m", "1", "1M", "1.5m", "-1m", " 1m", "1min", "01m"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad interval"):
        parse_interval(text)


def test_parse_control() -> None:
    assert parse_control("127.0.0.1:8765").host == "127.0.0.1"
    assert parse_control("[::1]:9000").host == "::1"
    sock = parse_control("/run/tapeloop/control.sock")
    assert sock.is_unix and sock.path == Path("/run/tapeloop/control.sock")
    for bad in ("localhost", "host:", ":80", "host:99999", "host:http"):
        with pytest.raises(ValueError, match="bad control address"):
            parse_control(bad)


def test_a_strategy_id_must_leave_room_in_a_live_venues_client_order_ids(
        tmp_path: Path) -> None:
    """Issue 9, item 8: a 32-character strategy id overflowed Binance's 36-character
    client order ids at order 1000. check-config knows the room: "<prefix>-<id>-<n>"."""
    text = mutate('kind = "sim"', 'kind = "binance"')
    ok = load_config(write(tmp_path, text.replace('id = "sma"', f'id = "{"s" * 19}"')))
    assert ok.strategies[0].id == "s" * 19
    cfg = write(tmp_path, text.replace('id = "sma"', f'id = "{"s" * 20}"'), "long.toml")
    with pytest.raises(ConfigError, match=r"\$\.strategies\[0\]\.id: .*use at most 19"):
        load_config(cfg)
    paper = text.replace('id = "sma"', f'id = "{"s" * 32}"').replace(
        'symbols = ["BTCUSDT"]', 'symbols = ["BTCUSDT"]\npaper = true')
    assert load_config(write(tmp_path, paper, "paper.toml")).strategies[0].paper


def test_a_grid_of_twelve_decimal_places_is_the_finest_accepted(tmp_path: Path) -> None:
    text = mutate("tick_size = 0.01", "tick_size = 0.000000000001").replace(
        "step_size = 0.00001", "step_size = 1e-12").replace("qty = 0.01 }", "qty = 1e-12 }")
    inst = load_config(write(tmp_path, text)).instrument("sim", "BTCUSDT").instrument()
    assert (inst.tick_size, inst.step_size) == (Decimal("1e-12"), Decimal("1e-12"))
    # what the grid is for: the largest float-sized quantity still rounds exactly
    assert inst.round_qty(Decimal("9999999999999999")) == Decimal("9999999999999999")


def test_numbers_are_taken_as_written_everywhere(tmp_path: Path) -> None:
    """The exactness rule holds in every section, and a float that holds the written
    decimal passes whatever its spelling."""
    text = mutate("max_order_qty = 10.0", "max_order_qty = 1e1").replace(
        "qty = 0.01 }", "qty = 1.0e-2 }")
    config = load_config(write(tmp_path, text))
    assert (config.risk.max_order_qty, config.strategies[0].params["qty"]) == (10.0, 0.01)
    with pytest.raises(ConfigError, match=r"\$\.risk\.price_band_pct: 5\.00000000000000000001 "):
        load_config(write(tmp_path, mutate("price_band_pct = 5.0",
                                           "price_band_pct = 5.00000000000000000001")))
    with pytest.raises(ConfigError, match=r"\$\.venues\[0\]\.balances\.USDT: 1E-400 has more"):
        load_config(write(tmp_path, mutate("USDT = 1_000_000.0", "USDT = 1e-400")))


def test_an_initial_positions_file_run_would_refuse_is_refused(tmp_path: Path) -> None:
    """It was only read when the strategy started: a bad file made the strategy fail
    while the daemon said READY."""
    (tmp_path / "pos.csv").write_text("Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,x,1\n")
    cfg = write(tmp_path, VALID + 'initial_positions = "pos.csv"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value).startswith(
        f"{cfg}: $.strategies[0].initial_positions: {tmp_path / 'pos.csv'}:2:"), info.value
    (tmp_path / "pos.csv").write_text("Symbol,Exchange,Quantity,AvgEntryPrice\nETHUSDT,sim,1,1\n")
    with pytest.raises(ConfigError, match=r"\$\.strategies\[0\]\.initial_positions: .*pos\.csv: "
                                          r"a position in ETHUSDT on sim, which is not an "):
        load_config(cfg)  # the paper venue refused to seed it at start
    (tmp_path / "pos.csv").write_text("Symbol,Exchange,Quantity,AvgEntryPrice\nBTCUSDT,sim,1,1\n")
    assert load_config(cfg).strategies[0].initial_positions == tmp_path / "pos.csv"


def test_a_disabled_strategy_is_not_loaded_as_at_start(tmp_path: Path) -> None:
    text = mutate("daemon.strategies.sma_cross:SmaCross", "not_written_yet:Strategy")
    config = load_config(write(tmp_path, text + "enabled = false\n"))
    assert config.strategies[0].enabled is False


def test_a_path_the_system_refuses_is_one_line_not_a_crash(tmp_path: Path) -> None:
    """An over-long path used to escape as OSError from `is_file()` (ENAMETOOLONG)."""
    long_dir = "d" * 300
    for line in (f'initial_positions = "{long_dir}/p.csv"\n',
                 f'state_file = "{long_dir}/s.json"\n'):
        cfg = write(tmp_path, VALID + line)
        with pytest.raises(ConfigError) as info:
            load_config(cfg)
        assert "\n" not in str(info.value)
        assert str(info.value).startswith(f"{cfg}: $.strategies[0].{line.split(' ')[0]}: ")
        assert "300 bytes" in str(info.value)
    with pytest.raises(UserError, match=r"^--data '.*': the name d+\.\.\. is 300 bytes"):
        load_config(write(tmp_path, VALID), data_dir=tmp_path / long_dir)
