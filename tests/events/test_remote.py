"""A store on S3 (`events.remote`), against a real S3-compatible server on loopback
(moto in server mode, a child process), through the real CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyarrow.fs import FileSelector, FileType

from events.remote import RemoteStoreError, SyncStats, local_store, parse_url
from tests.conftest import REPO, SHARED_DATA, cli_env, eventually, import_spy, tapeloop_cmd

pytest.importorskip("moto", reason="moto[server] (a test dependency) is not installed")
LEAN_SPY = SHARED_DATA / "lean" / "equity" / "usa" / "tick" / "spy"
pytestmark = pytest.mark.skipif(not LEAN_SPY.is_dir(), reason="shared Lean SPY trades absent")
CONFIG = REPO / "configs" / "replay-spy.toml"
DAY = "2013-10-07"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@contextmanager
def moto_server(log: Path, **env: str) -> Iterator[int]:
    """A moto S3 server on a free loopback port (its port), stopped on exit."""
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=os.environ | env)
    try:
        eventually(lambda: _listening(port) or proc.poll() is not None, timeout=30,
                   message="moto to listen")
        assert proc.poll() is None, log.read_text()
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A moto S3 server and the environment pointing at it."""
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as port:
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # for the in-process calls below
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _s3fs():
    from pyarrow import fs

    return fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"].split("://")[1],
                           scheme="http", allow_bucket_creation=True)


def run_cli(*args: str | Path, env: dict[str, str], cache: Path,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full = cli_env() | env | {"TAPELOOP_CACHE_DIR": str(cache)}
    return subprocess.run(tapeloop_cmd(*map(str, args)), capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def spy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_spy(tmp_path_factory.mktemp("spy") / "data", "20131007", "20131008")


@pytest.fixture(scope="module")
def bucket(s3_env: dict[str, str], spy_store: Path,
           tmp_path_factory: pytest.TempPathFactory) -> str:
    """The imported store uploaded with `tapeloop store push` (pyarrow.fs underneath)."""
    _s3fs().create_dir("research")
    url = "s3://research/stores/spy"
    out = run_cli("store", "push", spy_store, url, env=s3_env,
                  cache=tmp_path_factory.mktemp("unused"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("3 of 3 files uploaded"), out.stdout  # 2 parts + store.json
    return url


def _report(run: Path) -> dict:
    report = json.loads((run / "report.json").read_text())
    for key in ("wall_s", "events_per_s"):  # the only fields that depend on the machine
        report.pop(key, None)
    return report


def _cached_files(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_replay_from_s3_equals_the_local_replay_and_a_second_run_downloads_nothing(
        s3_env: dict[str, str], spy_store: Path, bucket: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    local = run_cli("replay", "--config", CONFIG, "--data", spy_store, "--from", DAY,
                    "--to", DAY, "--out", tmp_path / "local", env=s3_env, cache=cache)
    assert local.returncode == 0, local.stderr
    remote = run_cli("replay", "--config", CONFIG, "--data", bucket, "--from", DAY, "--to", DAY,
                     "--out", tmp_path / "s3", env=s3_env, cache=cache)
    assert remote.returncode == 0, remote.stderr
    assert _report(tmp_path / "s3") == _report(tmp_path / "local")
    assert _report(tmp_path / "s3")["fills"], "the day trades: the comparison means something"
    assert (tmp_path / "s3" / "fills.csv").read_bytes() == \
        (tmp_path / "local" / "fills.csv").read_bytes()
    # only the day asked for was mirrored (and the manifest)
    files = _cached_files(cache)
    assert sorted(Path(f).name for f in files) == ["part-00000.parquet", "store.json"]
    assert all(f"date={DAY}" in f for f in files if f.endswith(".parquet"))

    again = run_cli("replay", "--config", CONFIG, "--data", bucket, "--from", DAY, "--to", DAY,
                    "--out", tmp_path / "s3-again", env=s3_env, cache=cache)
    assert again.returncode == 0, again.stderr
    assert _cached_files(cache) == files  # same inodes: nothing written again
    assert _report(tmp_path / "s3-again") == _report(tmp_path / "local")


def test_a_part_changed_or_removed_in_the_bucket_is_fetched_again_or_dropped(
        s3_env: dict[str, str], spy_store: Path, tmp_path: Path) -> None:
    s3 = _s3fs()
    s3.create_dir("changing")
    url = "s3://changing/spy"
    from events.remote import push_store

    push_store(spy_store, url)
    cache = tmp_path / "cache"
    first = SyncStats()
    root = local_store(url, cache_root=cache, stats=first)
    assert (first.listed, first.copied) == (3, 3)
    assert {p.name for p in root.rglob("*.parquet")} == {"part-00000.parquet",
                                                         "part-00001.parquet"}
    second = SyncStats()
    assert local_store(url, cache_root=cache, stats=second) == root
    assert second.copied == 0

    # the day-one part rewritten in the bucket (same rows, another encoding)
    rel = f"events/date={DAY}/type=Trade/part-00000.parquet"
    rewritten = tmp_path / "rewritten.parquet"
    pq.write_table(pq.read_table(spy_store / rel), rewritten, compression="none",
                   write_page_checksum=True)
    with s3.open_output_stream(f"changing/spy/{rel}") as out:
        out.write(rewritten.read_bytes())
    # and day two's part gone from the bucket
    s3.delete_file("changing/spy/events/date=2013-10-08/type=Trade/part-00001.parquet")

    third = SyncStats()
    local_store(url, cache_root=cache, stats=third)
    assert (third.copied, third.removed) == (1, 1)
    assert (root / rel).read_bytes() == rewritten.read_bytes()
    assert not list(root.glob("events/date=2013-10-08/*/*.parquet"))
    assert not [p for p in root.rglob("*.tmp")]


def test_a_date_range_mirrors_only_its_days_and_leaves_other_days_alone(
        s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    day2 = date(2013, 10, 8)
    root = local_store(bucket, date_from=day2, date_to=day2, types=["Trade"], cache_root=cache)
    assert [p.parent.parent.name for p in root.rglob("*.parquet")] == ["date=2013-10-08"]
    day1 = date(2013, 10, 7)
    local_store(bucket, date_from=day1, date_to=day1, types=["Trade"], cache_root=cache)
    assert sorted(p.parent.parent.name for p in root.rglob("*.parquet")) == \
        ["date=2013-10-07", "date=2013-10-08"]
    # a type not asked for is not fetched
    stats = SyncStats()
    local_store(bucket, types=["Quote"], cache_root=tmp_path / "quotes", stats=stats)
    assert (stats.listed, stats.copied) == (1, 1)  # store.json only


SYNC_CHILD = """
import json, sys
from pathlib import Path
from events.remote import SyncStats, local_store
stats = SyncStats()
root = local_store(sys.argv[1], cache_root=Path(sys.argv[2]), stats=stats)
print(json.dumps([str(root), stats.copied]))
"""


def test_processes_syncing_one_cache_at_once_download_each_file_once(
        s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    children = [subprocess.Popen([sys.executable, "-c", SYNC_CHILD, bucket, str(cache)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=cli_env() | s3_env, cwd=REPO) for _ in range(4)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert len({root for root, _ in results}) == 1
    # one of them downloaded the 3 files; the others waited on the lock, then found
    # them current (which one won is up to the scheduler)
    assert sorted(copied for _, copied in results) == [0, 0, 0, 3]
    assert not list(cache.rglob("*.tmp"))


@pytest.mark.parametrize(("url", "says"), [
    ("s3://no-such-bucket/spy", "s3://no-such-bucket/spy (endpoint 127.0.0.1:"),
    ("s3://research/nothing-here", "no store there"),
    ("s3://research/stores/spy?endpoint_override=127.0.0.1:1&scheme=http",
     "s3://research/stores/spy (endpoint 127.0.0.1:1): NETWORK_CONNECTION"),
    ("s3://research/stores/spy?secret=x", "unknown option 'secret'"),
    ("s3:///spy", "s3:///spy: no bucket"),
    ("gs://research/spy", "only s3:// URLs"),
])
def test_an_unusable_url_is_one_line_naming_it_and_a_non_zero_exit(
        s3_env: dict[str, str], bucket: str, tmp_path: Path, url: str, says: str) -> None:
    out = run_cli("replay", "--config", CONFIG, "--data", url, "--out", tmp_path / "run",
                  env=s3_env, cache=tmp_path / "cache", timeout=120)
    assert out.returncode == 6, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("tapeloop replay: ") and says in lines[0], lines[0]
    assert "testing" not in out.stderr  # the credentials are never shown
    assert not (tmp_path / "run").exists()


def test_a_missing_bucket_is_named_in_process(s3_env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(RemoteStoreError, match=r"^s3://nope/x \(endpoint .*\): NO_SUCH_BUCKET"):
        local_store("s3://nope/x", cache_root=tmp_path)


def test_the_endpoint_comes_from_the_url_or_aws_endpoint_url(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.internal:9000")
    store = parse_url("s3://b/some/prefix/")
    assert (store.bucket, store.prefix, store.endpoint, store.scheme) == \
        ("b", "some/prefix", "minio.internal:9000", "https")
    store = parse_url("s3://b/p?endpoint_override=localhost:1234&scheme=http")
    assert (store.endpoint, store.scheme, store.url) == ("localhost:1234", "http", "s3://b/p")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert parse_url("s3://b").endpoint is None and parse_url("s3://b").root == "b"


def test_a_local_path_is_returned_as_it_is(tmp_path: Path) -> None:
    assert local_store(str(tmp_path)) == tmp_path
    assert local_store(tmp_path) == tmp_path


def test_a_range_with_no_day_in_the_bucket_names_the_url_not_the_cache(
        s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    out = run_cli("replay", "--config", CONFIG, "--data", bucket, "--from", "2020-01-01",
                  "--to", "2020-01-02", "--out", tmp_path / "run", env=s3_env,
                  cache=tmp_path / "cache")
    assert out.returncode == 1
    assert out.stderr.strip() == (f"tapeloop replay: --data {bucket}: no market data for SPY "
                                  "in the date range"), out.stderr


def test_push_uploads_what_changed_and_never_an_unfinished_operations_parts(
        s3_env: dict[str, str], spy_store: Path, tmp_path: Path) -> None:
    import shutil

    from events.remote import push_store

    _s3fs().create_dir("pushing")
    source = tmp_path / "data"
    shutil.copytree(spy_store, source)
    first = push_store(source, "s3://pushing/spy")
    assert (first.listed, first.copied) == (3, 3)
    again = push_store(source, "s3://pushing/spy")
    assert again.copied == 1  # store.json only: it is always sent, last

    # a part written again locally (an interrupted import redone) goes up again
    part = source / f"events/date={DAY}/type=Trade/part-00000.parquet"
    part.write_bytes(part.read_bytes())
    assert push_store(source, "s3://pushing/spy").copied == 2

    # an unfinished import's parts stay home (the next writer deletes them)
    manifest = json.loads((source / "store.json").read_text())
    manifest["pending"] = {"op": "import", "first_part": 1}
    (source / "store.json").write_text(json.dumps(manifest))
    fresh = push_store(source, "s3://pushing/pending")
    assert (fresh.listed, fresh.copied) == (2, 2)
    names = [i.path for i in _s3fs().get_file_info(FileSelector("pushing/pending",
                                                                recursive=True))
             if i.type == FileType.File]
    assert sorted(Path(n).name for n in names) == ["part-00000.parquet", "store.json"]


def test_push_to_a_missing_bucket_is_one_line_and_a_non_zero_exit(
        s3_env: dict[str, str], spy_store: Path, tmp_path: Path) -> None:
    out = run_cli("store", "push", spy_store, "s3://no-such-bucket/spy", env=s3_env,
                  cache=tmp_path)
    assert out.returncode == 6
    assert out.stderr.startswith("tapeloop store: s3://no-such-bucket/spy (endpoint ")
    assert "NO_SUCH_BUCKET" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_credentials_the_server_refuses_are_one_line_without_the_secret(
        tmp_path: Path) -> None:
    # moto checks credentials from the first request on (it knows none of ours)
    with moto_server(tmp_path / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="0") as port:
        env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_SECRET_ACCESS_KEY": "a-secret-never-shown",
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
        out = run_cli("replay", "--config", CONFIG, "--data", "s3://research/spy", "--out",
                      tmp_path / "run", env=env, cache=tmp_path / "cache", timeout=120)
    assert out.returncode == 6
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"tapeloop replay: s3://research/spy (endpoint 127.0.0.1:{port}): "
                               "INVALID_ACCESS_KEY_ID during ListObjectsV2"), lines[0]
    assert "a-secret-never-shown" not in out.stderr
