"""Streaming indicators: feed one value at a time with `update(...)`, read `.value`.

`.value` is None until the indicator has seen enough data (warm-up). Every
update is O(1) (amortised), except `SMA`, which is O(n) on purpose: DESIGN
defines the built-in strategies' averages as `math.fsum(window) / n`, and only
summing the window again reproduces that exactly (a running sum drifts by an ulp
now and then, enough to flip a `fast > slow` comparison on a tie-ish bar). For
the windows strategies use (tens of bars) that costs microseconds per bar.

Rolling mean/variance (`Bollinger`, `ZScore`) use the sliding Welford update
and re-sum the window exactly (`math.fsum`) every `n` updates, so float error
cannot accumulate over a long run while the cost stays O(1) amortised.

Conventions (those of TA-Lib and most charting tools):
- `EMA(n)`: alpha = 2 / (n + 1), seeded with the SMA of the first n values.
- `RSI(n)`, `ATR(n)`: Wilder smoothing, seeded with the plain mean of the first n
  changes / true ranges; RSI is 100 when there were no losses (50 if no change at all).
- `MACD`: line = EMA(fast) - EMA(slow) once the slow EMA is warm; signal = EMA of
  the line; hist = line - signal.
- Standard deviations are population ones (divide by n).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ATR", "EMA", "MACD", "RSI", "SMA", "VWAP", "Bollinger", "RollingStats", "ZScore"]


def _check_period(n: int, name: str = "period") -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return n


class SMA:
    """Simple moving average of the last `n` values: `math.fsum(window) / n` (O(n))."""

    __slots__ = ("n", "window", "value")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self.window: deque[float] = deque(maxlen=n)
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        window = self.window
        window.append(x)
        if len(window) == self.n:
            self.value = math.fsum(window) / self.n
        return self.value


class EMA:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n."""

    __slots__ = ("n", "alpha", "value", "_seed", "_count")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self.alpha = 2.0 / (n + 1)
        self.value: float | None = None
        self._seed = 0.0
        self._count = 0

    def update(self, x: float) -> float | None:
        value = self.value
        if value is not None:
            value += self.alpha * (x - value)
            self.value = value
            return value
        self._seed += x
        self._count += 1
        if self._count == self.n:
            self.value = self._seed / self.n
        return self.value


class RSI:
    """Wilder's relative strength index over `n` changes (needs n + 1 values)."""

    __slots__ = ("n", "value", "_prev", "_gain", "_loss", "_count")

    def __init__(self, n: int = 14) -> None:
        self.n = _check_period(n)
        self.value: float | None = None
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._count = 0

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self.n
        if self._count < n:
            # Warm-up: plain mean of the first n changes.
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0.0:
            self.value = 50.0 if self._gain == 0.0 else 100.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class MACD:
    """MACD line, signal and histogram; `.value` is `(line, signal, hist)`."""

    __slots__ = ("_fast", "_slow", "_signal", "line", "signal", "hist", "value")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if _check_period(fast, "fast") >= _check_period(slow, "slow"):
            raise ValueError(f"MACD fast ({fast}) must be shorter than slow ({slow})")
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(_check_period(signal, "signal"))
        self.line: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None
        self.value: tuple[float, float, float] | None = None

    def update(self, x: float) -> tuple[float, float, float] | None:
        fast = self._fast.update(x)
        slow = self._slow.update(x)
        if fast is None or slow is None:
            return None
        line = self.line = fast - slow
        signal = self.signal = self._signal.update(line)
        if signal is None:
            return None
        self.hist = line - signal
        self.value = (line, signal, self.hist)
        return self.value


class RollingStats:
    """Mean and population variance of the last `n` values, O(1) amortised."""

    __slots__ = ("n", "window", "mean", "_m2", "_since_resync")

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self.window: deque[float] = deque()
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared deviations from the mean
        self._since_resync = 0

    @property
    def ready(self) -> bool:
        return len(self.window) == self.n

    @property
    def variance(self) -> float:
        count = len(self.window)
        return max(self._m2, 0.0) / count if count else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    def update(self, x: float) -> None:
        window = self.window
        window.append(x)
        count = len(window)
        if count > self.n:
            old = window.popleft()
            mean = self.mean
            new_mean = mean + (x - old) / self.n
            self._m2 += (x - old) * (x - new_mean + old - mean)
            self.mean = new_mean
            self._since_resync += 1
            if self._since_resync >= self.n:
                self._resync()
        else:
            # Growing phase: Welford's add-one update.
            delta = x - self.mean
            self.mean += delta / count
            self._m2 += delta * (x - self.mean)

    def _resync(self) -> None:
        # Every n slides: recompute from the window, so rounding cannot accumulate.
        window = self.window
        mean = math.fsum(window) / len(window)
        self.mean = mean
        self._m2 = math.fsum((v - mean) * (v - mean) for v in window)
        self._since_resync = 0


class Bollinger:
    """Bollinger bands: mid = mean of the last n, upper/lower = mid ± k × population std."""

    __slots__ = ("k", "stats", "mid", "upper", "lower", "value")

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self.k = k
        self.stats = RollingStats(n)
        self.mid: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None
        self.value: tuple[float, float, float] | None = None  # (mid, upper, lower)

    def update(self, x: float) -> tuple[float, float, float] | None:
        stats = self.stats
        stats.update(x)
        if not stats.ready:
            return None
        mid = stats.mean
        width = self.k * stats.std
        self.mid, self.upper, self.lower = mid, mid + width, mid - width
        self.value = (mid, mid + width, mid - width)
        return self.value


class ZScore:
    """`(x - mean) / std` over the last n values (x included); None while std is 0."""

    __slots__ = ("stats", "value")

    def __init__(self, n: int) -> None:
        self.stats = RollingStats(n)
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        stats = self.stats
        stats.update(x)
        if not stats.ready:
            return None
        std = stats.std
        self.value = None if std == 0.0 else (x - stats.mean) / std
        return self.value


class ATR:
    """Wilder's average true range from (high, low, close) bars."""

    __slots__ = ("n", "value", "_prev_close", "_sum", "_count")

    def __init__(self, n: int = 14) -> None:
        self.n = _check_period(n)
        self.value: float | None = None
        self._prev_close: float | None = None
        self._sum = 0.0
        self._count = 0

    def update(self, high: float, low: float, close: float) -> float | None:
        prev = self._prev_close
        self._prev_close = close
        # The first bar has no previous close: its range is its true range.
        tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
        n = self.n
        if self.value is not None:
            self.value = (self.value * (n - 1) + tr) / n
            return self.value
        self._sum += tr
        self._count += 1
        if self._count == n:
            self.value = self._sum / n
        return self.value


class VWAP:
    """Volume-weighted average price: cumulative (`window=None`) or over the last
    `window` updates. `.value` is None until some volume has been seen."""

    __slots__ = ("window", "_items", "_pv", "_v", "_since_resync", "value")

    def __init__(self, window: int | None = None) -> None:
        self.window = None if window is None else _check_period(window, "window")
        self._items: deque[tuple[float, float]] = deque()
        self._pv = 0.0
        self._v = 0.0
        self._since_resync = 0
        self.value: float | None = None

    def update(self, price: float, volume: float) -> float | None:
        pv = price * volume
        self._pv += pv
        self._v += volume
        if self.window is not None:
            items = self._items
            items.append((pv, volume))
            if len(items) > self.window:
                old_pv, old_v = items.popleft()
                self._pv -= old_pv
                self._v -= old_v
                self._since_resync += 1
                if self._since_resync >= self.window:
                    # Subtracting leaves rounding residue: re-sum now and then.
                    self._pv = math.fsum(p for p, _ in items)
                    self._v = math.fsum(v for _, v in items)
                    self._since_resync = 0
        self.value = self._pv / self._v if self._v > 0 else None
        return self.value
