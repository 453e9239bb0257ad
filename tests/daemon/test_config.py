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
