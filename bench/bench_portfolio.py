"""A portfolio scales linearly: the SPY week imported once as one symbol and once
as four (SPY, SPYB, SPYC, SPYD: the same 1,887,450 trades four times, 7,549,800
interleaved in time as a portfolio's instruments are), replayed with one
sma_cross per symbol (configs/replay-spy.toml, configs/replay-spy4.toml: same
parameters; fsync "never" as every replay, fill model "next"). Each round
replays both as child processes, alternating, so the machine's load hits both
alike. Reports the loop's seconds and events/s (the report's own `wall_s`), the
whole process's seconds and each one's peak RSS; the target is the 4-symbol loop
within 4.4x the 1-symbol loop, RSS flat (within 1.15x)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.bench_pipeline import _cli
from bench.bench_reader import SPY
from bench.common import REPO, emit, reference_call_ns

CONFIGS = {1: REPO / "configs" / "replay-spy.toml", 4: REPO / "configs" / "replay-spy4.toml"}
SYMBOLS = ("SPY", "SPYB", "SPYC", "SPYD")
ROUNDS = 3
TARGET_RATIO = 4.4
FLAT_RSS = 1.15


def _import(data: Path, symbols: tuple[str, ...]) -> None:
    files = sorted(SPY.glob("*_trade.zip"))
    for symbol in symbols:
        _, _, code = _cli("import", "trades", *files, "--venue", "lean", "--symbol", symbol,
                          "--data", data)
        if code != 0:
            sys.exit(f"import of {symbol} failed")


def _replay(n: int, data: Path, out: Path) -> dict:
    wall, rss_mb, code = _cli("replay", "--config", CONFIGS[n], "--data", data, "--out", out)
    if code != 0:
        sys.exit(f"replay of {n} symbol(s) failed with exit code {code}")
    report = json.loads((out / "report.json").read_text())
    return {"loop_s": report["wall_s"], "events": report["events_in"], "process_s": wall,
            "rss_mb": rss_mb, "fills": len(report["fills"])}


def main() -> None:
    if not SPY.is_dir():
        emit("portfolio_spy4_sma_cross", skipped=f"{SPY} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _import(root / "spy1", SYMBOLS[:1])
        _import(root / "spy4", SYMBOLS)
        runs: dict[int, list[dict]] = {1: [], 4: []}
        for r in range(ROUNDS):
            for n in (1, 4):
                runs[n].append(_replay(n, root / f"spy{n}", root / f"run{n}-{r}"))
    best = {n: min(rs, key=lambda x: x["loop_s"]) for n, rs in runs.items()}
    median = {n: sorted(x["loop_s"] for x in rs)[len(rs) // 2] for n, rs in runs.items()}
    rss = {n: max(x["rss_mb"] for x in rs) for n, rs in runs.items()}
    ratio = best[4]["loop_s"] / best[1]["loop_s"]
    figures: dict[str, object] = {}
    for n in (1, 4):
        figures[f"events_{n}"] = best[n]["events"]
        figures[f"fills_{n}"] = best[n]["fills"]
        figures[f"loop_s_{n}"] = round(best[n]["loop_s"], 3)
        figures[f"median_loop_s_{n}"] = round(median[n], 3)
        figures[f"loop_events_per_s_{n}"] = round(best[n]["events"] / best[n]["loop_s"], 1)
        figures[f"whole_process_s_{n}"] = round(min(x["process_s"] for x in runs[n]), 2)
        figures[f"peak_rss_mb_{n}"] = round(rss[n], 1)
    emit("portfolio_spy4_sma_cross", **figures, loop_ratio=round(ratio, 2),
         median_loop_ratio=round(median[4] / median[1], 2), target_ratio=TARGET_RATIO,
         linear=ratio <= TARGET_RATIO, rss_ratio=round(rss[4] / rss[1], 2),
         rss_flat=rss[4] <= FLAT_RSS * rss[1], ref_call_ns=reference_call_ns())


if __name__ == "__main__":
    main()
