"""`tapeloop run --config FILE [--data DIR] [--log-format auto|console|json]`: run the daemon."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument("--data", metavar="DIR", help="data directory (overrides daemon.data_dir)")
    parser.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        help="console: coloured lines for people; json: one object a line for journald and "
        "`tapeloop logs`; auto (daemon.log_format's default): console on a terminal, "
        "else json",
    )


def run(args: argparse.Namespace) -> int:
    from daemon.config import load_config
    from daemon.kernel import run_kernel
    from daemon.logging import configure_logging

    config = load_config(args.config, data_dir=args.data)
    configure_logging(config.daemon.log_level, fmt=args.log_format or config.daemon.log_format)
    return run_kernel(config, args.config)
