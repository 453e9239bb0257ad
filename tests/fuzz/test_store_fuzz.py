"""Damaged Parquet parts of a stopped daemon's store: truncated, bytes flipped, garbage
appended or inserted, deleted.

- `tapeloop store check` reports every damage a reader can see (the part no longer
  reads, reads other seqs, or is gone) with the data-directory exit code, and changes
  nothing.
- `tapeloop events` skips a damaged part with one line on stderr, or refuses with one
  line naming it.
- `tapeloop run` on a damaged part of a type recovery needs (orders, fills, state) stops
  at once with the data-directory code and one line naming the part: never a guess at
  the state, and never the crash code a systemd unit restarts in a loop. On a damaged
  market-data part it starts and stops as usual.
- Nothing already recorded is lost: every other part keeps every row, and the damaged
  part is left where it is, as it is.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given, note
from hypothesis import strategies as st

from daemon.recovery import NEEDED
from events.registry import MARKET_TYPES
from events.schema import schema_by_name
from events.store import Part, list_parts, read_manifest
from tests.conftest import REPO, cli_env, eventually, tapeloop_cmd
from tests.fuzz.contract import (
    EXIT_DATA,
    Outcome,
    assert_no_traceback,
    assert_refusal,
    run_cli,
)
from tests.fuzz.damage import KINDS, Damage, damages, tail_damages
from tests.fuzz.paper import Daemon, paper_config
from tests.fuzz.settings import fuzz, note_seed

HERE = "tests/fuzz/test_store_fuzz.py"
RECOVERY_TYPES = frozenset(NEEDED)
MARKET = frozenset(t.__name__ for t in MARKET_TYPES)

def seqs_of(part: Path, type_name: str) -> list[int] | None:
    """The part's seqs if it reads and decodes as the store's reader would; None if not."""
    try:
        table = pq.read_table(part)
        schema_by_name(type_name).from_table(table)
        return table.column("seq").to_pylist()
    except Exception:  # any failure to read is what the fuzz looks for
        return None


def fingerprint(data: Path) -> dict[str, str]:
    """Every file under events/ by its sha256."""
    return {str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((data / "events").rglob("*")) if p.is_file()}


def relative(part: Part, data: Path) -> str:
    return str(part.path.relative_to(data))


@contextmanager
def damaged_store(store: Path, part: Part, damage: Damage) -> Iterator[tuple[Path, Path]]:
    """A copy of `store` with `part` damaged: (data directory, the damaged part)."""
    with tempfile.TemporaryDirectory(prefix="store-fuzz-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(store, data)
        damaged = data / part.path.relative_to(store)
        damage.to_file(damaged)
        yield data, damaged


def parts_of(store: Path, types: frozenset[str] | None = None) -> list[Part]:
    parts = [p for p in list_parts(store / "events") if types is None or p.type in types]
    assert parts, f"the paper run left no part of {sorted(types or [])}"
    return parts


def any_damage(part: Part) -> st.SearchStrategy[Damage]:
    return st.one_of(damages(part.path.stat().st_size, KINDS), st.just(Damage("delete")))


def unreadable_damage(part: Part) -> st.SearchStrategy[Damage]:
    """Damage no Parquet reader can miss: a cut anywhere (the footer goes), or a flip
    in the trailing magic."""
    size = part.path.stat().st_size
    return st.one_of(damages(size, ("truncate",)), tail_damages(size, 4, ("flip",)))


# -- store check ------------------------------------------------------------------------


@fuzz(25)
@given(data=st.data())
def test_store_check_reports_what_a_reader_can_see(stopped_store: Path,
                                                   data: st.DataObject) -> None:
    note_seed(HERE)
    part = data.draw(st.sampled_from(parts_of(stopped_store)), label="part")
    damage = data.draw(any_damage(part), label="damage")
    before = seqs_of(part.path, part.type)
    assert before is not None, f"{part.path} did not read before the damage"
    with damaged_store(stopped_store, part, damage) as (copy, damaged):
        after = None if damage.kind == "delete" else seqs_of(damaged, part.type)
        visible = after != before
        note(f"{relative(part, stopped_store)}: {damage}; a reader "
             f"{'sees it' if visible else 'reads the same seqs'}")
        files = fingerprint(copy)
        out = run_cli("store", "check", "--data", copy)
        assert_no_traceback(out, "from store check")
        assert fingerprint(copy) == files, "store check changed the store"
        if not visible:
            assert out.code in (0, EXIT_DATA), out
            return
        assert out.code == EXIT_DATA, f"store check missed {damage} of {part.path.name}\n{out}"
        if damage.kind != "delete":
            said = out.stdout + out.stderr
            assert part.path.name in said, f"the report does not name {part.path.name}\n{out}"


def test_store_check_passes_a_sound_store(stopped_store: Path) -> None:
    out = run_cli("store", "check", "--data", stopped_store)
    assert out.code == 0 and "Traceback" not in out.stdout + out.stderr, out


# -- events -----------------------------------------------------------------------------


@fuzz(10)
@given(data=st.data())
def test_events_skips_or_refuses_a_damaged_part_in_one_line(stopped_store: Path,
                                                            data: st.DataObject) -> None:
    note_seed(HERE)
    part = data.draw(st.sampled_from(parts_of(stopped_store)), label="part")
    damage = data.draw(unreadable_damage(part), label="damage")
    with damaged_store(stopped_store, part, damage) as (copy, damaged):
        note(f"{relative(part, stopped_store)}: {damage}")
        out = run_cli("events", "--data", copy)
        names = [damaged.name, str(damaged.relative_to(copy))]
        if out.code == 0:  # skipped: said once, the other parts' events all printed
            assert_no_traceback(out)
            lines = out.stderr.rstrip("\n").split("\n")
            assert len(lines) == 1 and any(n in lines[0] for n in names), out
            total = sum(len(seqs_of(p.path, p.type) or []) for p in list_parts(copy / "events"))
            assert out.stdout.count("\n") == total, "a sound part's events are missing"
        else:
            assert_refusal(out, names, "from events")


# -- run --------------------------------------------------------------------------------


def start(copy: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """`tapeloop run` on `copy`, its stdout (the JSON log) and stderr in two files."""
    home = copy.parent
    out, err = home / "stdout.log", home / "stderr.log"
    proc = subprocess.Popen(
        tapeloop_cmd("run", "--config", str(paper_config(home)), "--data", str(copy)),
        stdout=out.open("wb"), stderr=err.open("wb"), env=cli_env(), cwd=REPO)
    return proc, out, err


@fuzz(2)
@given(data=st.data())
def test_run_stops_on_a_damaged_recovery_part_with_one_line(stopped_store: Path,
                                                           data: st.DataObject) -> None:
    note_seed(HERE)
    part = data.draw(st.sampled_from(parts_of(stopped_store, RECOVERY_TYPES)), label="part")
    damage = data.draw(unreadable_damage(part), label="damage")
    with damaged_store(stopped_store, part, damage) as (copy, damaged):
        note(f"{relative(part, stopped_store)}: {damage}")
        assert seqs_of(damaged, part.type) is None, "the damage must be one a reader sees"
        files = fingerprint(copy)
        proc, out, err = start(copy)
        try:
            eventually(lambda: proc.poll() is not None or b'"daemon.ready"' in out.read_bytes(),
                       timeout=60, message="an exit or READY")
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
        outcome = Outcome(("run",), proc.returncode, out.read_text(errors="replace"),
                          err.read_text(errors="replace"))
        assert outcome.code == EXIT_DATA, (
            f"a damaged {part.type} part must stop the start with exit {EXIT_DATA}\n{outcome}")
        assert_refusal(outcome, [damaged.name], "from run")
        assert fingerprint(copy) == files, "the refused start changed the store"


@fuzz(1)
@given(data=st.data())
def test_run_starts_past_a_damaged_market_data_part(stopped_store: Path,
                                                    data: st.DataObject) -> None:
    note_seed(HERE)
    part = data.draw(st.sampled_from(parts_of(stopped_store, MARKET)), label="part")
    damage = data.draw(unreadable_damage(part), label="damage")
    with damaged_store(stopped_store, part, damage) as (copy, damaged):
        note(f"{relative(part, stopped_store)}: {damage}")
        kept = {str(p.path.relative_to(copy)): seqs_of(p.path, p.type)
                for p in list_parts(copy / "events") if p.path != damaged}
        assert all(seqs is not None for seqs in kept.values()), kept
        rolled = read_manifest(copy).rolled_seq
        daemon = Daemon(paper_config(copy.parent), copy, copy.parent / "daemon.log")
        try:
            assert daemon.wait_ready_or_exit(), daemon.text()[-3000:]
        finally:
            code = daemon.stop()
        assert code == 0 and "Traceback" not in daemon.text(), daemon.text()[-3000:]
        [opened] = daemon.lines("daemon.opened")
        assert opened["next_seq"] == rolled + 1, (opened, rolled)
        # nothing recorded is lost: the other parts hold every row, the damaged one is kept
        for name, seqs in kept.items():
            assert seqs_of(copy / name, name.split("type=")[1].split("/")[0]) == seqs, name
        assert damaged.exists(), "the damaged part was removed"

