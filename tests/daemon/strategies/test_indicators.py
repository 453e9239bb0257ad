"""Streaming indicators against plain, obviously-correct reference computations on
real daily BTCUSDT bars (basana), plus warm-up and edge cases."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest

from daemon.strategies.indicators import (
    ATR,
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    Bollinger,
    RollingStats,
    ZScore,
)

REL = 1e-9


@pytest.fixture
def bars(shared_data: Path) -> list[dict[str, float]]:
    with open(shared_data / "basana" / "binance_btcusdt_day_2020.csv", newline="") as fh:
        rows = [{k: float(v) for k, v in row.items() if k != "datetime"}
                for row in csv.DictReader(fh)]
    assert len(rows) == 366
    return rows


def close_enough(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-9)


# -- references: direct transcriptions of the definitions ------------------------------

def ref_sma(xs: list[float], n: int) -> list[float | None]:
    return [None if i + 1 < n else math.fsum(xs[i + 1 - n:i + 1]) / n for i in range(len(xs))]


def ref_ema(xs: list[float], n: int) -> list[float | None]:
    out: list[float | None] = []
    alpha, value = 2 / (n + 1), None
    for i, x in enumerate(xs):
        if i + 1 == n:
            value = sum(xs[:n]) / n
        elif value is not None:
            value = alpha * x + (1 - alpha) * value
        out.append(value)
    return out


def ref_rsi(xs: list[float], n: int) -> list[float | None]:
    out: list[float | None] = [None] * len(xs)
    changes = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    gain = loss = 0.0
    for i, c in enumerate(changes):
        g, lo = max(c, 0.0), max(-c, 0.0)
        if i < n:
            gain, loss = gain + g, loss + lo
            if i < n - 1:
                continue
            gain, loss = gain / n, loss / n
        else:
            gain, loss = (gain * (n - 1) + g) / n, (loss * (n - 1) + lo) / n
        out[i + 1] = 100.0 if loss == 0 else 100 - 100 / (1 + gain / loss)
    return out


def ref_std(window: list[float]) -> tuple[float, float]:
    mean = sum(window) / len(window)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in window) / len(window))


# -- tests -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 10, 30])
def test_sma_is_exactly_fsum_over_n(bars: list[dict[str, float]], n: int) -> None:
    closes = [b["close"] for b in bars]
    sma = SMA(n)
    got = [sma.update(x) for x in closes]
    assert got == ref_sma(closes, n)  # exact, not approximate


@pytest.mark.parametrize("n", [5, 20])
def test_ema(bars: list[dict[str, float]], n: int) -> None:
    closes = [b["close"] for b in bars]
    ema = EMA(n)
    assert all(close_enough(ema.update(x), r) for x, r in zip(closes, ref_ema(closes, n),
                                                                 strict=True))


def test_rsi_wilder(bars: list[dict[str, float]]) -> None:
    closes = [b["close"] for b in bars]
    rsi = RSI(14)
    got = [rsi.update(x) for x in closes]
    assert got[:14] == [None] * 14 and got[14] is not None
    assert all(close_enough(g, r) for g, r in zip(got, ref_rsi(closes, 14), strict=True))
    assert all(0 <= g <= 100 for g in got[14:] if g is not None)


def test_rsi_flat_and_rising() -> None:
    flat, rising = RSI(3), RSI(3)
    for x in (1.0, 1.0, 1.0, 1.0):
        flat.update(x)
    for x in (1.0, 2.0, 3.0, 4.0):
        rising.update(x)
    assert (flat.value, rising.value) == (50.0, 100.0)


def test_macd(bars: list[dict[str, float]]) -> None:
    closes = [b["close"] for b in bars]
    fast, slow = ref_ema(closes, 12), ref_ema(closes, 26)
    lines = [f - s for f, s in zip(fast, slow, strict=True) if f is not None and s is not None]
    signal = ref_ema(lines, 9)
    macd = MACD(12, 26, 9)
    got = [macd.update(x) for x in closes]
    assert got[:25 + 8] == [None] * 33
    values = [g for g in got if g is not None]
    assert len(values) == len(closes) - 33
    for (line, sig, hist), ref_line, ref_sig in zip(values, lines[8:], signal[8:], strict=True):
        assert close_enough(line, ref_line) and close_enough(sig, ref_sig)
        assert close_enough(hist, ref_line - ref_sig)


def test_bollinger_and_zscore_population_std(bars: list[dict[str, float]]) -> None:
    closes = [b["close"] for b in bars]
    n = 20
    bb, z = Bollinger(n, 2.0), ZScore(n)
    for i, x in enumerate(closes):
        band, score = bb.update(x), z.update(x)
        if i + 1 < n:
            assert band is None and score is None
            continue
        mean, std = ref_std(closes[i + 1 - n:i + 1])
        assert band is not None and score is not None
        assert close_enough(band[0], mean)
        assert close_enough(band[1], mean + 2 * std) and close_enough(band[2], mean - 2 * std)
        assert math.isclose(score, (x - mean) / std, rel_tol=1e-7, abs_tol=1e-9)


def test_rolling_stats_do_not_drift_over_a_long_run() -> None:
    rng = random.Random(7)
    print("seed 7")
    xs = [50_000 + rng.gauss(0, 1) for _ in range(100_000)]
    stats = RollingStats(50)
    for x in xs:
        stats.update(x)
    mean, std = ref_std(xs[-50:])
    assert math.isclose(stats.mean, mean, rel_tol=1e-12)
    assert math.isclose(stats.std, std, rel_tol=1e-6)


def test_zscore_of_a_flat_window_is_none() -> None:
    z = ZScore(3)
    for _ in range(5):
        assert z.update(7.0) is None


def test_atr_wilder(bars: list[dict[str, float]]) -> None:
    n = 14
    trs, prev = [], None
    for b in bars:
        h, lo, c = b["high"], b["low"], b["close"]
        trs.append(h - lo if prev is None else max(h - lo, abs(h - prev), abs(lo - prev)))
        prev = c
    ref: list[float | None] = [None] * (n - 1) + [sum(trs[:n]) / n]
    for tr in trs[n:]:
        last = ref[-1]
        assert last is not None
        ref.append((last * (n - 1) + tr) / n)
    atr = ATR(n)
    got = [atr.update(b["high"], b["low"], b["close"]) for b in bars]
    assert all(close_enough(g, r) for g, r in zip(got, ref, strict=True))


def test_vwap_cumulative_and_rolling(bars: list[dict[str, float]]) -> None:
    cum, roll = VWAP(), VWAP(window=10)
    pairs = [(b["close"], b["volume"]) for b in bars]
    for i, (p, v) in enumerate(pairs):
        cum.update(p, v)
        roll.update(p, v)
        seen, last10 = pairs[:i + 1], pairs[max(0, i - 9):i + 1]
        assert close_enough(cum.value, sum(p * v for p, v in seen) / sum(v for _, v in seen))
        assert close_enough(roll.value,
                            sum(p * v for p, v in last10) / sum(v for _, v in last10))
    assert VWAP().value is None


@pytest.mark.parametrize("make", [lambda: SMA(0), lambda: EMA(-1), lambda: MACD(26, 12),
                                  lambda: RSI(True)])
def test_bad_periods_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
