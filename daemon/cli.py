"""`tapeloop` command line: one module per subcommand under `daemon.commands`.

Each command module exposes `add_arguments(parser)` and `run(args) -> int` and
imports its heavy dependencies inside `run`, so `tapeloop --help` stays fast.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from daemon.errors import EXIT_CRASH, EXIT_DATA, UserError, one_line, storage_error


def _structlog_without_rich() -> None:
    """structlog imports rich (and with it attrs and pygments, ~80 modules) for
    its own pretty tracebacks whenever rich is installed: a sixth of a command's
    import time. tapeloop formats exceptions itself (daemon.logging hands the
    console renderer a formatted `exception` string), so structlog is imported
    with rich hidden; rich itself stays importable for the progress bars and
    `tapeloop top`, which import it when they draw."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` -> ImportError
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_structlog_without_rich()


def _arrow_memory_pool() -> None:
    """Arrow's allocator, unless the user chose one (ARROW_DEFAULT_MEMORY_POOL):
    jemalloc on Linux (its wheels ship it). mimalloc, pyarrow's default, kept
    about 35 MB more of a replay's peak RSS (the SPY week: 170 against 135 MB),
    at the same speed. Set before pyarrow is imported, which reads it once."""
    if sys.platform == "linux" and "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")


_arrow_memory_pool()

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("daemon.commands.run", "run the daemon (live or paper, as the config says)"),
    "replay": ("daemon.commands.replay", "replay recorded days through the trading node"),
    "sweep": ("daemon.commands.sweep", "replay a grid of parameters on Dask (local or a cluster)"),
    "import": ("daemon.commands.import_", "import market data files into the event store"),
    "events": ("daemon.commands.events", "print stored events as JSON lines"),
    "store": ("daemon.commands.store", "check a data directory: every part and the journal"),
    "check-config": ("daemon.commands.check_config", "validate a config file"),
    "logs": ("daemon.commands.logs", "human view of tapeloop's JSON log lines"),
    "status": ("daemon.commands.status", "the running daemon's health, trading state and PnL"),
    "positions": ("daemon.commands.positions", "the running daemon's positions"),
    "orders": ("daemon.commands.orders", "the running daemon's open orders"),
    "halt": ("daemon.commands.halt", "halt trading (the kill switch) in the running daemon"),
    "resume": ("daemon.commands.resume", "resume trading in the running daemon"),
    "strategy": ("daemon.commands.strategy", "stop or start a strategy in the running daemon"),
    "top": ("daemon.commands.top", "a live dashboard of the running daemon (q quits)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, the other commands' modules are not
    imported (their names and help still list): a command starts without the
    imports of the fourteen others (the control client's http.client and email
    among them)."""
    parser = argparse.ArgumentParser(
        prog="tapeloop",
        description="Event-sourced trading daemon: live, paper and replay through one loop.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            module = importlib.import_module(module_name)
            module.add_arguments(cmd)
            cmd.set_defaults(_module=module)
    return parser


def _chosen(argv: list[str]) -> str | None:
    """The command named first on the line, if it is one (no global options precede it)."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def entry() -> None:
    """The `tapeloop` program. A command whose module sets `EXIT_WITHOUT_TEARDOWN`
    (a replay: every file it wrote is closed) leaves without the interpreter's
    teardown, which frees each of the run's objects one by one: about 60 ms of a
    replay's wall time."""
    argv = sys.argv[1:]
    if _chosen(argv) == "replay":
        # Start-up allocates ~10^5 objects (modules, classes, the node) that all
        # live: the cyclic collector's passes over them free nothing and cost a
        # replay 20-60 ms. The replay freezes them and re-enables it after its loop.
        gc.disable()
    code = main(argv)
    module_name = COMMANDS.get(_chosen(argv) or "", ("", ""))[0]
    module = sys.modules.get(module_name)
    if getattr(module, "EXIT_WITHOUT_TEARDOWN", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_chosen(argv))
    args = parser.parse_args(argv)
    if args.command != "run":
        # Only the daemon logs to stdout (journald); a one-shot command's stdout
        # is its output, so its warnings go to stderr.
        from daemon.logging import configure_logging

        configure_logging("warning", stream=sys.stderr)
    try:
        return int(args._module.run(args) or 0)
    except UserError as exc:
        # one line is the contract, whatever a library put in the message
        print(f"tapeloop {args.command}: {one_line(exc)}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `tapeloop events | head`: the reader went away; that is not an error.
        sys.stderr.close()
        return 0
    except Exception as exc:
        from events.faults import DataFault

        if isinstance(exc, DataFault) or storage_error(exc):
            # the data directory (or the disk under it) refuses: a person must act
            print(f"tapeloop {args.command}: {one_line(exc)}", file=sys.stderr)
            return EXIT_DATA
        # a bug of ours: crash loudly, with the traceback
        import traceback

        traceback.print_exc()
        return EXIT_CRASH


if __name__ == "__main__":
    entry()
