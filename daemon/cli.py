"""`tapeloop` command line: one module per subcommand under `daemon.commands`.

Each command module exposes `add_arguments(parser)` and `run(args) -> int` and
imports its heavy dependencies inside `run`, so `tapeloop --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from daemon.errors import EXIT_CRASH, EXIT_DATA, UserError, one_line, storage_error

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tapeloop",
        description="Event-sourced trading daemon: live, paper and replay through one loop.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
    sys.exit(main())
