"""The metrics collector: what `GET /metrics` (and `/status`) count that the
kernel does not (fills and the last few, risk rejections by check, the event rate), and the
scrape-time Prometheus registry built from the kernel's state.

It subscribes to the bus for Fill and OrderRejected only: a handful of events a
day, never a market event, so the hot path pays nothing."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from aiohttp import web

from daemon.metrics import (
    CONTENT_TYPE,
    RateMeter,
    Registry,
    collect_kernel,
    process_start_time,
    render,
)

LAST_FILLS = 20  # the fills /status lists, newest first (`tapeloop top`)


class MetricsCollector:
    """`attach()` on start, `detach()` on close; `collect()` at scrape time."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.fills = 0
        self.last_fills: deque[Any] = deque(maxlen=LAST_FILLS)
        self.rejections: Counter[str] = Counter()
        self._rate = RateMeter(sum(kernel.counts.values()))
        self._start_time = process_start_time()
        self._subscribed: list[tuple[type, Any]] = []

    def attach(self) -> None:
        from events.orders import Fill, OrderRejected

        for cls, handler in ((Fill, self._on_fill), (OrderRejected, self._on_rejected)):
            self.kernel.bus.subscribe(cls, handler)
            self._subscribed.append((cls, handler))

    def detach(self) -> None:
        for cls, handler in self._subscribed:
            try:
                self.kernel.bus.unsubscribe(cls, handler)
            except ValueError:
                pass
        self._subscribed.clear()

    def _on_fill(self, event: Any) -> None:
        self.fills += 1
        self.last_fills.append(event)

    def _on_rejected(self, event: Any) -> None:
        self.rejections[event.check or "unknown"] += 1

    def events_total(self) -> int:
        return sum(self.kernel.counts.values())

    def events_per_second(self) -> float:
        return self._rate.rate(self.events_total())

    def collect(self) -> Registry:
        """The scrape-time metrics (/metrics adds the kernel's own registry)."""
        return collect_kernel(self.kernel, fills=self.fills, rejections=self.rejections,
                              events_per_second=self.events_per_second(),
                              start_time=self._start_time)

    async def handle(self, _request: web.Request) -> web.Response:
        """`GET /metrics`: Prometheus text."""
        reg = self.collect()
        metrics = list(reg)
        kernel_metrics = getattr(self.kernel, "metrics", None)
        if kernel_metrics is not None:  # its histograms, and whatever else it registered
            metrics += [m for m in kernel_metrics.registry if m.name not in reg]
        return web.Response(body=render(metrics).encode(), headers={"Content-Type": CONTENT_TYPE})
