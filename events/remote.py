"""A store on object storage: `s3://bucket/prefix` mirrored into a local cache.

`local_store(data, ...)` turns what `--data` names into a local data directory. A
local path is returned as it is. An `s3://` URL is mirrored into
`$TAPELOOP_CACHE_DIR/<hash of the URL>` (default `~/.cache/tapeloop/stores/...`),
holding `store.json` and only the parts of the dates and event types asked for, and
the replay reads that directory like any other.

Why a mirror rather than reading Parquet straight from S3: the reader keeps every
integrity check it has (footer counts, page checksums, row counts against the
footer) on plain files, a sweep worker replays the same days many times and reads
them from local disk after the first, and the remote is listed once per run instead
of once per part footer and row group.

A mirrored file is identified by the remote object's size and modification time:
the local copy is given the remote's mtime, so `stat` tells whether it is current
and no index has to be kept in step with the files. What is missing or changed is
downloaded to a hidden temporary name and renamed into place (the reader skips
hidden names); local parts that the remote no longer has, within the dates and
types asked for, are removed so a rewritten store never replays a stale part.
Several processes syncing one cache wait for each other on a `flock`, so each file
is downloaded once.

The journal (a running daemon's events not rolled into Parquet yet) is not
mirrored: a store on object storage is a recorded one, read from its parts.

Endpoint and credentials come from the standard places: `AWS_ENDPOINT_URL` (or
`?endpoint_override=HOST:PORT&scheme=http` on the URL), and the AWS SDK's chain
(`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `~/.aws`, instance metadata). No
secret is ever put in a message. `push_store` uploads a local store the same way.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from events.faults import DataFault

_QUERY_KEYS = frozenset({"endpoint_override", "scheme", "region", "anonymous"})
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_COPY_CHUNK = 1 << 20
_DOWNLOAD_THREADS = 8


class RemoteStoreError(DataFault):
    """The remote store cannot be reached or used (one line naming the URL).

    A `DataFault`, so the CLI prints it as one line and exits 6 (EXIT_DATA)."""


@dataclass(frozen=True, slots=True)
class RemoteStore:
    """A parsed `s3://bucket/prefix[?options]` URL."""

    url: str  # as the user gave it, minus the query (messages show this)
    bucket: str
    prefix: str  # no leading or trailing "/"; "" for the bucket's root
    endpoint: str | None
    scheme: str | None
    region: str | None
    anonymous: bool

    @property
    def root(self) -> str:
        """The store's root as a pyarrow S3 path (`bucket/prefix`)."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def where(self) -> str:
        """The URL for messages: with the endpoint when it is not AWS's."""
        return f"{self.url} (endpoint {self.endpoint})" if self.endpoint else self.url

    def key(self) -> str:
        """What names its cache directory: the endpoint and the path, never a credential."""
        return f"{self.endpoint or ''}|{self.scheme or ''}|{self.root}"


def is_remote(data: str | os.PathLike[str]) -> bool:
    return isinstance(data, str) and "://" in data


def parse_url(url: str) -> RemoteStore:
    """`s3://bucket/prefix?endpoint_override=..&scheme=http` as a RemoteStore, or
    RemoteStoreError naming what is wrong with it."""
    parts = urlsplit(url)
    shown = url.split("?", 1)[0]
    if parts.scheme != "s3":
        raise RemoteStoreError(f"{shown}: only s3:// URLs are supported (or a local directory)")
    if not parts.netloc:
        raise RemoteStoreError(f"{shown}: no bucket (s3://BUCKET/PREFIX)")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _QUERY_KEYS)
    if unknown:
        raise RemoteStoreError(f"{shown}: unknown option {unknown[0]!r} "
                               f"(known: {', '.join(sorted(_QUERY_KEYS))})")
    endpoint = options.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL") or None
    scheme = options.get("scheme") or None
    if endpoint is not None and "://" in endpoint:
        # AWS_ENDPOINT_URL is a URL (http://host:port); pyarrow wants host:port + scheme
        ep = urlsplit(endpoint)
        scheme = scheme or ep.scheme
        endpoint = ep.netloc + ep.path.rstrip("/")
    if scheme not in (None, "http", "https"):
        raise RemoteStoreError(f"{shown}: scheme {scheme!r} is not http or https")
    anonymous = options.get("anonymous", "").lower() in ("1", "true", "yes")
    return RemoteStore(url=shown, bucket=parts.netloc, prefix=parts.path.strip("/"),
                       endpoint=endpoint, scheme=scheme,
                       region=options.get("region") or None, anonymous=anonymous)


def _filesystem(store: RemoteStore):  # -> pyarrow.fs.S3FileSystem
    from pyarrow import fs

    kwargs: dict[str, object] = {"connect_timeout": 5.0, "request_timeout": 60.0,
                                 "retry_strategy": fs.AwsStandardS3RetryStrategy(max_attempts=3)}
    if store.endpoint:
        kwargs["endpoint_override"] = store.endpoint
    if store.scheme:
        kwargs["scheme"] = store.scheme
    if store.region:
        kwargs["region"] = store.region
    if store.anonymous:
        kwargs["anonymous"] = True
    try:
        return fs.S3FileSystem(**kwargs)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for bad options
        raise RemoteStoreError(f"{store.where()}: {exc}") from None


def default_cache_root() -> Path:
    env = os.environ.get("TAPELOOP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/tapeloop/stores").expanduser()


def cache_dir_for(store: RemoteStore, cache_root: Path | None = None) -> Path:
    digest = hashlib.sha256(store.key().encode()).hexdigest()[:20]
    return (cache_root or default_cache_root()) / digest


@dataclass(slots=True)
class SyncStats:
    """What one sync did (for tests and the log)."""

    listed: int = 0
    copied: int = 0  # files downloaded (sync) or uploaded (push)
    bytes: int = 0
    removed: int = 0


def local_store(
    data: str | os.PathLike[str],
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    types: Collection[str] | None = None,
    cache_root: Path | None = None,
    stats: SyncStats | None = None,
) -> Path:
    """The local data directory for `data`: a local path as it is; an `s3://` URL
    mirrored (only the dates `date_from`..`date_to` inclusive and the event `types`
    asked for, None meaning all) into its cache directory, which is returned.

    Raises RemoteStoreError (one line naming the URL) when the remote cannot be
    reached, does not exist, refuses us, or holds no store."""
    if not is_remote(data):
        return Path(data)
    store = parse_url(str(data))
    target = cache_dir_for(store, cache_root)
    sync_store(store, target, date_from=date_from, date_to=date_to, types=types,
               stats=stats)
    return target


def list_store(url: str, *, types: Collection[str] | None = None
               ) -> dict[str, tuple[int, int]]:
    """The remote store's `store.json` and parts: relative path -> (size, mtime ns).
    Listing only (a sweep's client learns the days and fingerprints from it)."""
    store = parse_url(url)
    s3 = _filesystem(store)
    with _remote_errors(store):
        return _list_remote(s3, store, None, None,
                            frozenset(types) if types is not None else None)


def sync_store(
    store: RemoteStore,
    target: Path,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    types: Collection[str] | None = None,
    stats: SyncStats | None = None,
) -> SyncStats:
    """Bring `target` in step with the remote for the dates and types asked for."""
    stats = stats if stats is not None else SyncStats()
    s3 = _filesystem(store)
    wanted = frozenset(types) if types is not None else None
    target.mkdir(parents=True, exist_ok=True)
    with _cache_lock(target), _remote_errors(store):
        remote = _list_remote(s3, store, date_from, date_to, wanted)
        stats.listed = len(remote)
        # a store with no day in the range is still a store: the replay says so
        (target / "events").mkdir(exist_ok=True)
        missing = [(rel, size, mtime) for rel, (size, mtime) in sorted(remote.items())
                   if not _current(target / rel, size, mtime)]
        if missing:
            with ThreadPoolExecutor(min(_DOWNLOAD_THREADS, len(missing))) as pool:
                for n in pool.map(lambda m: _download(s3, store, target, *m), missing):
                    stats.copied += 1
                    stats.bytes += n
        stats.removed = _remove_stale(target, remote, date_from, date_to, wanted)
    return stats


@contextmanager
def _cache_lock(target: Path) -> Iterator[None]:
    # Held while syncing: a second process waits, then finds everything current.
    fd = os.open(target / ".sync.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def _remote_errors(store: RemoteStore) -> Iterator[None]:
    import pyarrow as pa

    try:
        yield
    except RemoteStoreError:
        raise
    except FileNotFoundError:
        raise RemoteStoreError(f"{store.where()}: no such bucket or prefix") from None
    except (OSError, pa.ArrowException) as exc:
        raise RemoteStoreError(f"{store.where()}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    # pyarrow's S3 errors are long ("When listing objects under key ... in bucket ...:
    # AWS Error ACCESS_DENIED during ListObjectsV2 operation: ..."): keep the cause
    m = re.search(r"AWS Error (.*)", text)
    text = m.group(1) if m else text
    return re.sub(r"\s*\(Request ID: [^)]*\)", "", text)


def _list_remote(s3, store: RemoteStore, date_from: date | None, date_to: date | None,
                 types: frozenset[str] | None) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime ns) of `store.json` and the wanted parts."""
    from pyarrow import fs

    out: dict[str, tuple[int, int]] = {}
    root = store.root
    try:
        top = s3.get_file_info(fs.FileSelector(root, recursive=False))
    except FileNotFoundError:
        top = []
    names = {Path(info.path).name: info for info in top}
    if "events" not in names and "store.json" not in names:
        # an empty listing: a missing bucket lists as empty on some servers
        if not s3.get_file_info(store.bucket).type == fs.FileType.Directory:
            raise RemoteStoreError(f"{store.where()}: no such bucket")
        raise RemoteStoreError(f"{store.where()}: no store there (no events/ or store.json)")
    manifest = names.get("store.json")
    if manifest is not None and manifest.type == fs.FileType.File:
        out["store.json"] = (manifest.size, manifest.mtime_ns or 0)
    if "events" not in names:
        return out
    for info in s3.get_file_info(fs.FileSelector(f"{root}/events", recursive=False)):
        m = _DATE_DIR.match(Path(info.path).name)
        if m is None or info.type != fs.FileType.Directory:
            continue
        day = date.fromisoformat(m.group(1))
        if (date_from is not None and day < date_from) or (date_to is not None and day > date_to):
            continue
        for part in s3.get_file_info(fs.FileSelector(info.path, recursive=True)):
            if part.type != fs.FileType.File:
                continue
            rel = part.path[len(root) + 1:]
            segments = rel.split("/")  # events/date=../type=T/part-N.parquet
            if len(segments) != 4 or not segments[2].startswith("type="):
                continue
            if types is not None and segments[2][5:] not in types:
                continue
            if not segments[3].endswith(".parquet") or segments[3].startswith("."):
                continue
            out[rel] = (part.size, part.mtime_ns or 0)
    return out


def _current(local: Path, size: int, mtime_ns: int) -> bool:
    try:
        st = local.stat()
    except FileNotFoundError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def _download(s3, store: RemoteStore, target: Path, rel: str, size: int, mtime_ns: int) -> int:
    dest = target / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    got = 0
    try:
        with s3.open_input_stream(f"{store.root}/{rel}") as src, open(tmp, "wb") as out:
            while chunk := src.read(_COPY_CHUNK):
                out.write(chunk)
                got += len(chunk)
        if got != size:
            raise RemoteStoreError(f"{store.where()}: {rel} changed while being downloaded "
                                   f"({got} bytes where the listing said {size}); run again")
        # the remote's identity, kept in the file itself (see the module docstring)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return got


def _remove_stale(target: Path, remote: dict[str, tuple[int, int]], date_from: date | None,
                  date_to: date | None, types: frozenset[str] | None) -> int:
    """Delete local parts the remote no longer has, within the dates and types synced
    (other dates and types may belong to another process's range: left alone)."""
    removed = 0
    events = target / "events"
    if not events.is_dir():
        return 0
    for ddir in events.iterdir():
        m = _DATE_DIR.match(ddir.name)
        if m is None:
            continue
        day = date.fromisoformat(m.group(1))
        if (date_from is not None and day < date_from) or (date_to is not None and day > date_to):
            continue
        for tdir in ddir.iterdir():
            if not tdir.name.startswith("type=") or (
                    types is not None and tdir.name[5:] not in types):
                continue
            for part in tdir.iterdir():
                rel = f"events/{ddir.name}/{tdir.name}/{part.name}"
                if rel not in remote:
                    part.unlink()
                    removed += 1
    return removed


def push_store(source: Path, url: str) -> SyncStats:
    """Upload the local store `source` (its committed Parquet parts, then `store.json`)
    to `url`. A part already there with the same size, uploaded after the local file
    was last written, is skipped; parts of an unfinished roll or import (which the
    next writer deletes) are not uploaded. The caller holds the store's lock."""
    from pyarrow import fs

    from events.store import list_parts, read_manifest

    store = parse_url(url)
    s3 = _filesystem(store)
    stats = SyncStats()
    pending_from = read_manifest(source).pending
    first_pending = None if pending_from is None else int(pending_from["first_part"])
    files = [p.path for p in list_parts(source / "events")
             if first_pending is None or p.number < first_pending]
    if (source / "store.json").is_file():
        files.append(source / "store.json")  # last: it describes the parts
    stats.listed = len(files)
    with _remote_errors(store):
        have: dict[str, tuple[int, int]] = {}
        for info in s3.get_file_info(fs.FileSelector(store.root, recursive=True,
                                                     allow_not_found=True)):
            if info.type == fs.FileType.File:
                have[info.path[len(store.root) + 1:]] = (info.size, info.mtime_ns or 0)
        for path in files:
            rel = path.relative_to(source).as_posix()
            st = path.stat()
            remote = have.get(rel)
            if rel != "store.json" and remote is not None and remote[0] == st.st_size \
                    and remote[1] >= st.st_mtime_ns:
                continue
            with open(path, "rb") as src, s3.open_output_stream(f"{store.root}/{rel}") as out:
                while chunk := src.read(_COPY_CHUNK):
                    out.write(chunk)
            stats.copied += 1
            stats.bytes += st.st_size
    return stats
