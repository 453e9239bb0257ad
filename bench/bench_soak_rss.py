"""RSS over a long accelerated paper run (target: flat within 10 % after warm-up).

`tapeloop run` on `configs/paper.toml` (the bundled Binance sample, looping,
sma_cross trading against the simulated venue) at `speed = "max"`, until
`N_EVENTS` events have been published. Every second: the daemon's VmRSS (from
/proc/<pid>/status), the largest VmRSS among its children (the background
rollers that turn closed journal segments into Parquet), and the event count
from the daemon's `/metrics` (`tapeloop_events_total`, summed over types).

Reported: RSS at warm-up (the first sample at or after `WARMUP_EVENTS`), at the
end (the last sample before SIGTERM), the maximum while running, the growth
end vs warm-up in %, the publish rate, the largest child, and the RSS and time
of the stop (which rolls the last journal segment into Parquet in-process).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import REPO, emit

N_EVENTS = 10_000_000
WARMUP_EVENTS = 1_000_000
TARGET_GROWTH_PCT = 10.0
TIME_LIMIT_S = 900.0  # give up (and report what was reached) after this long
SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"
# prometheus_client writes a counter as a float, in exponent form from 1e6 on
# ("4.669187e+06"): reading only its leading digits never reached N_EVENTS
_EVENTS = re.compile(rb"^tapeloop_events_total\{[^}]*\} ([0-9.eE+-]+)", re.M)


def write_config(tmp: Path) -> Path:
    text = (REPO / "configs" / "paper.toml").read_text()
    text = text.replace('file = "samples/', f'file = "{SAMPLE.parent}/')
    text = re.sub(r"^speed = [0-9.]+", 'speed = "max"', text, flags=re.M)
    text = text.replace('control = "127.0.0.1:8765"', 'control = "127.0.0.1:0"')
    assert 'speed = "max"' in text and "loop = true" in text
    path = tmp / "paper.toml"
    path.write_text(text)
    return path


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after ')'
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def control_url(log: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        for line in log.read_bytes().splitlines():
            if b'"control.listening"' in line:
                return str(json.loads(line)["url"])
        time.sleep(0.05)  # polling the log for the line, bounded by the deadline
    raise RuntimeError(f"no control.listening line in {log}")


def published(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            body = resp.read()
    except OSError:
        return None
    return sum(int(float(n)) for n in _EVENTS.findall(body))


def _rate(samples: list[tuple[float, int, float]]) -> float:
    (t0, n0, _), (t1, n1, _) = samples[0], samples[-1]
    return round((n1 - n0) / (t1 - t0), 1) if t1 > t0 else 0.0


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tapeloop-bench-soak-") as tmpdir:
        tmp = Path(tmpdir)
        config, log = write_config(tmp), tmp / "daemon.log"
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep
               + os.environ.get("PYTHONPATH", "")}
        env.pop("NOTIFY_SOCKET", None)
        cmd = [sys.executable, "-m", "daemon.cli", "run", "--config", str(config), "--data",
               str(tmp / "data")]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=REPO)
        try:
            url = control_url(log, time.monotonic() + 60)
            samples: list[tuple[float, int, float]] = []  # (t, events, rss MB)
            child_max = 0.0
            t0 = time.monotonic()
            events, warm = 0, None
            next_at = t0
            while events < N_EVENTS and time.monotonic() - t0 < TIME_LIMIT_S:
                next_at += 1.0
                time.sleep(max(0.0, next_at - time.monotonic()))  # the 1 s sampling period
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited with {proc.returncode}; see {log}")
                n, rss = published(url), rss_mb(proc.pid)
                for child in children(proc.pid):
                    child_max = max(child_max, rss_mb(child) or 0.0)
                if n is None or rss is None:
                    continue
                events = n
                samples.append((time.monotonic() - t0, n, rss))
                if warm is None and n >= WARMUP_EVENTS:
                    warm = samples[-1]
            end = samples[-1]
            # SIGTERM: the last journal segment is rolled in-process; watch it.
            proc.send_signal(signal.SIGTERM)
            t_stop = time.monotonic()
            stop_max = end[2]
            while proc.poll() is None and time.monotonic() - t_stop < 600:
                stop_max = max(stop_max, rss_mb(proc.pid) or 0.0)
                time.sleep(0.2)  # RSS sampling period while the daemon stops
            code = proc.wait(timeout=60)
            stop_s = time.monotonic() - t_stop
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            raise RuntimeError(f"daemon exited with {code} after SIGTERM; see {log}")
        assert warm is not None, "never reached the warm-up event count"
        running = [s for s in samples if s[0] >= warm[0]]
        emit("paper_soak_rss", events=end[1], rss_warm_mb=round(warm[2], 1),
             rss_end_mb=round(end[2], 1), rss_max_mb=round(max(s[2] for s in running), 1),
             rss_min_mb=round(min(s[2] for s in running), 1),
             growth_pct=round((end[2] - warm[2]) / warm[2] * 100, 1),
             target_growth_pct=TARGET_GROWTH_PCT,
             events_per_s=_rate(samples),
             events_per_s_first_10s=_rate(samples[:11]), events_per_s_last_10s=_rate(samples[-11:]),
             wall_s=round(end[0], 1), reached_target_events=end[1] >= N_EVENTS,
             roller_rss_max_mb=round(child_max, 1), stop_rss_max_mb=round(stop_max, 1),
             stop_s=round(stop_s, 1),
             rss_curve_mb=[round(s[2]) for s in samples[:: max(1, len(samples) // 20)]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
