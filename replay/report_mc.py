"""The Monte Carlo section of the replay report: report.json's `monte_carlo` dict
(computed by `daemon.research.montecarlo`; `replay/` only renders it) as HTML, a
percentile table and a histogram of the paths' final returns in inline SVG.

Present only when the run asked for it, so a report without one is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from replay.report_html import PAD_BOTTOM, PAD_LEFT, PAD_RIGHT, PAD_TOP, WIDTH, _table

PERCENTILE_KEYS = ("p5", "p25", "p50", "p75", "p95")
HIST_HEIGHT = 200


def monte_carlo_html(mc: Mapping[str, Any]) -> str:
    """The section: heading, method, percentile table, loss probability, histogram."""
    runs, trades, seed = mc.get("runs"), mc.get("trades"), mc.get("seed")
    parts = [
        "<h2>Monte Carlo</h2>",
        f'<p class="sub">{escape(f"{runs:,} paths of {trades} trades, seed {seed}")}: '
        f"{escape(str(mc.get('method', '')))}</p>",
    ]
    if mc.get("note"):
        parts.append(f'<p class="muted">{escape(str(mc["note"]))}</p>')
        return "".join(parts)
    observed = mc.get("observed") or {}
    rows = [
        (label, *(pct(mc[key].get(p)) for p in PERCENTILE_KEYS), pct(observed.get(key)))
        for key, label in (("final_return", "final return"), ("max_drawdown", "max drawdown"))
    ]
    parts.append(_table(("", "5%", "25%", "50%", "75%", "95%", "observed"), rows))
    parts.append(f"<p>probability of a loss: {escape(pct(mc.get('loss_probability')) or 'n/a')}"
                 "</p>")
    hist = mc.get("histogram")
    if hist:
        parts.append("<h2>Final return of the paths</h2>")
        parts.append(histogram_svg(hist["edges"], hist["counts"]))
    return "".join(parts)


def histogram_svg(edges: list[float], counts: list[int]) -> str:
    """Bars of `counts` over the bins `edges` (returns, shown in percent)."""
    top = max(counts, default=0) or 1
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HIST_HEIGHT - PAD_TOP - PAD_BOTTOM
    bar_w = plot_w / max(len(counts), 1)
    out = [f'<svg viewBox="0 0 {WIDTH} {HIST_HEIGHT}" xmlns="http://www.w3.org/2000/svg" '
           'role="img">']
    base = PAD_TOP + plot_h
    out.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{base}" y2="{base}" '
               'stroke="#c9d0db"/>')
    out.append(f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + 4}" text-anchor="end">{top:,}</text>')
    for i, count in enumerate(counts):
        h = count / top * plot_h
        x = PAD_LEFT + i * bar_w
        color = "#b3261e" if edges[i + 1] <= 0 else "#137333" if edges[i] >= 0 else "#5b6577"
        out.append(f'<rect x="{x + 1:.2f}" y="{base - h:.2f}" width="{max(bar_w - 2, 1):.2f}" '
                   f'height="{h:.2f}" fill="{color}" fill-opacity="0.6"/>')
    for i in (0, len(edges) // 2, len(edges) - 1):
        x = PAD_LEFT + i * bar_w
        anchor = "start" if i == 0 else "end" if i == len(edges) - 1 else "middle"
        out.append(f'<text x="{x:.1f}" y="{HIST_HEIGHT - 8}" text-anchor="{anchor}">'
                   f"{escape(f'{edges[i] * 100:.3g}%')}</text>")
    out.append("</svg>")
    return "".join(out)


def summary_line(mc: Mapping[str, Any]) -> str:
    """One terminal line of a `monte_carlo` result."""
    head = f"monte carlo {mc['runs']:,} paths of {mc['trades']} trades, seed {mc['seed']}"
    if mc.get("note"):
        return f"{head}: {mc['note']}"
    r, d = mc["final_return"], mc["max_drawdown"]
    return (f"{head}: return p5 {pct(r['p5'])} p50 {pct(r['p50'])} p95 {pct(r['p95'])}"
            f"  max drawdown p50 {pct(d['p50'])} p95 {pct(d['p95'])}"
            f"  P(loss) {pct(mc['loss_probability'])}")


def pct(x: float | None) -> str | None:
    """A fraction in percent, with 4 decimals below 1 % (a bootstrap of one day's
    trades moves the return by hundredths of a percent) and 2 above."""
    if x is None:
        return None
    places = 2 if abs(x) >= 0.01 else 4
    return f"{x * 100:.{places}f}%"
