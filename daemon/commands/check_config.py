"""`tapeloop check-config FILE`: validate a config without starting anything.

Prints `FILE: ok (N venues, M instruments, K strategies)` and exits 0, or raises the
config's one-line `ConfigError` (exit code EXIT_CONFIG) for `daemon.cli` to print.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the TOML config to check")


def run(args: argparse.Namespace) -> int:
    from daemon.config import load_config

    config = load_config(args.file)
    print(
        f"{args.file}: ok ({len(config.venues)} venues, {len(config.instruments)} instruments, "
        f"{len(config.strategies)} strategies)"
    )
    return 0
