"""`tapeloop store check --data DIR`: read a whole data directory back and say what is damaged;
`tapeloop store push DIR s3://BUCKET/PREFIX`: upload a store for `--data s3://...`.

Every Parquet part is read in full (page checksums, decoding, order, dates), every
journal segment frame by frame, the manifest, and the sequence (each seq from 1 to
the last in exactly one place): `replay.check`. One line per finding on stdout
(`damaged: PATH: what` or `note: PATH: what`, a note being something the next start
handles, e.g. a torn journal tail), then a summary line. Exit 0 when nothing is
damaged, 6 (EXIT_DATA) otherwise.

The check holds the directory's lock while it reads, so a daemon cannot change the
store under it (a running daemon: exit 4, stop it first). On a read-only disk, where
no lock can be taken and nothing can write either, it reads without one.
"""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from daemon.errors import EXIT_DATA, EXIT_LOCKED, EXIT_OK, UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="read every part and the journal; report damage",
                           description="Read every part, the journal and the manifest of a "
                           "data directory and report what is damaged, one line each.")
    check.add_argument("--data", required=True, metavar="DIR", help="the data directory")
    push = sub.add_parser("push", help="upload a store's manifest and parts to S3",
                          description="Upload DIR's store.json and Parquet parts to "
                          "s3://BUCKET/PREFIX (objects already there with the same size are "
                          "skipped), for `tapeloop replay --data s3://BUCKET/PREFIX`. "
                          "Endpoint and credentials: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                          "AWS_SECRET_ACCESS_KEY.")
    push.add_argument("source", metavar="DIR", help="the data directory")
    push.add_argument("url", metavar="s3://BUCKET/PREFIX", help="where it goes")


def run(args: argparse.Namespace) -> int:
    if args.action == "push":
        return _push(Path(args.source), args.url)
    return _check(Path(args.data), args.data)


def _push(root: Path, url: str) -> int:
    from events.lock import DirLock, StoreLocked
    from events.remote import push_store

    if not (root / "events").is_dir():
        raise UserError(f"{root}: not a tapeloop data directory (no events/)")
    try:
        # a daemon writing it could be half-way through a roll: its parts are not a store
        with DirLock(root):
            stats = push_store(root, url)
    except StoreLocked as exc:
        raise UserError(f"{exc}; stop it before pushing the store", code=EXIT_LOCKED) from None
    print(f"{stats.copied} of {stats.listed} files uploaded ({stats.bytes:,} bytes) to {url}")
    return EXIT_OK


def _check(root: Path, shown: str) -> int:
    from events.lock import DirLock, StoreLocked
    from replay.check import check_store

    if not root.is_dir():
        raise UserError(f"--data {shown}: no such directory")
    if not any((root / name).exists() for name in ("events", "journal", "store.json")):
        raise UserError(f"--data {shown}: not a tapeloop data directory (no events/)")
    lock: DirLock | None = DirLock(root)
    try:
        lock.acquire()  # type: ignore[union-attr]
    except StoreLocked as exc:
        raise UserError(f"{exc}; stop it before checking the store", code=EXIT_LOCKED) from None
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        lock = None  # nothing can write here: read without the lock
    try:
        report = check_store(root)
    finally:
        if lock is not None:
            lock.release()
    for finding in report.findings:
        print(finding.line())
    print(report.summary())
    return EXIT_DATA if report.damaged else EXIT_OK
