"""The sweep's HTML summary, read back with html.parser: the leaderboard's rows and
order, the heatmap's cells, the overlaid curves, the Monte Carlo, walk-forward and
failed-job tables, escaping, and a page that depends on the rows, not their order."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
from collections import Counter
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest

from daemon.research.montecarlo import monte_carlo
from daemon.research.summary_html import render_summary

T0 = 1_381_147_200 * 10**9  # 2013-10-07 12:00 UTC
MIN = 60 * 10**9


class Page(HTMLParser):
    """Tables (by id, or "#n" in page order) as rows of (tag, attrs, text) cells, the
    attributes of every tag, and the text of the headings."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.h2: list[str] = []
        self._table: list[dict[str, Any]] | None = None
        self._cell: list[Any] | None = None
        self._h2: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"#{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append({"attrs": a, "cells": []})
        elif tag in ("td", "th") and self._table is not None:
            self._cell = [tag, a, ""]
        elif tag == "h2":
            self._h2 = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1]["cells"].append(tuple(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "h2" and self._h2 is not None:
            self.h2.append("".join(self._h2))
            self._h2 = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[2] += data
        if self._h2 is not None:
            self._h2.append(data)

    def body_rows(self, table: str) -> list[dict[str, Any]]:
        return [r for r in self.tables[table] if r["cells"] and r["cells"][0][0] == "td"]

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.tags
                   if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def row(job: str, params: dict, *, sharpe: float | None = 1.0, ret: float = 0.01,
        day: str = "2013-10-07", equity: bool = True, **over: Any) -> dict[str, Any]:
    start = T0 + (int(day[-2:]) - 7) * 86_400 * 10**9
    curve = [[start + i * MIN, 1_000_000.0 * (1 + ret * i / 9)] for i in range(10)]
    out = {
        "job_id": job, "status": "ok", "error": None, "params": params,
        "date_from": day, "date_to": day, "phase": "sweep", "window": None,
        "metrics": {"total_return": ret, "sharpe": sharpe, "sortino": None,
                    "max_drawdown": 0.002, "profit_factor": 1.5, "win_rate": 0.5,
                    "trades": 12, "returns": 400, "return_period_s": 60.0},
        "pnl": {"realized": "10", "fees": "1.5", "net": f"{ret * 1_000_000:.2f}",
                "unrealized": "0"},
        "initial_equity": "1000000", "final_equity": f"{1_000_000 * (1 + ret):.2f}",
        "currency": "USD", "fills": 24, "events_in": 1000, "wall_s": 1.25,
        "equity": curve if equity else [], "trade_pnls": ["4.5", "-2", "3.25"],
    }
    out.update(over)
    return out


def sma(fast: Any, slow: Any) -> dict:
    return {"sma": {"fast": fast, "slow": slow}}


def grid_rows() -> list[dict[str, Any]]:
    """A 3 x 2 (fast, slow) grid over two days, one combination missing a day, a
    job without a sharpe, an error and a skipped job."""
    rows = []
    for fast in (5, 10, 20):
        for slow in (30, 60):
            for day in ("2013-10-07", "2013-10-08"):
                if (fast, slow, day) == (20, 60, "2013-10-08"):
                    continue
                sharpe = None if (fast, slow, day) == (5, 60, "2013-10-07") else \
                    fast / 10 - slow / 100 + (0.25 if day.endswith("8") else 0.0)
                rows.append(row(f"j-{fast}-{slow}-{day[-2:]}", sma(fast, slow), sharpe=sharpe,
                                ret=fast / 1000, day=day))
    rows.append({"job_id": "z-err", "status": "error", "error": "ValueError: <slow> & fast",
                 "params": sma(1, 2), "date_from": "2013-10-07", "date_to": "2013-10-07",
                 "phase": "sweep", "window": None, "wall_s": 0.2})
    rows.append({"job_id": "a-skip", "status": "skipped", "error": "fast must be < slow",
                 "params": sma(90, 30), "date_from": None, "date_to": None,
                 "phase": "sweep", "window": None, "wall_s": 0.0})
    return rows


def expected_order(rows: list[dict], metric: str = "sharpe", sign: int = 1) -> list[str]:
    ok = [r for r in rows if r["status"] == "ok"]
    valued = sorted((r for r in ok if r["metrics"][metric] is not None),
                    key=lambda r: (-sign * r["metrics"][metric], r["job_id"]))
    return [r["job_id"] for r in valued] + sorted(r["job_id"] for r in ok
                                                  if r["metrics"][metric] is None)


def test_the_leaderboard_lists_every_finished_job_best_first() -> None:
    rows = grid_rows()
    page = Page(render_summary(rows, title="t"))
    board = page.body_rows("leaderboard")
    assert [r["attrs"]["data-job"] for r in board] == expected_order(rows)
    heads = [c[2] for c in page.tables["leaderboard"][0]["cells"]]
    assert heads == ["#", "sma.fast", "sma.slow", "window", "total_return", "sharpe", "sortino",
                     "max_drawdown", "profit_factor", "win_rate", "trades", "pnl net (USD)",
                     "fills", "wall_s"]
    first = dict(zip(heads, board[0]["cells"], strict=True))
    assert (first["sma.fast"][2], first["sma.slow"][2], first["window"][2]) == \
        ("20", "30", "2013-10-08")
    assert first["sharpe"][1]["data-v"] == repr(20 / 10 - 30 / 100 + 0.25)
    assert first["pnl net (USD)"][2] == "20000.00" and first["wall_s"][2] == "1.25"
    # a job without the metric is ranked last, shown as n/a, sorted last by the script
    last = dict(zip(heads, board[-1]["cells"], strict=True))
    assert last["sharpe"][2] == "n/a" and last["sharpe"][1]["data-v"] == ""
    # every header sorts; numbers as numbers
    types = [c[1]["data-type"] for c in page.tables["leaderboard"][0]["cells"]]
    assert types[:4] == ["num", "num", "num", "text"] and page.count("script") == 1


def test_a_lower_is_better_metric_ranks_ascending() -> None:
    rows = [row(f"j{i}", sma(i, 30)) for i in range(4)]
    for i, r in enumerate(rows):
        r["metrics"]["max_drawdown"] = [0.03, 0.01, 0.02, 0.01][i]
    page = Page(render_summary(rows, title="t", metric="max_drawdown"))
    assert [r["attrs"]["data-job"] for r in page.body_rows("leaderboard")] == \
        ["j1", "j3", "j2", "j0"]


def test_the_heatmap_averages_the_metric_over_windows_for_a_two_parameter_grid() -> None:
    rows = grid_rows()
    page = Page(render_summary(rows, title="t"))
    table = page.tables["heatmap"]
    assert [c[2] for c in table[0]["cells"]] == ["sma.fast \\ sma.slow", "30", "60"]
    assert [r["cells"][0][2] for r in table[1:]] == ["5", "10", "20"]
    cells = {(c[1]["data-y"], c[1]["data-x"]): c for r in table[1:] for c in r["cells"]
             if c[0] == "td"}
    assert len(cells) == 6
    for (y, x), (_, attrs, text) in cells.items():
        values = [r["metrics"]["sharpe"] for r in rows if r["status"] == "ok"
                  and r["params"]["sma"] == {"fast": int(y), "slow": int(x)}]
        defined = [v for v in values if v is not None]
        assert attrs["data-n"] == str(len(values))
        assert attrs["data-v"] == repr(math.fsum(defined) / len(defined))
        assert text == f"{math.fsum(defined) / len(defined):.3f}"
    assert cells[("20", "60")][1]["data-n"] == "1"  # the missing day is not averaged in
    assert cells[("5", "60")][1]["data-n"] == "2"  # the job without a sharpe is left out


@pytest.mark.parametrize("params, varies", [
    ([{"sma": {"fast": f, "slow": 30, "qty": q}} for f in (5, 10) for q in (1, 2)], "2"),
    ([{"sma": {"fast": f, "slow": s, "qty": q}} for f in (5, 10) for s in (30, 60)
      for q in (1, 2)], "3 (sma.fast, sma.qty, sma.slow)"),
    ([{"sma": {"fast": f, "slow": 30}} for f in (5, 10, 20)], "1 (sma.fast)"),
])
def test_no_heatmap_unless_exactly_two_parameters_vary(params, varies) -> None:
    rows = [row(f"j{i}", p) for i, p in enumerate(params)]
    page = Page(render_summary(rows, title="t"))
    if varies == "2":
        assert "heatmap" in page.tables
        return
    assert "heatmap" not in page.tables
    html = render_summary(rows, title="t")
    assert f"a heatmap needs exactly two varying parameters; this grid varies {varies}" in html


def test_the_top_n_equity_curves_are_overlaid_with_a_legend() -> None:
    rows = grid_rows()
    rows[0]["equity"] = []  # a job without a curve is skipped, not drawn empty
    page = Page(render_summary(rows, title="t", top_n=4))
    curves = [a["data-job"] for t, a in page.tags if t == "path" and a.get("class") == "curve"]
    top = expected_order(rows)[:4]
    assert curves == [j for j in top if j != rows[0]["job_id"]]
    legend = [a["data-job"] for t, a in page.tags if t == "li"]
    assert legend == curves
    assert "Top 4 equity curves (by sharpe)" in page.h2
    assert len({a["stroke"] for t, a in page.tags if t == "path" and a.get("class") == "curve"}) \
        == len(curves)


def test_failed_jobs_are_listed_with_their_errors_escaped() -> None:
    html = render_summary(grid_rows(), title="t")
    page = Page(html)
    failed = [[c[2] for c in r["cells"]] for r in page.tables["failed"][1:]]
    assert failed == [["a-skip", "skipped", "sma.fast=90 sma.slow=30", "all days",
                       "fast must be < slow"],
                      ["z-err", "error", "sma.fast=1 sma.slow=2", "2013-10-07",
                       "ValueError: <slow> & fast"]]
    assert "ValueError: &lt;slow&gt; &amp; fast" in html
    assert "Failed jobs" in page.h2


def test_everything_from_the_user_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    rows = [row('job"><b>1', {"s<i>": {"p": evil, "q": 1}}),
            row("job2", {"s<i>": {"p": "plain", "q": 2}}, sharpe=0.5)]
    html = render_summary(rows, title="<h1>t</h1>", walk_forward=walk_forward())
    page = Page(html)
    assert page.count("script") == 1 and page.count("b") == 0 and page.count("i") == 0
    assert page.count("h1") == 1
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    board = page.body_rows("leaderboard")
    assert board[0]["attrs"]["data-job"] == 'job"><b>1'
    assert board[0]["cells"][1][2] == evil  # the text survives, as text
    assert [c[2] for c in page.tables["leaderboard"][0]["cells"]][1:3] == ["s<i>.p", "s<i>.q"]


def test_monte_carlo_rows_get_a_table() -> None:
    rows = grid_rows()
    for r in rows[:2]:
        r["monte_carlo"] = monte_carlo([Decimal(p) for p in r["trade_pnls"]],
                                       Decimal(r["initial_equity"]), 200, 0)
    rows[2]["monte_carlo"] = monte_carlo([Decimal(1)], Decimal(1000), 200, 0)
    page = Page(render_summary(rows, title="t"))
    title = "Monte Carlo (bootstrap of each job's closed trades)"
    assert title in page.h2
    mc = page.tables["monte-carlo"]
    assert len(mc) == 4
    notes = [r["cells"][-1][2] for r in mc[1:]]
    assert sorted(notes) == ["", "", "1 closed trade: at least 2 are needed to resample"]
    assert title not in Page(render_summary(grid_rows(), title="t")).h2


def walk_forward() -> dict[str, Any]:
    return {
        "metric": "sharpe", "mode": "rolling",
        "windows": [
            {"window": 0, "train": ["2013-10-07", "2013-10-08"],
             "test": ["2013-10-09", "2013-10-09"], "best_params": sma(10, 30),
             "in_sample": {"sharpe": 1.5, "total_return": 0.002},
             "out_of_sample": {"sharpe": -0.25, "total_return": -0.001}},
            {"window": 1, "train": ["2013-10-08", "2013-10-09"],
             "test": ["2013-10-10", "2013-10-10"], "best_params": None,
             "in_sample": None, "out_of_sample": None},
        ],
        "overall": {"in_sample_return": 0.002, "out_of_sample_return": -0.001,
                    "in_sample_daily": 0.001, "out_of_sample_daily": -0.001, "efficiency": -1.0},
        "equity": [[T0 + 2 * 86_400 * 10**9 + i * MIN, 1_000_000.0 - i] for i in range(50)],
    }


def test_walk_forward_shows_in_sample_against_out_of_sample_and_the_stitched_curve() -> None:
    html = render_summary(grid_rows(), title="t", walk_forward=walk_forward())
    page = Page(html)
    assert "Walk-forward (rolling, best in-sample sharpe)" in page.h2
    table = page.tables["walk-forward"]
    assert [[c[2] for c in r["cells"]] for r in table[1:]] == [
        ["0", "2013-10-07 → 2013-10-08", "2013-10-09", "sma.fast=10 sma.slow=30", "1.500",
         "0.2000%", "-0.250", "-0.1000%"],
        ["1", "2013-10-08 → 2013-10-09", "2013-10-10", "n/a", "n/a", "n/a", "n/a", "n/a"],
        ["overall", "", "", "", "", "0.2000%", "", "-0.1000%"],
    ]
    assert "in-sample daily return 0.1000%; out-of-sample daily return -0.1000%; walk-forward " \
        "efficiency (out-of-sample / in-sample daily) -1.000" in html
    assert "Out-of-sample equity, % (test windows stitched)" in page.h2
    assert page.count("svg") == 2  # the overlay and the stitched curve
    assert not any("Walk-forward" in h for h in Page(render_summary(grid_rows(), title="t")).h2)


def test_the_page_depends_on_the_rows_not_their_order_and_fetches_nothing() -> None:
    rows = grid_rows()
    html = render_summary(rows, title="t", walk_forward=walk_forward())
    for seed in range(3):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert render_summary(shuffled, title="t", walk_forward=walk_forward()) == html, seed
    page = Page(html)
    assert page.count("link") == page.count("img") == page.count("iframe") == 0
    assert not any("src" in a for _, a in page.tags)
    urls = Counter(v for _, a in page.tags for v in a.values() if v and "://" in v)
    assert set(urls) == {"http://www.w3.org/2000/svg"}  # the SVG namespace, not a fetch


def test_an_empty_sweep_and_an_unknown_metric() -> None:
    page = Page(render_summary([], title="t"))
    assert "leaderboard" not in page.tables and "Failed jobs" in page.h2
    with pytest.raises(ValueError, match="metric 'calmar': not one of"):
        render_summary([], title="t", metric="calmar")


# The page's sort script, run by node against a minimal DOM of the leaderboard (no
# browser here): clicking a header orders the rows by that column, n/a last.
DOM_SHIM = """
const spec = JSON.parse(process.argv[1]);
function attrs(init) {
  const a = Object.assign({}, init), handlers = [];
  return {
    getAttribute: (k) => (k in a ? a[k] : null), setAttribute: (k, v) => { a[k] = String(v); },
    removeAttribute: (k) => { delete a[k]; }, addEventListener: (_, f) => handlers.push(f),
    click: () => handlers.forEach((f) => f()),
  };
}
const heads = spec.heads.map((t) => attrs({"data-type": t}));
const body = {rows: spec.rows.map((r) => ({job: r.job, cells: r.values.map(
  (v) => attrs({"data-v": v}))}))};
body.appendChild = (r) => { body.rows.splice(body.rows.indexOf(r), 1); body.rows.push(r); };
const table = {tHead: {rows: [{cells: heads}]}, tBodies: [body]};
global.document = {querySelectorAll: () => [table]};
eval(spec.script);
const out = [];
for (const col of spec.clicks) { heads[col].click(); out.push(body.rows.map((r) => r.job)); }
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node (to run the page's script) absent")
def test_clicking_a_header_sorts_the_leaderboard() -> None:
    from daemon.research.summary_html import SORT_JS

    rows = grid_rows()
    page = Page(render_summary(rows, title="t"))
    heads = page.tables["leaderboard"][0]["cells"]
    names = [c[2] for c in heads]
    board = page.body_rows("leaderboard")
    spec = {"script": SORT_JS, "heads": [c[1]["data-type"] for c in heads],
            "rows": [{"job": r["attrs"]["data-job"], "values": [c[1]["data-v"] for c in r["cells"]]}
                     for r in board],
            "clicks": [names.index("sharpe"), names.index("sharpe"), names.index("sma.fast")]}
    out = subprocess.run(["node", "-e", DOM_SHIM, json.dumps(spec)], capture_output=True,
                         text=True, timeout=60, check=True)
    by_sharpe_desc, by_sharpe_asc, by_fast_desc = json.loads(out.stdout)
    ok = {r["job_id"]: r for r in rows if r["status"] == "ok"}
    sharpe = [ok[j]["metrics"]["sharpe"] for j in by_sharpe_desc]
    assert sharpe[-1] is None and sharpe[:-1] == sorted(sharpe[:-1], reverse=True)
    sharpe = [ok[j]["metrics"]["sharpe"] for j in by_sharpe_asc]
    assert sharpe[-1] is None and sharpe[:-1] == sorted(sharpe[:-1])  # n/a stays last
    fast = [ok[j]["params"]["sma"]["fast"] for j in by_fast_desc]
    assert fast == sorted(fast, reverse=True) and fast[0] == 20  # 20 > 10 > 5: as numbers
