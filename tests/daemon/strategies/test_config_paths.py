"""StrategyConfig's `initial_positions` / `state_file`: resolved against the config's directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ConfigError, load_config
from tests.daemon.test_config import VALID


def test_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    (conf_dir / "seed").mkdir(parents=True)
    (conf_dir / "seed" / "positions.json").write_text("[]")  # a valid, empty list
    path = conf_dir / "c.toml"
    path.write_text(VALID + 'initial_positions = "seed/positions.json"\n'
                            'state_file = "state/sma.json"\n')
    (strat,) = load_config(path).strategies
    assert strat.initial_positions == conf_dir / "seed" / "positions.json"
    assert strat.state_file == conf_dir / "state" / "sma.json"  # need not exist yet


def test_defaults_and_a_missing_positions_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(VALID)
    (strat,) = load_config(path).strategies
    assert (strat.initial_positions, strat.state_file) == (None, None)
    path.write_text(VALID + 'initial_positions = "nope.json"\n')
    with pytest.raises(ConfigError, match=r"\$\.strategies\[0\]\.initial_positions: no such file"):
        load_config(path)
