"""`tapeloop check-config` on mutated shipped configs (`configs/*.toml`): exit 0, or exit
3 (or another documented code) with ONE line on stderr naming the file; never a
traceback, never the crash code.

Most examples run `daemon.cli.main` in this process (no interpreter start: fast); a few
run the real `tapeloop` process, as a user would. The config is written beside a link
to `configs/samples`, so its relative `file = "samples/..."` still resolves.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.fuzz.config_mutation import Doc, dumps, known_holes, mutations
from tests.fuzz.contract import Outcome, assert_rule, run_cli, run_process
from tests.fuzz.damage import damages
from tests.fuzz.settings import fuzz, note_seed
from tests.fuzz.start_probe import start_probe

CONFIGS = sorted((REPO / "configs").glob("*.toml"))
HERE = "tests/fuzz/test_config_fuzz.py"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory to write mutated configs into, with configs/samples linked in."""
    path = tmp_path_factory.mktemp("configs")
    (path / "samples").symlink_to(REPO / "configs" / "samples", target_is_directory=True)
    return path


def load(config: Path) -> Doc:
    return tomllib.loads(config.read_text())


def check(home: Path, name: str, body: bytes, *, process: bool = False) -> Outcome:
    """check-config keeps the rule; a config it accepts is one `run` starts."""
    path = home / name
    path.write_bytes(body)
    out = (run_process if process else run_cli)("check-config", path)
    assert_rule(out, [str(path), path.name], f"for the config {path}")
    if out.code == 0 and not process:
        refusal, from_exchange = start_probe(path, home / "data")
        if from_exchange:
            # a ccxt venue's grid is the exchange's, which check-config cannot ask (no
            # network): run may refuse at start, in one line (never silently)
            assert refusal is None or "\n" not in refusal, refusal
        else:
            assert refusal is None, f"check-config accepted {path}, run refuses it: {refusal}"
    return out


def test_every_shipped_config_passes_and_is_fuzzed() -> None:
    """The starting points are good configs, so a refusal below is the mutation's."""
    assert len(CONFIGS) >= 5, CONFIGS
    for config in CONFIGS:
        out = run_cli("check-config", config)
        assert out.code == 0 and ": ok (" in out.stdout, out


@fuzz(40)
@given(data=st.data())
def test_mutated_config_passes_or_is_one_line(home: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    source = data.draw(st.sampled_from(CONFIGS), label="config")
    doc = load(source)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not doc:
            break
        mutation = data.draw(mutations(doc))
        note(f"mutation: {mutation}")
        mutation.apply(doc)
    check(home, f"fuzz-{source.name}", dumps(doc).encode())


@fuzz(15)
@given(data=st.data())
def test_damaged_config_text_is_one_line(home: Path, data: st.DataObject) -> None:
    note_seed(HERE)
    source = data.draw(st.sampled_from(CONFIGS), label="config")
    body = source.read_bytes()
    damage = data.draw(damages(len(body)), label="damage")
    check(home, f"damaged-{source.name}", damage.apply(body))


@pytest.mark.parametrize("source", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_known_holes_pass_or_are_one_line(home: Path, source: Path) -> None:
    """What issue 10 found getting through (or crashing) check-config."""
    holes = known_holes(load(source))
    assert holes, f"{source.name}: no known hole applies (the fuzz would exercise nothing)"
    for hole in holes:
        doc = load(source)
        hole.apply(doc)
        check(home, f"hole-{source.name}", dumps(doc).encode())


@fuzz(3)
@given(data=st.data())
def test_mutated_config_in_a_real_process(home: Path, data: st.DataObject) -> None:
    """The same rule seen from outside: what systemd and a shell get."""
    note_seed(HERE)
    source = data.draw(st.sampled_from(CONFIGS), label="config")
    doc = load(source)
    mutation = data.draw(mutations(doc))
    note(f"mutation: {mutation}")
    mutation.apply(doc)
    check(home, f"process-{source.name}", dumps(doc).encode(), process=True)
