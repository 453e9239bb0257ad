"""Where a `tapeloop replay`'s wall time goes, whole process: run as a child by
bench_pipeline (`python -m bench.replay_phases SPAWN_TIME -- REPLAY ARGS`).

The replay runs as `tapeloop replay` does (daemon.cli.main); this module only
wraps a few functions to note when each phase ends (bench instrumentation, never
in the product): interpreter start and imports, setting up (config, the first
batch read, the node), the loop, finishing the run (the node's stop, the last
sample, the run's journal rolled into Parquet), writing the report files, and
leaving (the parent times the exit). Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time

SPAWNED = float(sys.argv[1])  # the parent's time.time() just before it spawned us
ENTERED = time.time()
marks: dict[str, float] = {}

import daemon.cli  # noqa: E402  (the imports are a phase: after ENTERED)

daemon.cli.build_parser(daemon.cli._chosen(sys.argv[3:]))  # what main() imports first
import daemon.backtest as backtest  # noqa: E402
import replay.report as report  # noqa: E402

marks["imported"] = time.time()
_drive, _write = backtest._drive, report.ReportBuilder.write


def drive(*args, **kwargs):  # type: ignore[no-untyped-def]
    marks["loop_start"] = time.time()
    try:
        return _drive(*args, **kwargs)
    finally:
        marks["loop_end"] = time.time()


def write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    marks["write_start"] = time.time()
    try:
        return _write(self, *args, **kwargs)
    finally:
        marks["write_end"] = time.time()


backtest._drive = drive
report.ReportBuilder.write = write  # type: ignore[method-assign]


def main() -> None:
    code = daemon.cli.main(sys.argv[3:])
    done = time.time()

    def ms(a: float, b: float) -> float:
        return round((b - a) * 1000, 1)

    print(json.dumps({
        "exit_code": code,
        "interpreter_ms": ms(SPAWNED, ENTERED),
        "imports_ms": ms(ENTERED, marks["imported"]),
        "setup_ms": ms(marks["imported"], marks["loop_start"]),
        "loop_ms": ms(marks["loop_start"], marks["loop_end"]),
        "finish_run_ms": ms(marks["loop_end"], marks["write_start"]),
        "report_write_ms": ms(marks["write_start"], marks["write_end"]),
        "after_report_ms": ms(marks["write_end"], done),
        "main_returned": done,
    }), flush=True)
    module = sys.modules.get("daemon.commands.replay")
    if getattr(module, "EXIT_WITHOUT_TEARDOWN", False):
        import os

        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
