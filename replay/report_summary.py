"""The report's summary for a terminal: `summary_lines(report)` (the lines
`tapeloop replay` prints), from a report dict as `replay.report` builds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from replay.report_mc import summary_line as monte_carlo_line


def _fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def _fmt_num(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """A short human summary of a report dict for the terminal."""
    m = report.get("metrics", {})
    pnl = report.get("pnl", {})
    rate = report.get("events_per_s")
    rejected = sum(report.get("rejections", {}).values())
    currency = f" {report['account_currency']}" if report.get("account_currency") else ""
    lines = [
        f"events     {report.get('events_in', 0):,} in {report.get('wall_s', 0.0):.2f} s"
        f" ({_fmt_num(rate, ',.0f')} events/s)",
        f"fills      {len(report.get('fills', ())):,}  trades {m.get('trades', 0)}"
        f"  win rate {_fmt_pct(m.get('win_rate'))}"
        + (f"  rejected {rejected:,}" if rejected else ""),
        f"net pnl    {pnl.get('net', 'n/a')}{currency}  (realized {pnl.get('realized', 'n/a')},"
        f" unrealized {pnl.get('unrealized', 'n/a')}, fees {pnl.get('fees', 'n/a')})",
        f"return     {_fmt_pct(m.get('total_return'))}  sharpe {_fmt_num(m.get('sharpe'))}"
        f"  max drawdown {_fmt_pct(m.get('max_drawdown'))}",
    ]
    if len(report.get("pnl_by_currency") or {}) > 1:
        lines.append("by currency " + ", ".join(
            f"{c} {p['net']}" for c, p in sorted(report["pnl_by_currency"].items())))
    lines.extend(f"unvalued   {u['balance']} {u['currency']} on {u['venue']} (pnl {u['pnl']}): "
                 f"{u['reason']}; left out of pnl and equity"
                 for u in report.get("unvalued") or ())
    perp = report.get("perpetuals")
    if perp:
        f = perp["funding"]
        funding = (f"net {f['net']} {f['currency']} (paid {f['paid']}, received "
                   f"{f['received']})" if f["currency"] else ", ".join(
                       f"{c} net {x['net']}" for c, x in f["by_currency"].items()) or "none")
        usage = perp["margin_usage"]
        lines.append(f"funding    {f['payments']} payments, {funding}"
                     f"  liquidations {len(perp['liquidations'])}"
                     f"  max margin usage {_fmt_pct(usage['max'])}")
    if report.get("monte_carlo") is not None:
        lines.append(monte_carlo_line(report["monte_carlo"]))
    return lines
