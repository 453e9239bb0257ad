"""Intraday volume profiles: the average traded volume per time-of-day bucket.

A profile is measured from the recorded trades (or, without trades, bars) of
one (venue, symbol) in a store: each trade's size (bar's volume) is added to
its UTC time-of-day bucket, and each bucket's sum is divided by the number of
recorded days (days with at least one trade or bar), so a profile is "the
volume an average day trades in this bucket".
`vwap` sizes its slices by it (`Profile.weights`).

It is written as a small JSON file (`Profile`, msgspec-encoded), made by

    python -m daemon.strategies.volume_profile --data DIR --venue V --symbol S \
        --bucket 5m --out profile.json

so a run reads a fixed file (a replay stays deterministic whatever the store
gains later) instead of scanning the store at every start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import msgspec

from daemon.config import parse_interval
from events.instruments import to_decimal
from events.market import Bar

__all__ = ["DAY_NS", "Profile", "from_store", "load_profile", "measure"]

DAY_NS = 86_400 * 10**9


class Profile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Average volume per UTC time-of-day bucket (`volumes[i]` covers
    [i × bucket, (i + 1) × bucket) after midnight), over `days` recorded days."""

    venue: str
    symbol: str
    bucket: str  # e.g. "5m"; divides a day
    days: int
    volumes: list[Decimal]

    @property
    def bucket_ns(self) -> int:
        return parse_interval(self.bucket)

    def weights(self, t0: int, step_ns: int, n: int) -> list[Decimal]:
        """The profile's volume in the bucket each of `n` slices starts in (slice k at
        t0 + k × step_ns); all equal when the profile saw nothing then (no slice is
        ever weighted by nothing)."""
        b = self.bucket_ns
        out = [self.volumes[((t0 + k * step_ns) % DAY_NS) // b] for k in range(n)]
        return out if any(out) else [Decimal(1)] * n


def measure(trades: Iterable[tuple[int, Decimal]], bucket_ns: int) -> tuple[list[Decimal], int]:
    """(average volume per bucket, days seen) of `(ts_event ns, size)` pairs."""
    if bucket_ns <= 0 or DAY_NS % bucket_ns:
        raise ValueError(f"a bucket must divide a day, got {bucket_ns} ns")
    sums = [Decimal(0)] * (DAY_NS // bucket_ns)
    days: set[int] = set()
    for ts, size in trades:
        days.add(ts // DAY_NS)
        sums[(ts % DAY_NS) // bucket_ns] += size
    n = len(days)
    return ([s / n for s in sums] if n else sums), n


def from_store(data_dir: Path, venue: str, symbol: str, bucket: str) -> Profile:
    """The profile of `venue`'s `symbol` over every recorded day in the store: from
    its trades, or from its bars (each bar's volume in its opening bucket) when the
    store holds no trades of it."""
    from replay.reader import read_events  # the store's reader: only this command needs it

    bucket_ns = parse_interval(bucket)
    trades: list[tuple[int, Decimal]] = []
    bars: list[tuple[int, Decimal]] = []
    for batch in read_events(data_dir, types=["Trade", "Bar"], symbols=[symbol]):
        for e in batch:
            if e.venue != venue:  # type: ignore[attr-defined]
                continue
            if type(e) is Bar:
                bars.append((e.ts_open, to_decimal(e.volume)))
            else:
                trades.append((e.ts_event, to_decimal(e.size)))  # type: ignore[attr-defined]
    volumes, days = measure(trades or bars, bucket_ns)
    return Profile(venue=venue, symbol=symbol, bucket=bucket, days=days, volumes=volumes)


def load_profile(path: Path) -> Profile:
    """A profile file; ValueError (one line naming the file) if it is not one."""
    try:
        profile = msgspec.json.decode(path.read_bytes(), type=Profile)
        bucket_ns = profile.bucket_ns
    except (OSError, msgspec.DecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not a volume profile: {exc}") from None
    if DAY_NS % bucket_ns or len(profile.volumes) != DAY_NS // bucket_ns:
        raise ValueError(f"{path}: {len(profile.volumes)} volumes do not cover a day "
                         f"of {profile.bucket} buckets")
    if any(v < 0 for v in profile.volumes):
        raise ValueError(f"{path}: a volume is negative")
    return profile


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m daemon.strategies.volume_profile",
                                 description="Measure an intraday volume profile")
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--venue", required=True)
    ap.add_argument("--symbol", required=True)
    ap.add_argument("--bucket", default="5m")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    try:
        profile = from_store(args.data, args.venue, args.symbol, args.bucket)
    except (OSError, ValueError) as exc:  # no such store, a damaged one: one line
        print(f"volume_profile: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    if profile.days == 0:
        print(f"volume_profile: no {args.venue} {args.symbol} trades in {args.data}",
              file=sys.stderr)
        return 2
    args.out.write_bytes(msgspec.json.encode(profile))
    print(f"{args.out}: {profile.days} days, {len(profile.volumes)} buckets of {args.bucket}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
