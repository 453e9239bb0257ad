"""The native build (events/native.py): compiled modules are served all together
and only while the source is the one they were built from; the source runs
otherwise, and both give the same results."""

from __future__ import annotations

import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from events import native, native_build

ROOT = Path(native.__file__).resolve().parent.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(root: Path) -> None:
    """A source tree of the four packages, and a current build of it."""
    for pkg in native.PACKAGES:
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text(f'"""{pkg}"""\n')
    native_build.build(root, root / "build" / "native")


def _fake_compile(root: Path, here: Path, group: str) -> None:
    """What mypyc leaves (empty files where the extension modules go): the
    compiler is the one part these tests leave out (test_a_process_runs... and
    make test use the real build)."""
    compiled.append(here.name)
    for name in [*native.MODULES, group + "__mypyc"]:
        path = (here / "lib").joinpath(*name.split(".")[:-1],
                                       name.rpartition(".")[2] + SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


compiled: list[str] = []


@pytest.fixture(autouse=True)
def _no_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_build, "_compile", _fake_compile)
    compiled.clear()


def _manifest(root: Path, **changes: object) -> None:
    path = root / "build" / "native" / native.MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_each_source_gets_its_own_build_and_the_last_ones_stay(tmp_path: Path) -> None:
    """A new source builds beside the others (its own directory and group), the
    manifest then points at it, a source built before is not compiled again, and
    only the last `KEEP` builds stay: a daemon started from one keeps importing
    from it while a newer one is built."""
    _tree(tmp_path)
    out = tmp_path / "build" / "native"
    tags = [json.loads((out / native.MANIFEST).read_text())["build"]]
    for i in range(native_build.KEEP + 1):
        (tmp_path / "daemon" / "__init__.py").write_text(f"V = {i}\n")
        native_build.build(tmp_path, out)
        tags.append(json.loads((out / native.MANIFEST).read_text())["build"])
    assert len(set(tags)) == len(tags) == len(compiled)
    files, why = native.decide(tmp_path, env={})
    assert files is not None and all(tags[-1] in str(f) for f in files.values()), why
    assert files[native.GROUP + "_" + tags[-1] + "__mypyc"].is_file()
    kept = sorted(d.name for d in out.iterdir() if d.is_dir())
    assert len(kept) == native_build.KEEP and tags[-1] in kept and tags[0] not in kept
    (tmp_path / "daemon" / "__init__.py").write_text(f"V = {native_build.KEEP - 1}\n")
    native_build.build(tmp_path, out)  # the source of a build still kept
    assert len(compiled) == len(tags)  # not compiled again
    assert json.loads((out / native.MANIFEST).read_text())["build"] == tags[-2]


def test_a_current_build_serves_every_compiled_module(tmp_path: Path) -> None:
    _tree(tmp_path)
    files, why = native.decide(tmp_path, env={})
    assert files is not None, why
    group = json.loads((tmp_path / "build" / "native" / native.MANIFEST).read_text())["group"]
    assert set(files) == {*native.MODULES, group} and group.startswith(native.GROUP + "_")
    assert why.startswith("native:")


@pytest.mark.parametrize("edit", ["daemon/trading/oms.py", "replay/report.py",
                                  "events/__init__.py"])
def test_an_edited_module_makes_the_whole_build_stale(tmp_path: Path, edit: str) -> None:
    """Any module of the four packages: the compiled ones were type-checked
    against all of them (and mypyc inlines their constants)."""
    _tree(tmp_path)
    (tmp_path / edit).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / edit).write_text("X = 1\n")
    files, why = native.decide(tmp_path, env={})
    assert files is None and "older than the source" in why


def test_a_module_touched_but_unchanged_keeps_the_build(tmp_path: Path) -> None:
    """A start-up compares sizes and mtimes first; one that differs (a checkout, a
    `touch`) sends it to the digest, which decides."""
    _tree(tmp_path)
    path = tmp_path / "events" / "__init__.py"
    os.utime(path, ns=(1, 1))
    files, why = native.decide(tmp_path, env={})
    assert files is not None, why
    path.write_text(path.read_text().replace("events", "stnev"))  # same size, new text
    os.utime(path, ns=(1, 1))
    files, why = native.decide(tmp_path, env={})
    assert files is None and "older than the source" in why


def test_the_source_runs_when_asked_without_a_build_or_for_another_interpreter(
        tmp_path: Path) -> None:
    _tree(tmp_path)
    assert native.decide(tmp_path, env={"TAPELOOP_NATIVE": "0"}) == (
        None, "source: TAPELOOP_NATIVE=0")
    _manifest(tmp_path, suffix=".cpython-39-x86_64-linux-gnu.so")
    files, why = native.decide(tmp_path, env={})
    assert files is None and "for .cpython-39" in why
    _manifest(tmp_path, suffix=SUFFIX)
    tag = json.loads((tmp_path / "build" / "native" / native.MANIFEST).read_text())["build"]
    lib = tmp_path / "build" / "native" / tag / "lib"
    (lib / "daemon" / "trading" / ("risk" + SUFFIX)).unlink()
    files, why = native.decide(tmp_path, env={})
    assert files is None and "lacks" in why and "risk" in why
    (tmp_path / "build" / "native" / native.MANIFEST).write_text("{not json")
    files, why = native.decide(tmp_path, env={})
    assert files is None and "unreadable" in why
    (tmp_path / "build" / "native" / native.MANIFEST).unlink()
    assert native.decide(tmp_path, env={}) == (
        None, "source: no native build (make native builds it)")


def _child(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _built() -> None:
    files, why = native.decide(ROOT, env={})
    if files is None:
        pytest.skip(f"no current native build here ({why}); make test builds it first")


def test_a_process_runs_the_compiled_modules_all_or_none() -> None:
    """With the build current, every module of it is compiled in a new process,
    whichever package it first imports; with TAPELOOP_NATIVE=0, none is."""
    _built()
    show = ("import {first}, importlib, events.native as n\n"
            "mods = [importlib.import_module(m) for m in n.MODULES]\n"
            "print(sum(map(n.is_native, mods)), n.STATUS)\n")
    for first in ("adapters.binance.parse", "daemon.trading.oms", "replay", "events.bus"):
        count, status = _child(show.format(first=first), TAPELOOP_NATIVE="1").split(" ", 1)
        assert int(count) == len(native.MODULES), (first, status)
        assert status.startswith("native:")
    count, status = _child(show.format(first="daemon"), TAPELOOP_NATIVE="0").split(" ", 1)
    assert int(count) == 0 and status.strip() == "source: TAPELOOP_NATIVE=0"


def test_the_compiled_and_the_source_order_paths_agree() -> None:
    """The deterministic simulation (tests/dst: the OMS, risk, the bus, the journal
    and restarts) on the same seeds, compiled and as source: every seed passes,
    with the same restarts, orders and fills."""
    _built()
    cmd = [sys.executable, "-m", "tests.dst", "--seeds", "60", "--first", "7000",
           "--workers", "1"]
    lines = []
    for mode in ("1", "0"):
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "TAPELOOP_NATIVE": mode})
        assert out.returncode == 0, out.stdout + out.stderr
        line = out.stdout.strip().splitlines()[-1]
        assert "60/60 seeds passed" in line, line
        lines.append(line.split(";")[1])  # restarts, orders, fills
    assert lines[0] == lines[1]
