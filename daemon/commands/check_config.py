"""`tapeloop check-config FILE`: validate a config without starting anything.

Refuses what `tapeloop run` would refuse at start, first: it is `load_config` (the
schema, the cross-field and grid rules, paths, strategies loaded and their params
checked against the instruments, `initial_positions` parsed), and each sample venue's
recording read whole, as the sample feed reads it at start.

Prints `FILE: ok (N venues, M instruments, K strategies)` and exits 0, or raises the
config's one-line `ConfigError` (exit code EXIT_CONFIG) for `daemon.cli` to print.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the TOML config to check")


def run(args: argparse.Namespace) -> int:
    from daemon.config import ConfigError, load_config

    config = load_config(args.file)
    for i, venue in enumerate(config.venues):
        if venue.kind == "sample" and venue.file is not None:
            symbols = [inst.symbol for inst in config.instruments if inst.venue == venue.name]
            problem = recording_problem(venue.file, venue.name, symbols[0] if symbols else "")
            if problem is not None:
                raise ConfigError(args.file, problem, path=f"$.venues[{i}].file")
    print(
        f"{args.file}: ok ({len(config.venues)} venues, {len(config.instruments)} instruments, "
        f"{len(config.strategies)} strategies)"
    )
    return 0


def recording_problem(path: object, venue: str, symbol: str) -> str | None:
    """Why the sample feed would refuse the recording at `path` at start, or None."""
    import zlib
    from pathlib import Path

    from adapters.binance.stream import read_recording

    events = 0
    try:
        for _ in read_recording(Path(str(path)), venue, symbol):
            events += 1
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # EOFError: a cut gzip
        where = "" if str(path) in str(exc) else f"{path}: "
        return f"not a readable recording: {where}{exc}"
    return None if events else f"{path}: no market events in the recording"
