"""Builds the native modules (see events.native): `make native` runs it.

    python -m events.native_build          # compile, unless the build is current
    python -m events.native_build status   # what a process started now would run, and why
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from events.native import (
    GROUP,
    MANIFEST,
    MODULES,
    OUT,
    PACKAGES,
    ROOT,
    decide,
    source_digest,
    source_stats,
)

_CLASS = re.compile(r"^class \w+", re.M)
_FUTURE = "from __future__ import annotations\n"


def _snapshot_source(text: str) -> str:
    """A compiled module's snapshot: each top-level class may be subclassed by
    interpreted code."""
    if _FUTURE not in text:
        raise ValueError("a compiled module starts with `from __future__ import annotations`")
    text = _CLASS.sub(lambda m: "@_mypyc_attr(allow_interpreted_subclasses=True)\n"
                      + m.group(0), text)
    return text.replace(_FUTURE, _FUTURE + "from mypy_extensions import mypyc_attr as "
                        "_mypyc_attr\n", 1)


KEEP = 3  # builds kept: a process started from an older one may still import from it


def build(root: Path = ROOT, out: Path = OUT) -> Path:
    """Compile `MODULES` from a snapshot of `root`'s packages into a directory of
    `out` named after the source's digest, then point `out`'s manifest at it
    (replaced whole, last: until then the previous build or the source runs).

    Each build has its own directory and its own mypyc group name, and the last
    `KEEP` stay: a running daemon that imports a compiled module late (a venue
    started by a reload) finds the build it started with, never a newer one's
    half (whose group library would not match the one it has loaded)."""
    digest, stats = source_digest(root), source_stats(root)
    tag = digest[:16]
    group = f"{GROUP}_{tag}"
    here = out / tag
    if not (here / MANIFEST).is_file():  # a build of this very source is reused
        if here.exists():
            shutil.rmtree(here)  # a build that failed half-way
        _compile(root, here, group)
        (here / MANIFEST).write_text(json.dumps({"digest": digest}) + "\n")
    manifest = {"build": tag, "digest": digest, "modules": list(MODULES),
                "group": group + "__mypyc",
                "suffix": importlib.machinery.EXTENSION_SUFFIXES[0], "stats": stats}
    fresh = out / (MANIFEST + ".new")
    fresh.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(fresh, out / MANIFEST)
    builds = sorted((d for d in out.iterdir() if d.is_dir() and d.name != tag),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)
    return here


# The group's C, one file per module (mypyc's multi_file), compiled on every core:
# setuptools compiles an extension's sources one after the other, and the one C file
# of a group without multi_file took ~75 of the build's ~90 s on one core of two
# (~49 s in all this way, on the 2-core VM of the README).
_PARALLEL_COMPILE = (
    "import os\n"
    "from concurrent.futures import ThreadPoolExecutor\n"
    "from setuptools._distutils import ccompiler\n"
    "_one_by_one = ccompiler.CCompiler.compile\n"
    "def _on_every_core(self, sources, *args, **kwargs):\n"
    "    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:\n"
    "        done = pool.map(lambda s: _one_by_one(self, [s], *args, **kwargs), sources)\n"
    "        return [obj for objs in done for obj in objs]\n"
    "ccompiler.CCompiler.compile = _on_every_core\n")


def _compile(root: Path, here: Path, group: str) -> None:
    src = here / "src"
    for pkg in PACKAGES:
        shutil.copytree(root / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    paths = []
    for name in MODULES:
        path = src.joinpath(*name.split(".")).with_suffix(".py")
        path.write_text(_snapshot_source(path.read_text()))
        paths.append(path.relative_to(src).as_posix())
    script = (
        _PARALLEL_COMPILE +
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name={group!r}, ext_modules=mypycify({paths!r}, group_name={group!r},\n"
        "                                          multi_file=True),\n"
        f"      script_args=['build_ext', '--build-lib', {str(here / 'lib')!r},\n"
        f"                   '--build-temp', {str(here / 'tmp')!r}])\n")
    env = dict(os.environ, TAPELOOP_NATIVE="0")
    result = subprocess.run([sys.executable, "-c", script], cwd=src, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                  if "error" in line.lower()]
        raise SystemExit("native build failed:\n" + "\n".join(errors[-20:] or
                                                                [result.stderr[-2000:]]))
    for scratch in ("src", "tmp"):  # the snapshot, the C and the objects: megabytes
        shutil.rmtree(here / scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        if decide()[0] is not None:
            print(f"native build is current: {decide()[1]}")
            return 0
        here = build()
        print(f"native build: {len(MODULES)} modules compiled into {here}")
        return 0
    if args == ["status"]:
        print(decide()[1])
        return 0
    print("usage: python -m events.native_build [status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
