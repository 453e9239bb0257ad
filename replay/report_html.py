"""The human replay report: one self-contained HTML page (inline CSS and SVG,
no scripts, no external resources, so it opens offline and from an archive).

It shows the equity curve (and, on a chart of its own, against buy-and-hold) and the
drawdown as inline SVG charts, downsampled to at most `MAX_POINTS` points
each with a min/max-per-bucket rule so peaks and troughs (the max drawdown)
survive; a price chart per traded symbol with every fill marked, the returns
per day and the round trips (`replay.report_sections`); then the metrics,
PnL, per-strategy and per-symbol tables, final positions and rejections by
check. Axis labels carry the digits that differ between ticks. A run with
perpetuals also shows its margin usage chart, funding and liquidations. Every piece
of text is HTML-escaped: strategy ids and symbols come from user config.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

import numpy as np

from replay.metrics import RoundTrip
from replay.report_series import PriceSeries

MAX_POINTS = 2000
NS_PER_S = 1_000_000_000

# Chart geometry, in SVG user units (the SVG scales to the page width).
WIDTH = 1000
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 90, 20, 16, 28

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330;
       margin: 24px auto; max-width: 1100px; padding: 0 16px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #5b6577; margin-bottom: 16px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { border: 1px solid #dde2ea; border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.card .k { color: #5b6577; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e7eaf0; padding: 4px 12px 4px 0; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { color: #5b6577; font-weight: 600; }
.pos { color: #137333; } .neg { color: #b3261e; } .muted { color: #8a93a3; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: #5b6577; }
.legend { font-size: 12px; color: #5b6577; margin: 2px 0 6px; }
.legend i { display: inline-block; width: 18px; height: 0; border-top: 2px solid;
            vertical-align: middle; margin: 0 4px 0 10px; }
.legend i.dash { border-top-style: dashed; }
.bars td:last-child { text-align: left; color: #5b6577; letter-spacing: -1px; }
"""


def render_html(
    report: Mapping[str, Any], *, ts_ns: np.ndarray, equity: np.ndarray, drawdown: np.ndarray,
    margin: tuple[np.ndarray, np.ndarray] | None = None,
    benchmark: np.ndarray | None = None,
    prices: Sequence[PriceSeries] = (),
    trades: Sequence[RoundTrip] = (),
) -> str:
    """The report page for a report dict and its equity samples (ns
    timestamps, equity, drawdown as a positive fraction, NaN where undefined);
    `margin` is the margin usage series (ns timestamps, fraction) of a run
    with perpetuals; `benchmark` the buy-and-hold value at each equity sample;
    `prices` the traded symbols' marks and fills; `trades` the round trips."""
    from replay.report_sections import (
        benchmark_legend,
        daily_returns_section,
        price_sections,
        trades_section,
    )

    perp = report.get("perpetuals")
    m = report.get("metrics", {})
    pnl = report.get("pnl", {})
    currency = report.get("account_currency")
    unit = f" ({currency})" if currency else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>tapeloop replay report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>tapeloop replay report</h1>",
        f'<div class="sub">{_span(ts_ns)}</div>',
        '<div class="cards">',
        _card(f"Net PnL{unit}", pnl.get("net"), signed=True),
        _card("Total return", _pct(m.get("total_return")), signed=True),
        _card("Sharpe", _num(m.get("sharpe"))),
        _card("Max drawdown", _pct(m.get("max_drawdown"))),
        _card("Trades", m.get("trades")),
        _card("Fills", len(report.get("fills", ()))),
        "</div>",
        f"<h2>Equity{escape(unit)}</h2>",
        equity_svg(ts_ns, equity),
        "<h2>Drawdown</h2>",
        drawdown_svg(ts_ns, drawdown),
        # apart from the equity chart: buy-and-hold of a $1M account moves by
        # thousands where a strategy may move by tens, and would flatten its curve
        *([f"<h2>Against buy-and-hold{escape(unit)}</h2>",
           *benchmark_legend(report.get("benchmark")),
           equity_svg(ts_ns, equity, benchmark)] if benchmark is not None else []),
        *price_sections(prices),
        *daily_returns_section(report.get("daily_returns") or ()),
        *trades_section(trades),
        *(_margin_chart(margin) if perp else ()),
        "<h2>Metrics</h2>",
        _table(("metric", "value"), _metric_rows(m)),
        *_monte_carlo(report.get("monte_carlo")),
        f"<h2>PnL{escape(unit)}</h2>",
        _table(
            ("", "value"),
            [
                (k, pnl.get(k) if k == "fees" else _signed(pnl.get(k)))
                for k in ("realized", "unrealized", "fees", "net")
            ]
            + [
                ("initial equity", report.get("initial_equity")),
                ("final equity", report.get("final_equity")),
            ],
        ),
        "<h2>PnL by currency</h2>",
        _table(
            ("currency", "realized", "unrealized", "fees", "net"),
            [
                (c, _signed(p.get("realized")), _signed(p.get("unrealized")), p.get("fees"),
                 _signed(p.get("net")))
                for c, p in sorted(report.get("pnl_by_currency", {}).items())
            ],
            empty="none",
        ),
        *_unvalued_section(report.get("unvalued") or ()),
        *(_perpetual_tables(perp) if perp else ()),
        "<h2>Per strategy</h2>",
        _breakdown_table("strategy", report.get("per_strategy", {})),
        "<h2>Per symbol</h2>",
        _breakdown_table("symbol", report.get("per_symbol", {})),
        "<h2>Final positions</h2>",
        _table(("symbol", "qty"), sorted(report.get("final_positions", {}).items()), empty="none"),
        "<h2>Rejections by check</h2>",
        _table(("check", "orders"), sorted(report.get("rejections", {}).items()), empty="none"),
        "<h2>Run</h2>",
        _table(
            ("", "value"),
            [
                ("events in", _int(report.get("events_in"))),
                ("wall time (s)", _num(report.get("wall_s"), ".3f")),
                ("events / s", _num(report.get("events_per_s"), ",.0f")),
                ("fills", _int(len(report.get("fills", ())))),
                ("equity samples", _int(report.get("equity_samples"))),
            ],
        ),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _monte_carlo(mc: Mapping[str, Any] | None) -> list[str]:
    """The Monte Carlo section, only for a run that asked for one."""
    if mc is None:
        return []
    from replay.report_mc import monte_carlo_html  # it builds on this module's helpers

    return [monte_carlo_html(mc)]


def _unvalued_section(unvalued: Iterable[Mapping[str, Any]]) -> list[str]:
    """Money left out of the account's figures for want of a conversion mark."""
    rows = [(u.get("venue"), u.get("currency"), u.get("balance"), _signed(u.get("pnl")),
             u.get("reason")) for u in unvalued]
    if not rows:
        return []
    return ["<h2>Unvalued (left out of equity and PnL)</h2>",
            _table(("venue", "currency", "balance", "pnl", "why"), rows)]


def _margin_chart(margin: tuple[np.ndarray, np.ndarray] | None) -> list[str]:
    ts, usage = margin if margin is not None else (np.zeros(0, np.int64), np.zeros(0))
    if usage.size == 0:
        return ["<h2>Margin usage</h2>", '<p class="muted">no margin usage samples</p>']
    return ["<h2>Margin usage (initial margin / margin balance)</h2>",
            _chart(ts, usage * 100.0, height=170, color="#8a4baf", fill=True, fmt=_axis_pct)]


def _perpetual_tables(perp: Mapping[str, Any]) -> list[str]:
    """Funding by symbol and currency, and every liquidation."""
    f = perp.get("funding", {})
    usage = perp.get("margin_usage", {})
    rows = [(sym, x.get("currency"), x.get("paid"), x.get("received"), _signed(x.get("net")),
             _int(x.get("payments"))) for sym, x in sorted(f.get("by_symbol", {}).items())]
    rows += [(f"total {c}", c, x.get("paid"), x.get("received"), _signed(x.get("net")),
              _int(x.get("payments"))) for c, x in sorted(f.get("by_currency", {}).items())]
    liq = [(_time_label(x["ts_event"]), x.get("venue"), x.get("symbol"), x.get("side"),
            x.get("qty"), x.get("price"), x.get("mark"),
            f"{x.get('fee')} {x.get('fee_currency')}", x.get("strategy_id") or "(account)")
           for x in perp.get("liquidations", ())]
    return [
        "<h2>Funding</h2>",
        _table(("symbol", "currency", "paid", "received", "net", "payments"), rows,
               empty="no funding paid or received"),
        "<h2>Liquidations</h2>",
        _table(("time (UTC)", "venue", "symbol", "side", "qty", "price", "mark", "fee",
                "strategy"), liq, empty="none"),
        _table(("margin usage", "value"),
               [("max", _pct(usage.get("max"))), ("mean", _pct(usage.get("mean"))),
                ("samples", _int(usage.get("samples")))]),
    ]


# -- charts ------------------------------------------------------------------------------


def downsample(values: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most `max_points` points that keep the shape: the first,
    the last, and each bucket's minimum and maximum, in time order."""
    n = values.size
    if n <= max_points:
        return np.arange(n)
    buckets = (max_points - 2) // 2
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    lo, hi = edges[:-1], edges[1:]
    lo = lo[hi > lo]
    if np.isnan(values[1:n - 1]).any():  # argmin/argmax pick the first NaN: bucket by bucket
        keep = [0, n - 1]
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            if b > a:
                chunk = values[a:b]
                keep += [a + int(np.argmin(chunk)), a + int(np.argmax(chunk))]
        return _sorted_unique(np.asarray(keep, dtype=np.int64))
    # every bucket at once: the first index of each bucket's min and max, as argmin
    # and argmax give them (the buckets tile [1, n - 1): edges are increasing)
    body = values[1:n - 1]
    starts = lo - 1
    bucket = np.repeat(np.arange(starts.size), np.diff(np.append(starts, body.size)))
    first_min = _first_per_bucket(body == np.minimum.reduceat(body, starts)[bucket], bucket)
    first_max = _first_per_bucket(body == np.maximum.reduceat(body, starts)[bucket], bucket)
    picked = np.concatenate(([0, n - 1], first_min + 1, first_max + 1))
    return _sorted_unique(picked.astype(np.int64))


def _first_per_bucket(hit: np.ndarray, bucket: np.ndarray) -> np.ndarray:
    where = np.flatnonzero(hit)
    b = bucket[where]  # non-decreasing: where is sorted
    return where[np.flatnonzero(np.concatenate(([True], b[1:] != b[:-1])))]


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    # np.unique, without its first call's import of numpy.ma (20 ms of a replay)
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if a.size else a


def equity_svg(ts_ns: np.ndarray, equity: np.ndarray, benchmark: np.ndarray | None = None
               ) -> str:
    """The equity curve as an inline SVG line chart, with the buy-and-hold
    benchmark (its value at each sample) as a dashed line when given."""
    overlays = [] if benchmark is None else [
        Overlay(ts_ns, benchmark, "#8a93a3", "benchmark", dashed=True)]
    return _chart(ts_ns, equity, height=320, color="#1a5fb4", fill=False, fmt=_axis_num,
                  overlays=overlays)


def drawdown_svg(ts_ns: np.ndarray, drawdown: np.ndarray) -> str:
    """Drawdown as a filled area hanging below zero (percent of the peak)."""
    dd = -np.nan_to_num(drawdown, nan=0.0) * 100.0
    return _chart(ts_ns, dd, height=170, color="#b3261e", fill=True, fmt=_axis_pct)


@dataclass(frozen=True, slots=True)
class Overlay:
    """A further line on a chart (same time axis), e.g. the benchmark."""

    ts_ns: np.ndarray
    values: np.ndarray
    color: str
    name: str
    dashed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Marker:
    """A point drawn on a chart: a triangle up (`up`) or down, filled or
    hollow, with a tooltip."""

    ts_ns: int
    value: float
    up: bool
    filled: bool
    color: str
    css: str
    title: str


def _polyline(xs: np.ndarray, ys: np.ndarray) -> str:
    """An SVG path's points, "Mx,y Lx,y ...". Through Python floats: formatting
    them is several times cheaper than formatting numpy's scalars, to the same text."""
    return "M" + " L".join(f"{x:.2f},{y:.2f}"
                           for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


def _downsampled(ts_ns: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = downsample(values)
    return ts_ns[idx].astype(np.float64), values[idx].astype(np.float64)


def _chart(
    ts_ns: np.ndarray, values: np.ndarray, *, height: int, color: str, fill: bool,
    fmt: Callable[[float], str], overlays: Sequence[Overlay] = (),
    markers: Sequence[Marker] = (), empty: str = "no equity samples",
) -> str:
    if values.size == 0:
        return f'<p class="muted">{escape(empty)}</p>'
    t, v = _downsampled(ts_ns, values)
    lines = [_downsampled(o.ts_ns, o.values) for o in overlays if o.values.size]
    # one sample: a flat segment across the plot, one second wide (a float of
    # ns since 1970 cannot tell t from t + 1)
    if t.size == 1:
        t, v = np.array([t[0], t[0] + NS_PER_S]), np.array([v[0], v[0]])
    t0, t1 = float(t[0]), float(t[-1])
    if t1 <= t0:
        t1 = t0 + NS_PER_S
    extra = [x for _, ov in lines for x in (float(ov.min()), float(ov.max()))]
    extra += [m.value for m in markers]
    lo, hi = min([float(v.min()), *extra]), max([float(v.max()), *extra])
    if fill:
        hi = max(hi, 0.0)
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = height - PAD_TOP - PAD_BOTTOM
    xs = PAD_LEFT + (t - t0) / (t1 - t0) * plot_w
    ys = PAD_TOP + (hi - v) / (hi - lo) * plot_h
    out = [
        f'<svg viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" role="img">',
    ]
    for tick, label in zip(ticks, axis_labels(ticks, fmt), strict=True):
        y = PAD_TOP + (hi - tick) / (hi - lo) * plot_h
        out.append(
            f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e7eaf0"/>'
            f'<text class="y-label" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = PAD_LEFT + frac * plot_w
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        label = _time_label(int(t0 + frac * (t1 - t0)))
        out.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">{escape(label)}</text>'
        )
    line = _polyline(xs, ys)
    if fill:
        base = PAD_TOP + hi / (hi - lo) * plot_h  # the y of value 0
        area = f"{line} L{xs[-1]:.2f},{base:.2f} L{xs[0]:.2f},{base:.2f} Z"
        out.append(f'<path d="{area}" fill="{color}" fill-opacity="0.18" stroke="none"/>')
    out.append(f'<path d="{line}" fill="none" stroke="{color}" stroke-width="1.5"/>')

    def x_of(ts: np.ndarray | float) -> Any:
        return PAD_LEFT + (ts - t0) / (t1 - t0) * plot_w

    def y_of(val: np.ndarray | float) -> Any:
        return PAD_TOP + (hi - val) / (hi - lo) * plot_h

    for o, (ot, ov) in zip((o for o in overlays if o.values.size), lines, strict=True):
        path = _polyline(x_of(ot), y_of(ov))
        dash = ' stroke-dasharray="6 4"' if o.dashed else ""
        out.append(f'<path class="{escape(o.name)}" data-last="{float(o.values[-1])!r}" '
                   f'd="{path}" fill="none" stroke="{o.color}" stroke-width="1.5"{dash}/>')
    for m in markers:
        x, y = x_of(float(m.ts_ns)), y_of(m.value)
        tip = (f"M{x:.2f},{y - 6:.2f} L{x - 5:.2f},{y + 3:.2f} L{x + 5:.2f},{y + 3:.2f} Z"
               if m.up else
               f"M{x:.2f},{y + 6:.2f} L{x - 5:.2f},{y - 3:.2f} L{x + 5:.2f},{y - 3:.2f} Z")
        paint = f'fill="{m.color}"' if m.filled else f'fill="#fff" stroke="{m.color}"'
        out.append(f'<path class="{m.css}" d="{tip}" {paint}>'
                   f"<title>{escape(m.title)}</title></path>")
    out.append("</svg>")
    return "".join(out)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round axis values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        pad = abs(lo) * 0.01 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1.0, 2.0, 2.5, 5.0, 10.0) if s * mag >= raw)
    # Integer multiples of the step, so the labels carry no float drift.
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _axis_num(x: float) -> str:
    if abs(x) >= 1e6:
        return f"{x / 1e6:,.3g}M"
    return f"{x:,.6g}"


def _axis_pct(x: float) -> str:
    return f"{x:.3g}%"


def _decimals(step: float) -> int:
    """The decimals that show a multiple of `step` exactly (2.5 -> 1, 500 -> 0)."""
    for d in range(13):
        scaled = abs(step) * 10**d
        if scaled >= 0.5 and abs(scaled - round(scaled)) < 1e-6 * scaled:
            return d
    return 12


def axis_labels(ticks: Sequence[float], fmt: Callable[[float], str]) -> list[str]:
    """`fmt` of each tick, unless two would read the same (1,000,000 and
    1,000,500 both "1M"): then as many decimals as the step needs, with the
    M suffix only where that still reads short, and % kept for percents."""
    labels = [fmt(t) for t in ticks]
    if len(set(labels)) == len(labels) or len(ticks) < 2:
        return labels
    step = ticks[1] - ticks[0]
    suffix = "%" if all(lbl.endswith("%") for lbl in labels) else ""
    if not suffix and max(abs(t) for t in ticks) >= 1e6 and _decimals(step / 1e6) <= 2:
        d = _decimals(step / 1e6)
        return [f"{t / 1e6:,.{d}f}M" for t in ticks]
    d = _decimals(step)
    return [f"{t:,.{d}f}{suffix}" for t in ticks]


def _time_label(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m-%d %H:%M")


def _span(ts_ns: np.ndarray) -> str:
    if ts_ns.size == 0:
        return ""
    start, end = _time_label(int(ts_ns[0])), _time_label(int(ts_ns[-1]))
    return escape(f"{start} → {end} UTC")


# -- tables and formatting ---------------------------------------------------------------


_METRIC_ORDER = (
    ("total_return", "total return", "pct"),
    ("sharpe", "sharpe (annualised)", "num"),
    ("sortino", "sortino (annualised)", "num"),
    ("max_drawdown", "max drawdown", "pct"),
    ("trades", "trades", "int"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "profit factor", "num"),
    ("return_period_s", "return period (s)", "num"),
    ("returns", "returns used", "int"),
)


def _metric_rows(m: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    rows: list[tuple[str, str | None]] = []
    for key, label, kind in _METRIC_ORDER:
        value = m.get(key)
        text = _pct(value) if kind == "pct" else _int(value) if kind == "int" else _num(value)
        rows.append((label, text))
    known = {k for k, _, _ in _METRIC_ORDER}
    rows += [(k, _num(v) if isinstance(v, float) else str(v)) for k, v in sorted(m.items())
             if k not in known]  # fmt: skip
    return rows


def _breakdown_table(label: str, groups: Mapping[str, Mapping[str, Any]]) -> str:
    header = (label, "fills", "trades", "win rate", "profit factor",
              "realized", "fees", "unrealized", "net")  # fmt: skip
    rows = []
    for name, g in sorted(groups.items()):
        p = g.get("pnl", {})
        rows.append((
            name, _int(g.get("fills")), _int(g.get("trades")), _pct(g.get("win_rate")),
            _num(g.get("profit_factor")), _signed(p.get("realized")), p.get("fees"),
            _signed(p.get("unrealized")), _signed(p.get("net")),
        ))  # fmt: skip
    return _table(header, rows, empty="none")


class _Signed(str):
    """A decimal string to colour by its sign."""


def _signed(value: Any) -> Any:
    return _Signed(value) if isinstance(value, str) else value


def _cell(value: Any, tag: str = "td") -> str:
    if value is None:
        return f'<{tag} class="muted">n/a</{tag}>'
    text = escape(str(value))
    if isinstance(value, _Signed):
        cls = "neg" if value.startswith("-") else "pos" if value.strip("0.") else ""
        if cls:
            return f'<{tag} class="{cls}">{text}</{tag}>'
    return f"<{tag}>{text}</{tag}>"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "") -> str:
    body = ["<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows]
    if not body and empty:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "<tr>" + "".join(_cell(h, "th") for h in header) + "</tr>"
    return "<table>" + head + "".join(body) + "</table>"


def _card(label: str, value: Any, signed: bool = False) -> str:
    text = "n/a" if value is None else str(value)
    cls = ""
    if signed and text.startswith("-"):
        cls = " neg"
    elif signed and text not in ("n/a",) and text.strip("0.%") and not text.startswith("-"):
        cls = " pos"
    return (
        f'<div class="card"><div class="k">{escape(label)}</div>'
        f'<div class="v{cls}">{escape(text)}</div></div>'
    )


def _pct(x: Any) -> str | None:
    return None if x is None else f"{x * 100:.2f}%"


def _num(x: Any, spec: str = ".3f") -> str | None:
    return None if x is None else format(x, spec)


def _int(x: Any) -> str | None:
    return None if x is None else f"{x:,}"
