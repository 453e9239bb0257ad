"""`tapeloop logs` as a real child process: format, filters, pass-through, follow, pipes."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import REPO, cli_env, tapeloop_cmd

DEADLINE_S = 20.0


def jline(**fields: Any) -> str:
    return json.dumps(fields) + "\n"


LOG = "".join(
    [
        jline(
            ts="2024-05-01T12:00:00.123456Z",
            level="info",
            event="journal.opened",
            logger="tapeloop.kernel",
            path="/var/lib/tapeloop",
        ),
        jline(ts="2024-05-01T12:00:01.5Z", level="debug", event="bus.tick", n=1),
        jline(
            ts="2024-05-01T12:00:02Z",
            level="warning",
            event="order.rejected",
            strategy_id="sma",
            client_order_id="sma-7",
            check="max_order_qty",
            reason="qty 12 > 10",
        ),
        "not json at all\n",
        jline(
            ts="2024-05-01T12:00:03.000001Z",
            level="error",
            event="strategy.failed",
            strategy_id="mm",
            exc='Traceback (most recent call last):\n  File "x.py"\nValueError: boom',
        ),
        jline(
            ts="2024-05-01T12:00:04.250Z",
            level="info",
            event="journal.segment_rolled",
            segment="000001",
            rows=3,
            ok=True,
            extra={"a": [1, 2]},
            empty="",
        ),
    ]
)


def logs(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tapeloop_cmd("logs", *args),
        cwd=REPO,
        env=env or cli_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "tapeloop.log"
    path.write_text(LOG)
    return path


def test_human_format_and_pass_through(log_file: Path) -> None:
    proc = logs(str(log_file))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == [
        "2024-05-01 12:00:00.123Z [info     ] journal.opened                 "
        "[tapeloop.kernel] path=/var/lib/tapeloop",
        "2024-05-01 12:00:01.500Z [debug    ] bus.tick                       n=1",
        "2024-05-01 12:00:02.000Z [warning  ] order.rejected                 strategy_id=sma "
        "client_order_id=sma-7 check=max_order_qty reason='qty 12 > 10'",
        "not json at all",
        "2024-05-01 12:00:03.000Z [error    ] strategy.failed                strategy_id=mm",
        "Traceback (most recent call last):",
        '  File "x.py"',
        "ValueError: boom",
        "2024-05-01 12:00:04.250Z [info     ] journal.segment_rolled         segment=000001 "
        "rows=3 ok=True extra={'a': [1, 2]} empty=",
    ]
    assert "\x1b[" not in proc.stdout  # not a TTY: no colour


def test_logs_renders_with_the_daemons_console_renderer(log_file: Path) -> None:
    """`tapeloop logs` and `tapeloop run` on a terminal print a record the same way."""
    from daemon.logging import render_console

    records = [json.loads(line) for line in LOG.splitlines() if line.startswith("{")]
    want = "\n".join(render_console(r, colors=True) for r in records)
    shown = logs("--color", "always", str(log_file)).stdout
    assert shown.replace("not json at all\n", "") == want + "\n"


def test_stdin_and_dash_read_the_same(log_file: Path) -> None:
    from_file = logs(str(log_file)).stdout
    assert logs("-", stdin=LOG).stdout == from_file
    assert logs(stdin=LOG).stdout == from_file


@pytest.mark.parametrize(
    ("args", "events"),
    [
        (["--level", "warning"], ["order.rejected", "strategy.failed"]),
        (
            ["--level", "info"],
            ["journal.opened", "order.rejected", "strategy.failed", "journal.segment_rolled"],
        ),
        (["--event", "journal."], ["journal.opened", "journal.segment_rolled"]),
        (["--event", "order", "--event", "bus"], ["bus.tick", "order.rejected"]),
        (["--strategy", "sma"], ["order.rejected"]),
        (["--strategy", "sma", "--strategy", "mm", "--level", "error"], ["strategy.failed"]),
    ],
)
def test_filters(log_file: Path, args: list[str], events: list[str]) -> None:
    proc = logs(*args, str(log_file))
    assert proc.returncode == 0, proc.stderr
    shown = re.findall(r"^[-\d]{10} [:.\dZ]{13} \[\w+ *\] (\S+)", proc.stdout, flags=re.M)
    assert shown == events
    assert "not json at all\n" in proc.stdout  # non-JSON lines always pass


def test_colour_only_when_asked_or_on_a_tty(log_file: Path) -> None:
    coloured = logs("--color", "always", str(log_file)).stdout
    assert "\x1b[31m\x1b[1merror    \x1b[0m" in coloured
    env = cli_env() | {"NO_COLOR": "1"}
    assert "\x1b[" not in logs("--color", "auto", str(log_file), env=env).stdout


def test_missing_file_is_one_line() -> None:
    proc = logs("/nonexistent/tapeloop.log")
    assert proc.returncode != 0
    [line] = proc.stderr.splitlines()
    assert "/nonexistent/tapeloop.log" in line and "No such file" in line


# --- following ----------------------------------------------------------------------


class Child:
    """A running `tapeloop logs` whose stdout lines arrive on a queue (read by a thread)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            tapeloop_cmd("logs", *args),
            cwd=REPO,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A shell may start us with SIGINT ignored; the child must see Ctrl-C.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError(f"no {what} within {DEADLINE_S}s; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"logs exited before {what}; saw {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=DEADLINE_S)


@pytest.fixture
def follow(log_file: Path) -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(*args: str) -> Child:
        children.append(Child(*args))
        return children[-1]

    yield start
    for child in children:
        child.stop()


def event_line(event: str) -> Callable[[str], bool]:
    return lambda line: f" {event}" in line


def test_follow_sees_appended_truncated_and_rotated_lines(
    log_file: Path, follow: Callable[..., Child]
) -> None:
    child = follow("-f", "--level", "info", str(log_file))
    child.wait_for(event_line("journal.segment_rolled"), "the existing lines")

    with log_file.open("a") as fh:  # appended, in two writes split mid-line
        line = jline(ts="2024-05-01T12:01:00Z", level="info", event="follow.appended", k="v")
        fh.write(line[:10])
        fh.flush()
        fh.write(line[10:])
    assert child.wait_for(event_line("follow.appended"), "the appended line") == (
        "2024-05-01 12:01:00.000Z [info     ] follow.appended                k=v"
    )

    log_file.write_text(jline(ts="2024-05-01T12:02:00Z", level="info", event="follow.truncated"))
    child.wait_for(event_line("follow.truncated"), "the line after truncation")

    log_file.rename(log_file.with_suffix(".log.1"))
    log_file.write_text(jline(ts="2024-05-01T12:03:00Z", level="info", event="follow.rotated"))
    child.wait_for(event_line("follow.rotated"), "the line after rotation")

    assert child.proc.poll() is None  # still following


def test_follow_stops_cleanly_on_ctrl_c(log_file: Path, follow: Callable[..., Child]) -> None:
    child = follow("-f", str(log_file))
    child.wait_for(event_line("journal.segment_rolled"), "the existing lines")
    child.proc.send_signal(signal.SIGINT)
    assert child.proc.wait(timeout=DEADLINE_S) == 130
    assert child.proc.stderr is not None
    assert child.proc.stderr.read() == ""  # no traceback


def test_broken_pipe_is_not_an_error(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_text(LOG * 5000)  # far more than a pipe buffer
    proc = subprocess.Popen(
        tapeloop_cmd("logs", str(big)),
        cwd=REPO,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"2024-05-01 12:00:00.123Z [info")
    proc.stdout.close()  # `| head -1`: the reader goes away
    assert proc.wait(timeout=DEADLINE_S) == 0
    assert proc.stderr.read() == b""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
special_keys = st.sampled_from(["ts", "level", "event", "logger", "exc", "exception",
                                "exc_info", "stack", "strategy_id"])


@given(st.dictionaries(special_keys | st.text(max_size=8), json_values, max_size=8))
def test_any_json_object_renders_without_error(record: dict[str, Any]) -> None:
    """Whatever a JSON line holds, `tapeloop logs` shows it (or filters it): never a crash."""
    from daemon.commands.logs import LineView

    line = json.dumps(record)
    views = (LineView(), LineView(strategies=["s"]),
             LineView(level="warning", events=["a"], strategies=["s"], colour=True))
    for view in views:
        shown = view.render(line)
        assert shown is None or isinstance(shown, str)
