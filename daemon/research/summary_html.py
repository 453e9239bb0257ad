"""The sweep's HTML summary: one self-contained page (inline CSS, SVG and a few lines
of script to sort the leaderboard; nothing fetched, so it opens offline and from an
archive), in the replay report's style (`replay.report_html`).

It shows a sortable leaderboard of every finished job, a heatmap of the ranking
metric when the grid varies exactly two parameters (averaged over windows), the top
N equity curves overlaid (in percent of their initial equity), the Monte Carlo of the
jobs that carry one, the walk-forward windows (in-sample against out-of-sample, and
the stitched out-of-sample curve) and the jobs that failed.

The page depends on the rows, not on their order (results arrive as jobs finish):
everything is ranked or sorted with the job id as the last key. Every piece of text
is escaped: parameter values and ids come from user files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from daemon.research.ranking import METRICS, metric_value, ranked
from daemon.research.summary_svg import overlay_svg
from replay.report_html import CSS, _axis_pct, _card, _chart, _num, _table
from replay.report_mc import pct

# Leaderboard metric columns: (key in row["metrics"], header, kind).
_METRIC_COLUMNS = (
    ("total_return", "total_return", "pct"),
    ("sharpe", "sharpe", "num"),
    ("sortino", "sortino", "num"),
    ("max_drawdown", "max_drawdown", "pct"),
    ("profit_factor", "profit_factor", "num"),
    ("win_rate", "win_rate", "pct"),
    ("trades", "trades", "int"),
)

SUMMARY_CSS = """
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[data-dir="desc"]::after { content: " \\25BC"; }
table.sortable th[data-dir="asc"]::after { content: " \\25B2"; }
table.heatmap td { text-align: center; min-width: 56px; color: #1d2330; }
table.heatmap th { text-align: center; }
.legend { list-style: none; padding: 0; margin: 8px 0; columns: 2; font-size: 13px; }
.legend .sw { display: inline-block; width: 14px; height: 3px; vertical-align: middle;
              margin-right: 6px; }
"""

# Click a header: sort by that column's data-v (numbers as numbers, n/a last);
# a second click reverses. The page is complete without it.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.getAttribute("data-dir") === "desc" ? "asc" : "desc";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("data-dir"); });
      th.setAttribute("data-dir", dir);
      var num = th.getAttribute("data-type") === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var c = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return dir === "asc" ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def render_summary(rows: list[dict], *, title: str, metric: str = "sharpe", top_n: int = 10,
                   walk_forward: dict | None = None) -> str:
    """The summary page of a sweep's job result rows (ok, error or skipped), ranked
    by `metric` (one of `METRICS`), with the top `top_n` equity curves and the
    walk-forward report when there is one."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: not one of {', '.join(sorted(METRICS))}")
    ok = ranked([r for r in rows if r.get("status") == "ok"], metric)
    failed = sorted((r for r in rows if r.get("status") != "ok"),
                    key=lambda r: str(r.get("job_id")))
    # The grid's own rows (a walk-forward has training rounds instead).
    primary = [r for r in ok if r.get("phase", "sweep") == "sweep"] or \
        [r for r in ok if r.get("phase") == "train"] or ok
    keys = param_keys(ok)
    best = ok[0] if ok else None
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}{SUMMARY_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="sub">{escape(_subtitle(rows, ok, metric))}</div>',
        '<div class="cards">',
        _card("Jobs", len(rows)),
        _card("Finished", len(ok)),
        _card("Failed", len(failed)),
        _card(f"Best {metric}", _metric_text(metric, metric_value(best, metric))
              if best else None),
        _card("Best params", params_text(best["params"]) if best else None),
        "</div>",
        f"<h2>Leaderboard (by {escape(metric)})</h2>",
        leaderboard_html(ok, keys),
        f"<h2>Heatmap of {escape(metric)}</h2>",
        heatmap_html(primary, metric),
        f"<h2>Top {min(top_n, len(primary))} equity curves (by {escape(metric)})</h2>",
        curves_html(primary[:top_n], metric),
        *_monte_carlo_section(ok),
        *(_walk_forward_section(walk_forward) if walk_forward is not None else ()),
        "<h2>Failed jobs</h2>",
        _with_id("failed", _table(
            ("job", "status", "params", "window", "error"),
            [(r.get("job_id"), r.get("status"), params_text(r.get("params") or {}),
              window_text(r), r.get("error")) for r in failed], empty="none")),
        f"<script>{SORT_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# -- ranking -----------------------------------------------------------------------------


def param_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """"strategy.param" of every parameter any row sets, sorted."""
    return sorted({f"{sid}.{name}" for r in rows
                   for sid, ps in (r.get("params") or {}).items() for name in ps})


def param_value(row: Mapping[str, Any], key: str) -> Any:
    sid, _, name = key.partition(".")
    return (row.get("params") or {}).get(sid, {}).get(name)


def params_text(params: Mapping[str, Mapping[str, Any]]) -> str:
    return " ".join(f"{sid}.{k}={v}" for sid, ps in sorted(params.items())
                    for k, v in sorted(ps.items())) or "(config)"


def window_text(row: Mapping[str, Any]) -> str:
    a, b = row.get("date_from"), row.get("date_to")
    span = "all days" if a is None and b is None else str(a) if a == b else \
        f"{a or '…'} → {b or '…'}"
    phase = row.get("phase") or "sweep"
    if phase != "sweep":
        return f"{phase} #{row.get('window')} {span}"
    return span


# -- leaderboard -------------------------------------------------------------------------


def leaderboard_html(rows: Sequence[dict], keys: Sequence[str]) -> str:
    """The finished jobs in rank order; each cell carries its sort value (data-v)."""
    if not rows:
        return '<p class="muted">no finished job</p>'
    currencies = {r.get("currency") for r in rows}
    net_head = f"pnl net ({currencies.pop()})" if len(currencies) == 1 and None not in \
        currencies else "pnl net"
    numeric = {k: all(_value_key(param_value(r, k))[0] == 0 for r in rows
                      if param_value(r, k) is not None) for k in keys}
    heads = [("#", "num"), *((k, "num" if numeric[k] else "text") for k in keys),
             ("window", "text"),
             *((h, "num") for _, h, _ in _METRIC_COLUMNS), (net_head, "num"),
             ("fills", "num"), ("wall_s", "num")]
    out = ['<table class="sortable" id="leaderboard"><thead><tr>']
    out += [f'<th data-type="{t}">{escape(h)}</th>' for h, t in heads]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(rows, 1):
        m = row.get("metrics") or {}
        net = (row.get("pnl") or {}).get("net")
        cells = [_td(rank, str(rank))]
        for k in keys:
            v = param_value(row, k)
            cells.append(_td(_sort_value(v), None if v is None else _value_text(v)))
        cells.append(_td(window_text(row), window_text(row)))
        for key, _, kind in _METRIC_COLUMNS:
            v = m.get(key)
            cells.append(_td(v, _format(kind, v)))
        cells.append(_td(net, net, signed=True))
        cells.append(_td(row.get("fills"), _format("int", row.get("fills"))))
        cells.append(_td(row.get("wall_s"), _num(row.get("wall_s"), ".2f")))
        out.append(f'<tr data-job="{escape(str(row.get("job_id")))}">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _td(sort: Any, text: str | None, signed: bool = False) -> str:
    """A cell showing `text` (n/a when None), sorted by `sort` ("" sorts last)."""
    v = "" if sort is None else sort if isinstance(sort, str) else _float_text(sort)
    if text is None:
        return f'<td class="muted" data-v="{escape(v)}">n/a</td>'
    cls = ""
    if signed:
        cls = ' class="neg"' if text.startswith("-") else ' class="pos"' \
            if text.strip("0.") else ""
    return f'<td{cls} data-v="{escape(v)}">{escape(text)}</td>'


def _sort_value(v: Any) -> Any:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else \
        None if v is None else _value_text(v)


# -- heatmap -----------------------------------------------------------------------------


def heatmap_html(rows: Sequence[dict], metric: str) -> str:
    """`metric` over the grid of the two parameters that vary (rows: the first,
    columns: the second), each cell the mean over its jobs (windows); a note when
    the grid does not vary exactly two."""
    keys = param_keys(rows)
    varying = [k for k in keys if len({_value_key(param_value(r, k)) for r in rows}) > 1]
    if len(varying) != 2:
        names = f" ({', '.join(varying)})" if varying else ""
        text = f"a heatmap needs exactly two varying parameters; this grid varies " \
            f"{len(varying)}{names}"
        return f'<p class="muted">{escape(text)}</p>'
    ky, kx = varying
    ys = sorted({_value_key(param_value(r, ky)) for r in rows})
    xs = sorted({_value_key(param_value(r, kx)) for r in rows})
    cells: dict[tuple[Any, Any], list[float]] = {}
    counts: dict[tuple[Any, Any], int] = {}
    for r in rows:
        at = (_value_key(param_value(r, ky)), _value_key(param_value(r, kx)))
        counts[at] = counts.get(at, 0) + 1
        v = metric_value(r, metric)
        if v is not None and math.isfinite(v):
            cells.setdefault(at, []).append(v)
    means = {at: math.fsum(vs) / len(vs) for at, vs in cells.items()}
    lo, hi = (min(means.values()), max(means.values())) if means else (0.0, 0.0)
    out = ['<table class="heatmap" id="heatmap"><tr>',
           f"<th>{escape(ky)} \\ {escape(kx)}</th>",
           *(f'<th data-x="{escape(x[2])}">{escape(x[2])}</th>' for x in xs), "</tr>"]
    for y in ys:
        out.append(f'<tr><th data-y="{escape(y[2])}">{escape(y[2])}</th>')
        for x in xs:
            n = counts.get((y, x), 0)
            attrs = f'data-y="{escape(y[2])}" data-x="{escape(x[2])}" data-n="{n}"'
            if (y, x) not in means:
                out.append(f'<td class="muted" {attrs} data-v="">{"n/a" if n else ""}</td>')
                continue
            v = means[(y, x)]
            color = _heat_color(v, lo, hi, METRICS[metric])
            out.append(f'<td {attrs} data-v="{_float_text(v)}" style="background:{color}" '
                       f'title="{n} job{"s" if n != 1 else ""}">'
                       f"{escape(_metric_text(metric, v) or '')}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _value_key(v: Any) -> tuple[int, Any, str]:
    """Sorts parameter values: numbers by value, then text; keeps their label."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (0, float(v), _value_text(v))
    return (1, 0.0, _value_text(v))


def _value_text(v: Any) -> str:
    return "n/a" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _heat_color(v: float, lo: float, hi: float, sign: int) -> str:
    """Red (worst) through pale yellow to green (best)."""
    t = 0.5 if hi <= lo else (v - lo) / (hi - lo)
    if sign < 0:
        t = 1.0 - t
    bad, mid, good = np.array((244, 170, 160)), np.array((250, 240, 190)), \
        np.array((150, 215, 160))
    rgb = bad + (mid - bad) * (t * 2) if t < 0.5 else mid + (good - mid) * ((t - 0.5) * 2)
    return "#" + "".join(f"{int(round(c)):02x}" for c in rgb)


# -- equity curves -----------------------------------------------------------------------


def curves_html(rows: Sequence[dict], metric: str) -> str:
    """The rows' equity curves in one chart, in percent of their initial equity,
    with a legend of their parameters."""
    series = []
    for rank, row in enumerate(rows, 1):
        eq = row.get("equity") or []
        if not eq:
            continue
        ts = np.asarray([p[0] for p in eq], dtype=np.int64)
        values = np.asarray([p[1] for p in eq], dtype=np.float64)
        base = float(row["initial_equity"]) if row.get("initial_equity") else values[0]
        in_pct = (values / base - 1.0) * 100.0 if base > 0 else np.zeros_like(values)
        label = f"#{rank} {params_text(row.get('params') or {})}, {window_text(row)}: " \
            f"{metric} {_metric_text(metric, metric_value(row, metric)) or 'n/a'}"
        series.append((str(row.get("job_id")), label, ts, in_pct))
    if not series:
        return '<p class="muted">no equity curves</p>'
    svg, colors = overlay_svg([(job, ts, values) for job, _, ts, values in series])
    legend = "".join(
        f'<li data-job="{escape(job)}"><span class="sw" style="background:{color}"></span>'
        f"{escape(label)}</li>" for (job, label, _, _), color in zip(series, colors, strict=True))
    return f'{svg}<ul class="legend">{legend}</ul>'


# -- Monte Carlo and walk-forward ----------------------------------------------------------


def _monte_carlo_section(rows: Sequence[dict]) -> list[str]:
    with_mc = [r for r in rows if isinstance(r.get("monte_carlo"), Mapping)]
    if not with_mc:
        return []
    table = []
    for r in with_mc:
        mc = r["monte_carlo"]
        ret, dd = mc.get("final_return") or {}, mc.get("max_drawdown") or {}
        table.append((params_text(r.get("params") or {}), window_text(r), mc.get("trades"),
                      mc.get("runs"), mc.get("seed"), pct(ret.get("p5")),
                      pct(ret.get("p50")), pct(ret.get("p95")), pct(dd.get("p50")),
                      pct(dd.get("p95")), pct(mc.get("loss_probability")),
                      mc.get("note") or ""))
    return [
        "<h2>Monte Carlo (bootstrap of each job's closed trades)</h2>",
        _with_id("monte-carlo", _table(
            ("params", "window", "trades", "paths", "seed", "return p5", "return p50",
             "return p95", "max dd p50", "max dd p95", "P(loss)", "note"), table)),
    ]


def _walk_forward_section(wf: Mapping[str, Any]) -> list[str]:
    metric = str(wf.get("metric", ""))
    kind = "pct" if metric in ("total_return", "max_drawdown", "win_rate") else "num"
    rows = []
    for w in wf.get("windows") or ():
        ins, oos = w.get("in_sample") or {}, w.get("out_of_sample") or {}
        rows.append((
            w.get("window"), _span(w.get("train")), _span(w.get("test")),
            params_text(w["best_params"]) if w.get("best_params") else None,
            _format(kind, ins.get(metric)), _format("pct", ins.get("total_return")),
            _format(kind, oos.get(metric)), _format("pct", oos.get("total_return")),
        ))
    overall = wf.get("overall") or {}
    rows.append(("overall", "", "", "", "", _format("pct", overall.get("in_sample_return")),
                 "", _format("pct", overall.get("out_of_sample_return"))))
    daily = [f"{label} {text}" for key, label in (
        ("in_sample_daily", "in-sample daily return"),
        ("out_of_sample_daily", "out-of-sample daily return"),
        ("efficiency", "walk-forward efficiency (out-of-sample / in-sample daily)"))
        if (text := _format("num" if key == "efficiency" else "pct", overall.get(key)))]
    eq = wf.get("equity") or []
    ts = np.asarray([p[0] for p in eq], dtype=np.int64)
    values = np.asarray([p[1] for p in eq], dtype=np.float64)
    if values.size and values[0] > 0:  # in percent of where it started
        values = (values / values[0] - 1.0) * 100.0
    return [
        f"<h2>Walk-forward ({escape(str(wf.get('mode', '')))}, best in-sample "
        f"{escape(metric)})</h2>",
        _with_id("walk-forward", _table(
            ("window", "train", "test", "best params", f"in-sample {metric}",
             "in-sample return", f"out-of-sample {metric}", "out-of-sample return"), rows)),
        *([f'<p>{escape("; ".join(daily))}</p>'] if daily else []),
        "<h2>Out-of-sample equity, % (test windows stitched)</h2>",
        _chart(ts, values, height=320, color="#1a5fb4", fill=False, fmt=_axis_pct),
    ]


def _with_id(table_id: str, html: str) -> str:
    """`replay.report_html._table`'s table with an id (a page's tables are found by it)."""
    return html.replace("<table>", f'<table id="{table_id}">', 1)


def _span(pair: Sequence[str] | None) -> str | None:
    if not pair:
        return None
    return str(pair[0]) if pair[0] == pair[-1] else f"{pair[0]} → {pair[-1]}"


# -- formatting --------------------------------------------------------------------------


def _subtitle(rows: Sequence[dict], ok: Sequence[dict], metric: str) -> str:
    spans = sorted({(str(r.get("date_from")), str(r.get("date_to"))) for r in rows})
    days = f"{spans[0][0]} → {spans[-1][1]}" if spans and spans[0][0] != "None" else "all days"
    return f"{len(rows)} jobs, {len(ok)} finished, ranked by {metric}; {days}"


def _metric_text(metric: str, v: float | None) -> str | None:
    kind = {"total_return": "pct", "max_drawdown": "pct", "win_rate": "pct",
            "trades": "int", "net": "num"}.get(metric, "num")
    return _format(kind, v)


def _format(kind: str, v: Any) -> str | None:
    if v is None:
        return None
    if kind == "pct":  # a day's return is often a hundredth of a percent: 4 places below 1 %
        return pct(float(v))
    if kind == "int":
        return f"{int(v):,}"
    return _num(float(v))


def _float_text(x: Any) -> str:
    """A sort key: the shortest text that round-trips (no locale, no rounding)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return ""
    return repr(f) if math.isfinite(f) else ""


