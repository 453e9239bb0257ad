"""The native build: the order path's synchronous modules compiled with mypyc.

An order's path from a market-data frame to its signed request is ~40 µs of
plain Python over ~160 calls (bench/tick_to_order_stages.py); the same source
compiled runs it in ~31 µs of CPU. `python -m events.native_build` (`make
native`; `make run`, `make test` and `make bench` go through it) compiles
`MODULES` from a snapshot of the source into build/native/<digest>/, one directory
(and one mypyc group) per source, and points build/native/manifest.json at it with
the digest of every module of the four packages it saw.

`install()` serves the compiled modules in place of their source: all of them or
none. Each top-level package (events, adapters, daemon, replay) calls it before
anything else, so it runs before any of `MODULES` is imported. The compiled ones
are used only when
- the manifest's digest equals the source's now: an edited module (or one the
  compiled ones were type-checked against) is never shadowed by a stale build;
  the source runs, and `STATUS` says why (the daemon logs it as it starts);
- the build is for this interpreter (its extension suffix);
- `TAPELOOP_NATIVE` is not "0" (the source runs regardless).

mypyc compiles the source as written and checks each annotated argument's type
at run time: the tests pass both ways. Only synchronous modules are compiled:
compiled coroutines crashed asyncio's debug-mode repr of a task (a segmentation
fault in a test), so nothing here is `async`. Every compiled class keeps
interpreted subclasses possible (user strategies subclass `Strategy`, tools and
tests subclass others): the build adds mypyc's `allow_interpreted_subclasses` to
each class in its snapshot, so the source carries no build-only decorators.

    python -m events.native_build          # compile if stale (what make native runs)
    python -m events.native_build status   # what a process started now would run, and why
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

# The synchronous modules on an order's path, in the order it crosses them.
MODULES = (
    "adapters.binance.parse",
    "events.bus",
    "daemon.strategies.routing",
    "daemon.strategies.runtime",
    "daemon.strategies.base",
    "daemon.trading.oms",
    "daemon.trading.order_book",
    "daemon.trading.risk",
    "daemon.trading.risk_fast",
    "adapters.binance.order_query",
    "adapters.binance.signing",
    "adapters.binance.ratelimit",
)
PACKAGES = ("events", "adapters", "daemon", "replay")
GROUP = "tapeloop_native"  # mypyc's shared library: GROUP + "__mypyc"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "native"
MANIFEST = "manifest.json"

STATUS = "source: not decided yet"  # what install() chose, and why
_installed = False


def _sources(root: Path) -> list[str]:
    """Every module of `PACKAGES` under `root`, as sorted paths relative to it."""
    out: list[str] = []
    for pkg in PACKAGES:
        for where, dirs, files in os.walk(root / pkg):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            out.extend(os.path.relpath(os.path.join(where, f), root)
                       for f in files if f.endswith(".py"))
    return sorted(out)


def source_digest(root: Path = ROOT) -> str:
    """sha256 over every module of `PACKAGES` under `root` (path and content)."""
    h = hashlib.sha256()
    for rel in _sources(root):
        h.update(rel.encode())
        h.update(b"\0")
        h.update((root / rel).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def source_stats(root: Path = ROOT) -> dict[str, list[int]]:
    """Each module's size and mtime (ns): a start-up compares these first (~1 ms
    against ~6 for the digest), and reads the digest only when one differs."""
    out = {}
    for rel in _sources(root):
        st = os.stat(root / rel)
        out[rel] = [st.st_size, st.st_mtime_ns]
    return out


def decide(root: Path = ROOT, out: Path | None = None,
           env: Any = os.environ) -> tuple[dict[str, Path] | None, str]:
    """The compiled modules to serve (name -> file), or None, and why."""
    if env.get("TAPELOOP_NATIVE", "") == "0":
        return None, "source: TAPELOOP_NATIVE=0"
    out = out if out is not None else root / "build" / "native"
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "source: no native build (make native builds it)"
    except (OSError, ValueError) as exc:
        return None, f"source: unreadable native manifest {out / MANIFEST}: {exc}"
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if manifest.get("suffix") != suffix:
        return None, (f"source: the native build is for {manifest.get('suffix')}, "
                      f"this interpreter loads {suffix} (make native rebuilds it)")
    if manifest.get("stats") != source_stats(root) and \
            manifest.get("digest") != source_digest(root):
        return None, "source: the native build is older than the source (make native rebuilds it)"
    lib = out / manifest["build"] / "lib"
    files = {name: lib.joinpath(*name.split(".")[:-1], name.rpartition(".")[2] + suffix)
             for name in [*manifest["modules"], manifest["group"]]}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        return None, f"source: the native build lacks {missing[0]} (make native rebuilds it)"
    return files, f"native: {len(manifest['modules'])} modules compiled ({lib.parent})"


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, fullname: str, path: Any = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


def install() -> None:
    """Serve the compiled modules if the build is current (see the module doc).
    Idempotent; a no-op once any of `MODULES` has been imported as source."""
    global STATUS, _installed
    if _installed:
        return
    _installed = True
    if any(name in sys.modules for name in MODULES):
        STATUS = "source: imported before the native build could be installed"
        return
    files, STATUS = decide()
    if files is not None:
        sys.meta_path.insert(0, _Finder(files))


def is_native(module: ModuleType) -> bool:
    """Whether `module` runs compiled."""
    return str(getattr(module, "__file__", "")).endswith(tuple(
        importlib.machinery.EXTENSION_SUFFIXES))


install()
