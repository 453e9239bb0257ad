"""tapeloop's Prometheus metrics: cheap instruments for the hot path, the scrape-time
collection from the kernel, and the exposition through `prometheus_client`.

Two kinds of use:

- long-lived instruments the kernel feeds as things happen: `KernelMetrics`
  holds the `journal_flush` and `bus_dispatch` latency histograms (call
  `observe(seconds)`: one bisect and three additions, no lock) and a `registry`
  the kernel may add its own metrics to;
- scrape-time collection: the control API builds a fresh `Registry` from the
  kernel's state on every `GET /metrics` (`set` on counters mirrors a count
  kept elsewhere) and renders it together with `KernelMetrics.registry`.

    reg = Registry()
    reg.counter("tapeloop_events_total", "Events published, by type", ["type"]).set(3, type="Trade")
    text = reg.render()

What `prometheus_client` does here and what it does not: the text exposition
(`generate_latest`: escaping, value formatting, the `# HELP`/`# TYPE` lines) and the
process metrics (`ProcessCollector`: memory, CPU seconds, file descriptors, start
time, from /proc) are the library's; `render` hands it our metrics as a custom
collector, read at scrape time. The instruments stay ours: the library's
`Histogram.observe` takes a lock per call, and the bus and the journal observe on
the hot path from one thread, where a bisect and three additions suffice.
"""

from __future__ import annotations

import math
import os
import re
import time
from bisect import bisect_left
from collections import Counter as CountOf
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric as Family

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes

# 10 µs .. 2.5 s: a bus dispatch is microseconds, an fsync milliseconds.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Number = int | float | Decimal
Sample = tuple[str, tuple[tuple[str, str], ...], float]  # (name suffix, labels, value)


def format_value(value: Number) -> str:
    """A bucket bound as the `le` label has always been written here (`1`, `2.5e-05`,
    `+Inf`): the label is part of a series' identity, so it keeps its spelling."""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


class Metric(Protocol):
    name: str
    help: str
    kind: str  # counter | gauge | histogram

    def samples(self) -> Iterable[Sample]: ...


class _Labelled:
    """Shared by counters and gauges: one float per label-value tuple."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"bad label name {label!r} for {name}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}

    def _key(self, labels: dict[str, object]) -> tuple[str, ...]:
        if len(labels) != len(self.labelnames) or not all(n in labels for n in self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {list(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def set(self, value: Number, **labels: object) -> None:
        self._values[self._key(labels)] = float(value)

    def inc(self, amount: Number = 1, **labels: object) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + float(amount)

    def value(self, **labels: object) -> float:
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterator[Sample]:
        for key, value in self._values.items():
            yield "", tuple(zip(self.labelnames, key, strict=True)), value


class Counter(_Labelled):
    """A monotonic total. `inc` as things happen; `set` mirrors a count kept
    elsewhere (scrape-time collection)."""

    kind = "counter"

    def inc(self, amount: Number = 1, **labels: object) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up")
        super().inc(amount, **labels)


class Gauge(_Labelled):
    """A value that goes up and down."""

    kind = "gauge"

    def dec(self, amount: Number = 1, **labels: object) -> None:
        self.inc(-float(amount), **labels)


class LatencyHistogram:
    """A fixed-bucket histogram without labels; `observe(seconds)` is cheap
    enough for every event batch (a bisect and three additions)."""

    kind = "histogram"
    __slots__ = ("name", "help", "bounds", "counts", "sum", "count", "labels")

    def __init__(self, name: str = "", help: str = "",
                 buckets: Sequence[float] = LATENCY_BUCKETS,
                 labels: tuple[tuple[str, str], ...] = ()) -> None:
        if name and not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or math.isinf(bounds[-1]):
            raise ValueError(f"{name}: buckets must be finite, distinct and increasing")
        self.name = name
        self.help = help
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); last is +Inf
        self.sum = 0.0
        self.count = 0
        self.labels = labels

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # le is inclusive
        self.sum += seconds
        self.count += 1

    def samples(self) -> Iterator[Sample]:
        labels = self.labels
        cumulative = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            cumulative += n
            yield "_bucket", (*labels, ("le", format_value(bound))), cumulative
        yield "_bucket", (*labels, ("le", "+Inf")), self.count
        yield "_sum", labels, self.sum
        yield "_count", labels, self.count


class Histogram:
    """A histogram with labels: one `LatencyHistogram` per label-value tuple."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._shape = _Labelled(name, help, labelnames)  # validates names and labels
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.buckets = tuple(buckets)
        self._children: dict[tuple[str, ...], LatencyHistogram] = {}

    def child(self, **labels: object) -> LatencyHistogram:
        """The histogram for these label values (keep it to observe without a lookup)."""
        key = self._shape._key(labels)
        hist = self._children.get(key)
        if hist is None:
            hist = LatencyHistogram(self.name, self.help, self.buckets,
                                    tuple(zip(self.labelnames, key, strict=True)))
            self._children[key] = hist
        return hist

    def observe(self, seconds: float, **labels: object) -> None:
        self.child(**labels).observe(seconds)

    def samples(self) -> Iterator[Sample]:
        for hist in self._children.values():
            yield from hist.samples()


class Registry:
    """Metrics by name, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def register(self, metric: Metric) -> Metric:
        if not metric.name:
            raise ValueError("a registered metric needs a name")
        if metric.name in self._metrics and self._metrics[metric.name] is not metric:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help, labelnames)
        self.register(metric)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help, labelnames)
        self.register(metric)
        return metric

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        metric = Histogram(name, help, labelnames, buckets)
        self.register(metric)
        return metric

    def include(self, collector: Any) -> int:
        """Add what a `prometheus_client` collector yields now; how many families."""
        n = 0
        for family in collector.collect():
            self.register(Collected(family))
            n += 1
        return n

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._metrics.values()))

    def __contains__(self, name: str) -> bool:
        return name in self._metrics

    def render(self) -> str:
        return render(self)


class Collected:
    """A family a `prometheus_client` collector produced, held in a `Registry`."""

    def __init__(self, family: Family) -> None:
        self.family = family
        # the exposed name: the library keeps a counter's family name without _total
        self.name = family.name + ("_total" if family.type == "counter" else "")
        self.help = family.documentation
        self.kind = family.type

    def samples(self) -> Iterator[Sample]:
        for s in self.family.samples:
            yield s.name[len(self.name):], tuple(s.labels.items()), s.value


class _Families:
    """Our metrics as a `prometheus_client` collector: families built at scrape time."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Family]:
        for metric in self._metrics:
            if isinstance(metric, Collected):
                yield metric.family
                continue
            name, kind = metric.name, metric.kind
            if kind == "counter" and name.endswith("_total"):
                family = Family(name[:-len("_total")], metric.help, "counter")
            elif kind == "counter":  # exposed as written, not renamed with _total
                family = Family(name, metric.help, "gauge")
            else:
                family = Family(name, metric.help, kind)
            for suffix, labels, value in metric.samples():
                family.add_sample(name + suffix, dict(labels), float(value))
            yield family


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text (format 0.0.4) of `metrics`, by `prometheus_client`."""
    return generate_latest(_Families(metrics)).decode()  # type: ignore[arg-type]


class KernelMetrics:
    """What the kernel creates (`kernel.metrics = KernelMetrics()`) and feeds:

    - `journal_flush.observe(seconds)` around each journal flush (write + fsync);
    - `bus_dispatch.observe(seconds)` per dispatched event batch;
    - `registry`: both histograms, and anything else the kernel registers
      (`kernel.metrics.registry.counter(...)`); `GET /metrics` renders it.
    """

    def __init__(self) -> None:
        self.registry = Registry()
        self.journal_flush = LatencyHistogram(
            "tapeloop_journal_flush_seconds", "Time to flush (and fsync) the journal buffer")
        self.bus_dispatch = LatencyHistogram(
            "tapeloop_bus_dispatch_seconds",
            "Time to journal and dispatch one event to every handler (1 in 64 sampled)")
        self.registry.register(self.journal_flush)
        self.registry.register(self.bus_dispatch)


class RateMeter:
    """Events per second over a sliding window, from a running total sampled at
    each scrape (no task of its own): the rate since the newest sample at least
    `window_s` old (or the oldest one kept)."""

    def __init__(self, total: int, now: float | None = None, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque(maxlen=4096)
        self._samples.append((time.monotonic() if now is None else now, total))

    def rate(self, total: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        samples = self._samples
        samples.append((now, total))
        while len(samples) > 2 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        t0, n0 = samples[0]
        return (total - n0) / (now - t0) if now > t0 else 0.0


# -- tapeloop's metrics, collected from the kernel at scrape time -----------------------

ORDER_STATES = ("declared", "submitted", "accepted", "partially_filled", "pending_cancel",
                "filled", "canceled", "rejected", "expired")
TRADING_STATES = ("active", "reducing", "halted")
UP_STATES = frozenset({"connected", "simulated"})  # a venue status that counts as up
_IMPORTED = time.time()
_PROCESS = ProcessCollector(registry=None)  # memory, CPU, fds, start time, from /proc


def pnl_by_strategy(portfolio: Any) -> dict[str, dict[str, Decimal]]:
    """{strategy: {realized, unrealized, fees, funding, pnl}} over every position, flat ones
    too, in the account currency (currencies with no conversion left out)."""
    out: dict[str, dict[str, Decimal]] = {}
    for sid in sorted({p.strategy_id for p in portfolio.positions(include_flat=True)}):
        summary = portfolio.pnl_summary(sid)
        out[sid] = {"realized": summary.realized, "unrealized": summary.unrealized,
                    "fees": summary.fees, "funding": summary.funding, "pnl": summary.net}
    return out


def process_start_time() -> float:
    """The process's start in Unix seconds (from /proc; else when this module was
    imported): `process_start_time_seconds` where `ProcessCollector` has no /proc."""
    try:
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[19])  # field 22: starttime, in clock ticks after boot
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _IMPORTED


def resident_memory_bytes() -> int:
    """`process_resident_memory_bytes` where `ProcessCollector` has no /proc."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the peak, KiB


def collect_kernel(kernel: Any, *, fills: int, rejections: Mapping[str, int],
                   events_per_second: float, start_time: float) -> Registry:
    """The scrape-time metrics of a kernel (see `daemon.control.KernelView`); the
    kernel's own `KernelMetrics.registry` is rendered beside them."""
    k, reg = kernel, Registry()
    events = reg.counter("tapeloop_events_total", "Events published on the bus, by type",
                         ["type"])
    for name, n in sorted(k.counts.items()):
        events.set(n, type=name)
    reg.gauge("tapeloop_events_per_second", "Events published per second (10 s window)"
              ).set(events_per_second)
    journal = k.journal
    if journal is not None:
        reg.gauge("tapeloop_journal_written_seq", "Last seq written to the journal"
                  ).set(journal.written_seq)
        reg.gauge("tapeloop_journal_synced_seq", "Last seq fsynced to disk"
                  ).set(journal.synced_seq)
        reg.gauge("tapeloop_journal_backlog_bytes", "Journal bytes buffered, not yet written"
                  ).set(journal.buffered_bytes)
    reg.counter("tapeloop_fills_total", "Fills since the control API started").set(fills)
    rejected = reg.counter("tapeloop_rejections_total",
                           "Order rejections since the control API started, by check", ["check"])
    for check, n in sorted(rejections.items()):
        rejected.set(n, check=check)
    if k.node is not None:
        _collect_node(reg, k.node)
    up = reg.gauge("tapeloop_venue_up", "1 when the venue is connected (or simulated)",
                   ["venue"])
    reconnects = reg.counter("tapeloop_venue_reconnects_total", "Venue reconnections", ["venue"])
    for name, s in sorted(k.venue_states().items()):
        up.set(1 if s.get("status") in UP_STATES else 0, venue=name)
        reconnects.set(s.get("reconnects", 0), venue=name)
    strategies = reg.gauge("tapeloop_strategy_up", "1 when the strategy is running",
                           ["strategy"])
    for sid, status in sorted(k.strategy_states().items()):
        strategies.set(1 if status == "running" else 0, strategy=sid)
    if (alerts := getattr(k, "alerts", None)) is not None:
        _collect_alerts(reg, alerts)
    if not reg.include(_PROCESS):  # no /proc (not Linux): the two we can still tell
        reg.gauge("process_resident_memory_bytes", "Resident memory size in bytes"
                  ).set(resident_memory_bytes())
        reg.gauge("process_start_time_seconds",
                  "Start time of the process since the Unix epoch").set(start_time)
    return reg


def _collect_alerts(reg: Registry, alerts: Any) -> None:
    """daemon.alerts.Alerts: raised and rate-limited, and per channel what went out."""
    reg.counter("tapeloop_alerts_raised_total", "Alerts raised (logged)").set(alerts.raised)
    reg.counter("tapeloop_alerts_suppressed_total", "Alerts rate-limited (not raised)"
                ).set(alerts.rules.dropped)
    sent = reg.counter("tapeloop_alerts_sent_total", "Alerts delivered, by channel",
                       ["channel"])
    failed = reg.counter("tapeloop_alerts_failed_total",
                         "Alert deliveries given up (after the retries), by channel",
                         ["channel"])
    dropped = reg.counter("tapeloop_alerts_overflowed_total",
                          "Alerts dropped from a full channel queue, by channel", ["channel"])
    pending = reg.gauge("tapeloop_alerts_pending", "Alerts queued for a channel",
                        ["channel"])
    for sender in alerts.senders:
        name = sender.channel.name
        sent.set(sender.sent, channel=name)
        failed.set(sender.failed, channel=name)
        dropped.set(sender.overflowed, channel=name)
        pending.set(sender.pending, channel=name)


def _collect_margin(reg: Registry, portfolio: Any) -> None:
    """Perpetuals: margin per account, and each position's distance to liquidation."""
    accounts = portfolio.margin()
    if not accounts:
        return
    balance = reg.gauge("tapeloop_margin_balance", "Wallet plus unrealized PnL, in the "
                        "margin asset", ["venue", "currency"])
    ratio = reg.gauge("tapeloop_margin_ratio", "Maintenance margin over the margin balance "
                      "(liquidation at 1)", ["venue", "currency"])
    usage = reg.gauge("tapeloop_margin_usage", "Initial margin over the margin balance",
                      ["venue", "currency"])
    funding = reg.gauge("tapeloop_funding", "Funding received (+) or paid (-) since the "
                        "start, in the margin asset", ["venue", "currency"])
    for a in accounts:
        labels = {"venue": a.venue, "currency": a.currency}
        balance.set(a.margin_balance, **labels)
        ratio.set(a.margin_ratio or 0, **labels)
        usage.set(a.usage or 0, **labels)
        funding.set(a.funding, **labels)
    distance = reg.gauge("tapeloop_liquidation_distance_pct", "How far the mark is from "
                         "the liquidation price, in % of the mark", ["venue", "symbol"])
    for p in portfolio.perp_positions():
        if p.liquidation_price is not None and p.mark:
            distance.set(abs(p.mark - p.liquidation_price) / p.mark * 100, venue=p.venue,
                         symbol=p.symbol)


def _collect_node(reg: Registry, node: Any) -> None:
    states = CountOf(o.state for o in node.oms.orders.values())
    orders = reg.gauge("tapeloop_orders", "Orders the OMS knows, by state", ["state"])
    for state in sorted({*ORDER_STATES, *states}):
        orders.set(states.get(state, 0), state=state)
    portfolio = node.portfolio
    currency = portfolio.account_currency or "none"
    pnl = reg.gauge("tapeloop_pnl", f"Strategy PnL in the account currency ({currency})",
                    ["strategy", "kind"])
    for sid, row in sorted(pnl_by_strategy(portfolio).items()):
        for kind in ("realized", "unrealized", "fees"):
            pnl.set(row[kind], strategy=sid, kind=kind)
    position = reg.gauge("tapeloop_position", "Signed position quantity",
                         ["venue", "symbol", "strategy"])
    for p in portfolio.positions(include_flat=True):
        position.set(p.qty, venue=p.venue, symbol=p.symbol, strategy=p.strategy_id)
    reg.gauge("tapeloop_equity", f"Account equity in the account currency ({currency}): "
              "balances valued at the marks, unvalued currencies left out"
              ).set(portfolio.equity())
    unvalued = reg.gauge("tapeloop_unvalued_balance",
                         "Balances with no conversion into the account currency",
                         ["venue", "currency"])
    for u in portfolio.unvalued():
        unvalued.set(u.balance, venue=u.venue, currency=u.currency)
    _collect_margin(reg, portfolio)
    trading = reg.gauge("tapeloop_trading_state", "1 for the current trading state", ["state"])
    current = node.risk.state
    for state in sorted({*TRADING_STATES, current}):
        trading.set(1 if state == current else 0, state=state)
