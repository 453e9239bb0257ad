"""`tapeloop run --config FILE [--data DIR]`: run the daemon."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="TOML config file")
    parser.add_argument("--data", metavar="DIR", help="data directory (overrides daemon.data_dir)")


def run(args: argparse.Namespace) -> int:
    from daemon.config import load_config
    from daemon.kernel import run_kernel
    from daemon.logging import configure_logging

    config = load_config(args.config, data_dir=args.data)
    configure_logging(config.daemon.log_level)
    return run_kernel(config, args.config)
