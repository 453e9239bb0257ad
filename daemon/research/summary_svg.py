"""The sweep summary's overlay chart: several equity curves (in percent of their
initial equity) in one inline SVG, in the replay report's chart style.

Curves that start at the same moment share a clock axis; curves of different
windows (one job per day) are drawn from their own start, on an elapsed-time axis,
so they overlay instead of standing side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from replay.report_html import (
    NS_PER_S,
    PAD_BOTTOM,
    PAD_LEFT,
    PAD_RIGHT,
    PAD_TOP,
    WIDTH,
    _axis_pct,
    _time_label,
    downsample,
    nice_ticks,
)

HEIGHT = 360
MAX_POINTS = 500  # per curve: the summary holds many
# Ten distinct colours (the Tableau 10 palette), reused in order past ten curves.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def overlay_svg(series: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> tuple[str, list[str]]:
    """The chart of (job id, ns timestamps, values in percent) curves, each a
    `<path class="curve" data-job=...>`; returns it with each curve's colour."""
    same_start = len({int(ts[0]) for _, ts, _ in series}) == 1
    xs_all = [ts - (0 if same_start else ts[0]) for _, ts, _ in series]
    t0 = min(float(x[0]) for x in xs_all)
    t1 = max(float(x[-1]) for x in xs_all)
    if t1 <= t0:
        t1 = t0 + 1.0
    lo = min(float(v.min()) for _, _, v in series)
    hi = max(float(v.max()) for _, _, v in series)
    ticks = nice_ticks(min(lo, 0.0), max(hi, 0.0))
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    out = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">']
    for tick in ticks:
        y = PAD_TOP + (hi - tick) / (hi - lo) * plot_h
        stroke = "#c9d0db" if tick == 0 else "#e7eaf0"
        out.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{stroke}"/><text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(_axis_pct(tick))}</text>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = PAD_LEFT + frac * plot_w
        anchor = "start" if frac == 0 else "end" if frac == 1 else "middle"
        at = t0 + frac * (t1 - t0)
        label = _time_label(int(at)) if same_start else _elapsed(at - t0)
        out.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">'
                   f"{escape(label)}</text>")
    colors = []
    for i, ((job, _, values), xs) in enumerate(zip(series, xs_all, strict=True)):
        color = PALETTE[i % len(PALETTE)]
        colors.append(color)
        idx = downsample(values, MAX_POINTS)
        px = PAD_LEFT + (xs[idx].astype(np.float64) - t0) / (t1 - t0) * plot_w
        py = PAD_TOP + (hi - values[idx]) / (hi - lo) * plot_h
        if px.size == 1:  # one sample: a short flat segment
            px, py = np.append(px, px[0] + 2.0), np.append(py, py[0])
        line = "M" + " L".join(f"{x:.2f},{y:.2f}" for x, y in zip(px, py, strict=True))
        out.append(f'<path class="curve" data-job="{escape(job)}" d="{line}" fill="none" '
                   f'stroke="{color}" stroke-width="1.4" stroke-opacity="0.9"/>')
    out.append("</svg>")
    return "".join(out), colors


def _elapsed(ns: float) -> str:
    """Time since each curve's start, as "+2d 3h", "+5h 30m" or "+12m"."""
    minutes = int(ns / NS_PER_S // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"+{days}d {hours}h"
    return f"+{hours}h {mins:02d}m" if hours else f"+{mins}m"
