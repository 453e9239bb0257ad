"""Perpetual instruments in the config: the keys build the exact instrument, and
each mistake is one line naming the key (hedge mode, leverage above the tiers'
maximum, tiers out of order, perpetual keys on a spot instrument, a contract
size tapeloop does not trade)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config

BASE = """\
[[venues]]
name = "fut"
balances = {{ USDT = 1000.0 }}
{venue}
[[instruments]]
venue = "fut"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.1
step_size = 0.001
kind = "perpetual"
{inst}
[risk]
max_order_qty = 1.0
max_order_notional = 100000.0
max_position_qty = 1.0
daily_loss_limit = 100.0
max_orders_per_s = 5
price_band_pct = 5.0

[[strategies]]
id = "s"
class = "daemon.strategies.sma_cross:SmaCross"
venue = "fut"
symbols = ["BTCUSDT"]
params = {{ fast = 2, slow = 3, qty = 0.001 }}
"""


def load(tmp_path: Path, venue: str = "", inst: str = ""):  # type: ignore[no-untyped-def]
    path = tmp_path / "perp.toml"
    path.write_text(BASE.format(venue=venue, inst=inst))
    return load_config(path)


def test_a_perpetual_builds_its_tiers_and_settings(tmp_path: Path) -> None:
    config = load(tmp_path, inst="leverage = 5\nmargin_mode = \"isolated\"\nmargin_tiers = ["
                  "{cap = 50000.0, maint_rate = 0.004, max_leverage = 125}, "
                  "{cap = 250000.0, maint_rate = 0.005, max_leverage = 100}]")
    inst = config.instruments[0].instrument()
    assert inst.perpetual and inst.settle == "USDT" and inst.max_leverage == 125
    assert [t.maint_amount for t in inst.margin_tiers] == [D(0), D(50)]
    assert config.instruments[0].margin_mode == "isolated"


def test_the_default_tier(tmp_path: Path) -> None:
    inst = load(tmp_path).instruments[0].instrument()
    assert len(inst.margin_tiers) == 1 and inst.margin_tiers[0].maint_rate == D("0.005")
    assert inst.max_leverage == 20


@pytest.mark.parametrize(("venue", "inst", "where", "words"), [
    ('position_mode = "hedge"', "", "$.venues[0].position_mode", "hedge mode"),
    ("", "leverage = 30", "$.instruments[0].leverage", "above the instrument's max"),
    ("", "margin_tiers = [{cap = 100.0, maint_rate = 0.01, max_leverage = 50}, "
         "{cap = 50.0, maint_rate = 0.02, max_leverage = 20}]",
     "$.instruments[0].margin_tiers", "must ascend"),
    ("", "contract_size = 0.01", "$.strategies[0].symbols[0]", "contract size 0.01"),
])
def test_each_mistake_is_one_line_naming_the_key(tmp_path: Path, venue: str, inst: str,
                                                 where: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, venue, inst)
    assert where in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


def test_perpetual_keys_on_a_spot_instrument_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "spot.toml"
    path.write_text(BASE.format(venue="", inst="").replace('kind = "perpetual"',
                                                            "leverage = 3"))
    with pytest.raises(ConfigError, match=r"\$\.instruments\[0\]\.leverage: only valid"):
        load_config(path)
