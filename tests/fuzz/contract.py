"""The rule every hostile input is held to, and the two ways of running `tapeloop`.

The rule (README, issue 10): a user's mistake or a broken environment ends in exit 0,
or in a documented non-zero exit with exactly ONE line on stderr naming the file at
fault; never a traceback.

`run_cli` calls `daemon.cli.main` in this process (fast: no interpreter start, no
imports), `run_process` starts the real `tapeloop` (what a user and systemd see).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon import errors
from tests.conftest import REPO, cli_env, tapeloop_cmd

# Every exit a user may meet besides 0: the EXIT_* codes of daemon/errors.py but the
# crash (70 means a bug of ours, and systemd restarts it) and argparse's usage error
# (the fuzz never mutates the command line).
DOCUMENTED_EXITS = frozenset(
    value for name, value in vars(errors).items()
    if name.startswith("EXIT_") and isinstance(value, int)
) - {errors.EXIT_OK, errors.EXIT_CRASH, errors.EXIT_USAGE}

# The data-directory code issue 10 item 1 adds (a damaged store part, a full disk).
EXIT_DATA = int(getattr(errors, "EXIT_DATA", 6))


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"tapeloop {_clip(' '.join(self.argv), 400)} -> exit {self.code}\n"
                f"--- stderr ---\n{_clip(self.stderr, 4000)}\n"
                f"--- stdout ---\n{_clip(self.stdout, 2000)}")


def _clip(text: str, most: int) -> str:
    """`text`, its middle elided past `most` characters (an over-long path is a
    typical input here)."""
    if len(text) <= most:
        return text
    half = most // 2
    return f"{text[:half]} [...{len(text) - 2 * half} characters...] {text[-half:]}"


def _reset_logging() -> None:
    """Undo the `configure_logging` a command did, as tests/daemon/conftest.py does."""
    import daemon.logging as dlog

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, dlog._StdlibBridge):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def run_cli(*argv: str | Path) -> Outcome:
    """`tapeloop ARGV` in this process: its exit code, stdout and stderr."""
    from daemon.cli import main

    args = tuple(str(a) for a in argv)
    # text streams over bytes, as a terminal's: `tapeloop events` writes to .buffer
    out, err = _stream(), _stream()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        _reset_logging()
    return Outcome(args, code, _text(out), _text(err))


def _stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    if stream.closed:  # a command may close its stderr (a reader that went away)
        return ""
    stream.flush()
    raw = stream.buffer
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue().decode("utf-8", errors="replace")


def run_process(*argv: str | Path, timeout: float = 120) -> Outcome:
    """The real `tapeloop ARGV` as a child process."""
    args = tuple(str(a) for a in argv)
    proc = subprocess.run(tapeloop_cmd(*args), capture_output=True, env=cli_env(), cwd=REPO,
                          timeout=timeout)
    return Outcome(args, proc.returncode, proc.stdout.decode(errors="replace"),
                   proc.stderr.decode(errors="replace"))


def assert_no_traceback(outcome: Outcome, context: str = "") -> None:
    both = outcome.stdout + outcome.stderr
    assert "Traceback" not in both, f"a traceback {context}\n{outcome}"
    assert outcome.code != errors.EXIT_CRASH, f"exit 70 (a crash) {context}\n{outcome}"


def assert_refusal(outcome: Outcome, names: Iterable[str], context: str = "") -> str:
    """A non-zero exit obeys the rule: a documented code, one line on stderr naming
    one of `names` (the file at fault). Returns that line."""
    assert_no_traceback(outcome, context)
    assert outcome.code in DOCUMENTED_EXITS, (
        f"exit {outcome.code} is not a documented code {sorted(DOCUMENTED_EXITS)} {context}\n"
        f"{outcome}")
    # Lines as journald and a terminal count them: str.splitlines() would also split
    # on the \x1c-\x1e separators a fuzzed name may hold.
    lines = outcome.stderr.rstrip("\n").split("\n") if outcome.stderr.strip() else []
    assert len(lines) == 1, f"{len(lines)} lines on stderr, the rule is one {context}\n{outcome}"
    wanted = [str(n) for n in names]
    assert any(n in lines[0] for n in wanted), (
        f"the line names none of {wanted} {context}\n{outcome}")
    return lines[0]


def assert_rule(outcome: Outcome, names: Iterable[str], context: str = "") -> None:
    """Exit 0 with no traceback, or a refusal by the rule."""
    if outcome.code == 0:
        assert_no_traceback(outcome, context)
    else:
        assert_refusal(outcome, names, context)


@contextlib.contextmanager
def captured_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Logging configured at debug into a buffer; the callable parses what was written."""
    from daemon.logging import configure_logging

    buf = io.BytesIO()
    configure_logging("debug", stream=buf)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]

    try:
        yield lines
    finally:
        _reset_logging()
