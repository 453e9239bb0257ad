"""The Monte Carlo section of the replay report: present only when asked for, and
then nothing else in report.json or report.html moves."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from daemon.research.montecarlo import monte_carlo
from replay.report import ReportBuilder, summary_lines
from replay.report_mc import monte_carlo_html
from tests.replay.test_report import NS, T0, fill

D = Decimal


def builder() -> ReportBuilder:
    b = ReportBuilder(period_ns=60 * NS)
    trades = [("100", "101"), ("101", "99"), ("99", "103"), ("103", "102.5")]
    for i, (buy, sell) in enumerate(trades):
        b.add_fill(fill("BUY", "1", buy, "0.1", ts=T0 + 2 * i * NS, order=f"b{i}"))
        b.add_fill(fill("SELL", "1", sell, "0.1", ts=T0 + (2 * i + 1) * NS, order=f"s{i}"))
        b.add_equity(T0 + 2 * i * NS, D(1000) + i)
    b.set_final({}, D("3.5"), D(0), D("0.8"), D(1000), currency="USDT")
    return b


def test_without_monte_carlo_the_report_has_no_trace_of_it(tmp_path: Path) -> None:
    report = builder().write(tmp_path, events_in=10, wall_s=1.0)
    assert "monte_carlo" not in report
    assert "Monte Carlo" not in (tmp_path / "report.html").read_text()
    assert not any("monte carlo" in line for line in summary_lines(report))


def test_the_section_adds_to_the_report_and_moves_nothing_else(tmp_path: Path) -> None:
    b = builder()
    pnls = [t.pnl for t in b.closed_trades()]
    assert pnls == [D("0.8"), D("-2.2"), D("3.8"), D("-0.7")]  # trades.csv's pnl column
    mc = monte_carlo(pnls, D(1000), 500, 3)
    b.write(tmp_path / "plain", events_in=10, wall_s=1.0)
    report = b.write(tmp_path / "mc", events_in=10, wall_s=1.0, extra={"monte_carlo": mc})

    on_disk = json.loads((tmp_path / "mc" / "report.json").read_text())
    assert on_disk.pop("monte_carlo") == json.loads(json.dumps(mc))
    assert on_disk == json.loads((tmp_path / "plain" / "report.json").read_text())
    # the section is one line of the page: without it, the page is the plain one
    lines = (tmp_path / "mc" / "report.html").read_text().split("\n")
    section = [x for x in lines if x.startswith("<h2>Monte Carlo</h2>")]
    assert len(section) == 1
    lines.remove(section[0])
    assert "\n".join(lines) == (tmp_path / "plain" / "report.html").read_text()
    assert "500 paths of 4 trades, seed 3" in section[0]
    assert section[0].count("<rect ") == 20  # the histogram's bins
    for name in ("fills.csv", "trades.csv", "equity.csv"):
        assert (tmp_path / "mc" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    line = summary_lines(report)[-1]
    assert line.startswith("monte carlo 500 paths of 4 trades, seed 3: return p5 ")
    assert "P(loss)" in line


def test_a_run_with_too_few_trades_shows_the_note_escaped() -> None:
    mc = monte_carlo([], D(1000), 100, 0)
    html = monte_carlo_html({**mc, "note": "<b>no</b> trades"})
    assert "&lt;b&gt;no&lt;/b&gt; trades" in html and "<b>" not in html
    assert "<svg" not in html
