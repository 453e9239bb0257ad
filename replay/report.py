"""The replay report: `ReportBuilder` collects fills, equity samples, the final
account state and rejections during a replay, then writes the run's report
files; `summary_lines` turns the report into a few lines for the CLI.

Files written into RUN_DIR (see DESIGN.md, "CLI contract"):

- `report.json`: the report dict, `json.dumps(sort_keys=True, indent=2)`.
  Money and quantities are exact decimal strings (fixed-point, never
  exponent notation), timestamps integer ns, ratios floats, and `null` where
  a metric is undefined (never NaN or inf, which JSON lacks). Apart from
  `wall_s` and `events_per_s`, the same inputs give byte-identical files.
  Written last: its presence means the other files are complete.

  events_in, wall_s, events_per_s (null if wall_s is 0), equity_samples
  fills            [{ts_event, strategy_id, order_id, symbol, side, qty, price, fee}]
  final_positions  {symbol: qty}
  account_currency the currency pnl and equity are stated in (null if none)
  pnl              {realized, unrealized, fees, net}; net = realized + unrealized - fees,
                   in the account currency (each currency converted at the final marks;
                   unvalued currencies left out)
  pnl_by_currency  {currency: {realized, unrealized, fees, net}}, unconverted: a
                   position's PnL in its quote currency, third-currency fees in theirs
  unvalued         [{venue, currency, balance, pnl, reason}]: money in a currency with
                   no conversion into the account currency, left out of pnl and equity
  initial_equity, final_equity (= initial + net)
  metrics          {total_return, sharpe, sortino, max_drawdown, win_rate,
                    profit_factor, trades, return_period_s, returns}
  per_strategy, per_symbol
                   {name: {fills, trades, win_rate, profit_factor,
                           pnl: {realized, fees, unrealized, net}}}, from the
                   builder's own average-cost ledger of the fills; unrealized
                   (and net) is null for a group with an open position and no
                   mark passed to `set_final`
  rejections       {check: count}; "venue" counts venue rejections (check "")
  perpetuals       {funding, liquidations, margin_usage} (`replay.report_perp`); only
                   when the run saw funding, a liquidation or margin usage
  benchmark        {symbols, first_prices, final_equity, total_return}: buy and hold of
                   the traded symbols from the initial equity (`replay.report_series`);
                   null when no traded symbol was marked at an equity sample
  daily_returns    [{date, equity, return}]: per UTC day, its closing equity and its
                   return against the previous close (`replay.report_series`)
  monte_carlo      a bootstrap of the closed trades' PnLs (`daemon.research.montecarlo`,
                   passed in `extra`); only when the run asked for it (`--monte-carlo N`)
  ...plus the caller's `extra` keys (which may not shadow these).
- `fills.csv`: one row per fill, in the order fed.
- `trades.csv`: one row per closed round trip (see `replay.metrics`).
- `equity.csv`: the equity samples with their drawdown, and one column per
  strategy when per-strategy equity was given.
- `margin.csv`: the margin usage at each equity sample (perpetual runs only).
- `report.html`: a self-contained human report (`replay.report_html`): with a
  price chart per traded symbol (the marks sampled beside equity, the fills
  marked), the round trips, the benchmark line and the returns per day.

Metric definitions live in `replay.metrics`. The hot path only appends:
`add_fill`, `add_equity`, `add_funding`, `add_liquidation` and
`add_margin_usage` store their arguments (the marks passed to `add_equity`
are taken once per equity sample, never per market event) and everything is computed in `write`.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import numpy as np

from events.orders import Fill
from events.perp import FundingPayment, Liquidation
from replay.metrics import (
    ZERO,
    Book,
    BookKey,
    RoundTrip,
    TradeLedger,
    drawdowns,
    equity_metrics,
    exact_context,
    total_return,
    trade_stats,
    unrealized_by_book,
)
from replay.report_html import render_html
from replay.report_perp import MARGIN_CSV, PerpetualsReport
from replay.report_series import Benchmark, benchmark, daily_returns, price_series
from replay.report_summary import summary_lines  # noqa: F401  (re-exported: the CLI's lines)
from replay.report_text import dec, dumps_report, float_text, iso_ns, iso_ns_many  # noqa: F401

REPORT_JSON = "report.json"
FILLS_CSV = "fills.csv"
TRADES_CSV = "trades.csv"
EQUITY_CSV = "equity.csv"
REPORT_HTML = "report.html"

# OrderRejected.check is "" when the venue, not a risk check, refused.
VENUE_REJECTION = "venue"

FILL_COLUMNS = (
    "ts_event", "ts", "venue", "strategy_id", "order_id", "trade_id", "symbol",
    "side", "qty", "price", "fee", "fee_currency", "liquidity",
)  # fmt: skip
TRADE_COLUMNS = (
    "strategy_id", "venue", "symbol", "direction", "opened_ns", "closed_ns",
    "max_qty", "fills", "realized", "fees", "pnl",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FinalState:
    """The account at the end of the replay, as the portfolio saw it."""

    positions: dict[str, Decimal]
    realized: Decimal
    unrealized: Decimal
    fees: Decimal
    initial_equity: Decimal
    marks: dict[str, Decimal] | None
    currency: str | None = None
    pnl_by_currency: dict[str, Any] | None = None
    unvalued: list[Any] | None = None
    funding: Decimal = Decimal(0)  # perpetuals' funding received (+) / paid (-)

    @property
    def net(self) -> Decimal:
        return self.realized + self.unrealized - self.fees + self.funding


class ReportBuilder:
    """Collects one replay's results and writes its report files.

    `period_ns` is the equity sampling period the caller uses (e.g. one minute
    of event time); when None it is inferred from the samples.
    """

    def __init__(self, *, period_ns: int | None = None) -> None:
        if period_ns is not None and period_ns <= 0:
            raise ValueError(f"period_ns must be positive, got {period_ns}")
        self.period_ns = period_ns
        self._fills: list[Fill] = []
        self._equity_ts: list[int] = []
        self._equity: list[Decimal] = []
        self._by_strategy: list[dict[str, Decimal] | None] = []
        self._marks: list[dict[str, Decimal] | None] = []
        self._quotes: dict[str, str] | None = None
        self._rejections: Counter[str] = Counter()
        self._final: FinalState | None = None
        self._perp = PerpetualsReport()

    # -- fed during the replay ---------------------------------------------------

    def add_fill(self, fill: Fill) -> None:
        """Record a fill (any strategy, any symbol), in event order."""
        self._fills.append(fill)

    def add_equity(
        self, ts_ns: int, equity: Decimal, by_strategy: dict[str, Decimal] | None = None,
        marks: Mapping[str, Decimal | None] | None = None,
    ) -> None:
        """Record an equity sample at event time `ts_ns` (non-decreasing), with
        the marks (symbol -> last price, None while unknown) at that time: the
        price charts and the buy-and-hold benchmark are drawn from them."""
        if self._equity_ts and ts_ns < self._equity_ts[-1]:
            raise ValueError(
                f"equity sample at {ts_ns} ns is before the previous one at "
                f"{self._equity_ts[-1]} ns"
            )
        self._equity_ts.append(ts_ns)
        self._equity.append(equity)
        self._by_strategy.append(dict(by_strategy) if by_strategy is not None else None)
        self._marks.append({s: p for s, p in marks.items() if p is not None}
                           if marks is not None else None)

    def add_funding(self, payment: FundingPayment) -> None:
        """Record a funding payment (paid or received), in event order."""
        self._perp.add_funding(payment)

    def add_liquidation(self, liquidation: Liquidation) -> None:
        """Record a liquidation, in event order."""
        self._perp.add_liquidation(liquidation)

    def add_margin_usage(self, ts_ns: int, usage: Decimal | None) -> None:
        """Record the account's margin usage (initial margin in use / margin
        balance; None when it has none) at an equity sample's time."""
        self._perp.add_margin_usage(ts_ns, usage)

    def count_rejection(self, check: str) -> None:
        """Count one rejected order under its check name ("" = the venue refused)."""
        self._rejections[check or VENUE_REJECTION] += 1

    def set_final(
        self,
        positions: dict[str, Decimal],
        realized: Decimal,
        unrealized: Decimal,
        fees: Decimal,
        initial_equity: Decimal,
        *,
        marks: Mapping[str, Decimal] | None = None,
        currency: str | None = None,
        pnl_by_currency: Mapping[str, Any] | None = None,
        unvalued: list[Any] | None = None,
        funding: Decimal = Decimal(0),
        quotes: Mapping[str, str] | None = None,
    ) -> None:
        """The final account state: positions (symbol -> signed qty), realized
        PnL (gross of fees), unrealized PnL, fees (in the account `currency`)
        and the starting equity. `marks` (symbol -> last price), if given, lets
        the per-strategy and per-symbol breakdowns value their open positions
        too. `pnl_by_currency` (currency -> an object with realized,
        unrealized, fees, funding) and `unvalued` (objects with venue, currency,
        balance, pnl, reason) are `Portfolio.final_report`'s; `funding` is the
        perpetuals' funding, in the net (and in `pnl` when not 0). `quotes`
        (symbol -> quote currency) keeps the benchmark to the symbols quoted
        in `currency`; without it every marked symbol counts."""
        self._quotes = dict(quotes) if quotes is not None else None
        self._final = FinalState(
            positions=dict(positions),
            realized=realized,
            unrealized=unrealized,
            fees=fees,
            initial_equity=initial_equity,
            marks=dict(marks) if marks is not None else None,
            currency=currency,
            pnl_by_currency=dict(pnl_by_currency) if pnl_by_currency is not None else None,
            unvalued=list(unvalued) if unvalued is not None else None,
            funding=funding,
        )

    def equity_curve(self) -> list[tuple[int, Decimal]]:
        """The equity samples so far (equity.csv's ts_ns and equity)."""
        return list(zip(self._equity_ts, self._equity, strict=True))

    def closed_trades(self) -> list[RoundTrip]:
        """The round trips closed so far, in the order they closed (trades.csv's rows)."""
        with localcontext(exact_context()):
            return self._ledger().closed

    # -- the report ----------------------------------------------------------------

    def build(
        self, *, events_in: int, wall_s: float, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The report dict (what `write` stores as report.json)."""
        with localcontext(exact_context()):
            return self._build(self._ledger(), self._benchmark(), events_in=events_in,
                               wall_s=wall_s, extra=extra)

    def write(
        self,
        run_dir: Path,
        *,
        events_in: int,
        wall_s: float,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write report.json, fills.csv, trades.csv, equity.csv and report.html
        into `run_dir` (created if missing); returns the report dict."""
        with localcontext(exact_context()):
            ledger = self._ledger()
            bench = self._benchmark()
            report = self._build(ledger, bench, events_in=events_in, wall_s=wall_s,
                                 extra=extra)
        text = dumps_report(report)  # before any file: a bad `extra` value fails here
        run_dir.mkdir(parents=True, exist_ok=True)
        self._write_fills(run_dir / FILLS_CSV)
        _write_trades(run_dir / TRADES_CSV, ledger.closed)
        eq = np.asarray([float(e) for e in self._equity], dtype=np.float64)
        dd = drawdowns(eq)
        self._write_equity(run_dir / EQUITY_CSV, dd)
        margin = None
        if not self._perp.empty:
            self._perp.write_csv(run_dir / MARGIN_CSV, dec, iso_ns)
            margin = self._perp.series()
        html = render_html(
            report,
            ts_ns=np.asarray(self._equity_ts, dtype=np.int64),
            equity=eq,
            drawdown=dd,
            margin=margin,
            benchmark=None if bench is None
            else np.asarray([float(v) for v in bench.values], dtype=np.float64),
            prices=price_series(self._fills, self._equity_ts, self._marks),
            trades=ledger.closed,
        )
        (run_dir / REPORT_HTML).write_text(html, encoding="utf-8")
        # Last, so a report.json on disk means the whole report was written.
        (run_dir / REPORT_JSON).write_text(text, encoding="utf-8")
        return report

    # -- internals -------------------------------------------------------------------

    def _build(
        self,
        ledger: TradeLedger,
        bench: Benchmark | None,
        *,
        events_in: int,
        wall_s: float,
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        final = self._final
        if final is None:
            raise RuntimeError("ReportBuilder.set_final() must be called before the report")
        stats = trade_stats(ledger.closed)
        final_equity = final.initial_equity + final.net
        metrics: dict[str, Any] = {
            "total_return": total_return(final.initial_equity, final_equity),
            "win_rate": stats.win_rate,
            "profit_factor": stats.profit_factor,
            "trades": stats.trades,
        }
        metrics.update(equity_metrics(self._equity_ts, self._equity, self.period_ns))
        report: dict[str, Any] = {
            "events_in": events_in,
            "wall_s": wall_s,
            "events_per_s": events_in / wall_s if wall_s > 0 else None,
            "fills": [_fill_json(f) for f in self._fills],
            "final_positions": {s: dec(q) for s, q in final.positions.items()},
            "pnl": {
                "realized": dec(final.realized),
                "unrealized": dec(final.unrealized),
                "fees": dec(final.fees),
                **({"funding": dec(final.funding)} if final.funding else {}),
                "net": dec(final.net),
            },
            "account_currency": final.currency,
            "pnl_by_currency": {
                c: _pnl_json(p.realized, p.unrealized, p.fees, getattr(p, "funding", Decimal(0)))
                for c, p in sorted((final.pnl_by_currency or {}).items())
            },
            "unvalued": [
                {"venue": u.venue, "currency": u.currency, "balance": dec(u.balance),
                 "pnl": dec(u.pnl), "reason": u.reason}
                for u in final.unvalued or ()
            ],
            "initial_equity": dec(final.initial_equity),
            "final_equity": dec(final_equity),
            "metrics": metrics,
            "rejections": dict(self._rejections),
            "equity_samples": len(self._equity),
            "benchmark": None if bench is None else bench.json(dec, final.initial_equity),
            "daily_returns": daily_returns(self._equity_ts, self._equity, dec),
        }
        unrealized = unrealized_by_book(ledger.books, final.marks)
        report["per_strategy"] = _breakdown(ledger, unrealized, lambda k: k[0])
        report["per_symbol"] = _breakdown(ledger, unrealized, lambda k: k[2])
        perpetuals = self._perp.section(dec)
        if perpetuals is not None:
            report["perpetuals"] = perpetuals
        for key, value in (extra or {}).items():
            if key in report:
                raise ValueError(f"extra key {key!r} would overwrite a report field")
            report[key] = value
        return report

    def _benchmark(self) -> Benchmark | None:
        final = self._final
        if final is None:
            raise RuntimeError("ReportBuilder.set_final() must be called before the report")
        return benchmark(self._fills, self._marks, final.initial_equity, self._quotes,
                         final.currency)

    def _ledger(self) -> TradeLedger:
        ledger = TradeLedger()
        for fill in self._fills:
            ledger.apply(fill)
        return ledger

    def _write_fills(self, path: Path) -> None:
        with _open_csv(path) as w:
            w.writerow(FILL_COLUMNS)
            for f in self._fills:
                w.writerow((
                    f.ts_event, iso_ns(f.ts_event), f.venue, f.strategy_id,
                    f.client_order_id, f.trade_id, f.symbol, f.side, dec(f.qty),
                    dec(f.price), dec(f.fee), f.fee_currency, f.liquidity,
                ))  # fmt: skip

    def _write_equity(self, path: Path, dd: np.ndarray) -> None:
        """equity.csv; `dd` is the drawdown at each sample. Built column by column
        (every cell is a number or an ISO time: the csv module would quote none)."""
        strategies = sorted({s for b in self._by_strategy if b for s in b})
        # Repeated samples share their Decimal objects: each is formatted once
        # (keyed by identity: the lists keep every one alive while this runs, and
        # equal values of another exponent, 1.0 and 1.00, must keep their own text).
        texts: dict[int, str] = {}

        def column(values: Iterable[Decimal | None]) -> list[str]:
            out = []
            for value in values:
                if value is None:
                    out.append("")
                    continue
                got = texts.get(id(value))
                if got is None:
                    got = texts[id(value)] = dec(value)
                out.append(got)
            return out

        ts = self._equity_ts
        drawdown = list(map(repr, dd.tolist()))  # float_text, row by row
        for i in np.flatnonzero(np.isnan(dd)).tolist():
            drawdown[i] = ""
        cols = [iso_ns_many(ts), list(map(str, ts)), column(self._equity), drawdown]
        by_strategy = self._by_strategy
        cols += [column([by.get(s) if by else None for by in by_strategy]) for s in strategies]
        with _open_csv(path) as w:
            w.writerow(("ts", "ts_ns", "equity", "drawdown", *strategies))
        with path.open("a", encoding="utf-8", newline="") as f:
            if ts:
                f.write("\n".join(map(",".join, zip(*cols, strict=True))) + "\n")


@contextmanager
def _open_csv(path: Path) -> Iterator[Any]:
    """A csv writer with "\\n" line ends, so the files match on every platform."""
    with path.open("w", encoding="utf-8", newline="") as f:
        yield csv.writer(f, lineterminator="\n")


def _write_trades(path: Path, trades: list[RoundTrip]) -> None:
    with _open_csv(path) as w:
        w.writerow(TRADE_COLUMNS)
        for t in trades:
            w.writerow((
                t.strategy_id, t.venue, t.symbol, t.direction, t.opened_ns,
                t.closed_ns, dec(t.max_qty), t.fills, dec(t.realized),
                dec(t.fees), dec(t.pnl),
            ))  # fmt: skip


def _breakdown(
    ledger: TradeLedger,
    unrealized: Mapping[BookKey, Decimal | None],
    group: Callable[[BookKey], str],
) -> dict[str, dict[str, Any]]:
    """PnL, fills, trades, win rate and profit factor per `group(book key)`.
    Unrealized (and so net) is null for a group holding an open position
    without a mark."""
    groups: dict[str, list[BookKey]] = {}
    for key in ledger.books:
        groups.setdefault(group(key), []).append(key)
    trades: dict[str, list[RoundTrip]] = {}
    for t in ledger.closed:
        trades.setdefault(group((t.strategy_id, t.venue, t.symbol)), []).append(t)
    out: dict[str, dict[str, Any]] = {}
    for name, keys in groups.items():
        books: list[Book] = [ledger.books[k] for k in keys]
        realized = sum((b.realized for b in books), ZERO)
        fees = sum((b.fees for b in books), ZERO)
        marked = [u for k in keys if (u := unrealized[k]) is not None]
        unreal = sum(marked, ZERO) if len(marked) == len(keys) else None
        stats = trade_stats(trades.get(name, ()))
        out[name] = {
            "fills": sum(b.fills for b in books),
            "trades": stats.trades,
            "win_rate": stats.win_rate,
            "profit_factor": stats.profit_factor,
            "pnl": {
                "realized": dec(realized),
                "fees": dec(fees),
                "unrealized": None if unreal is None else dec(unreal),
                "net": None if unreal is None else dec(realized + unreal - fees),
            },
        }
    return out


def _pnl_json(realized: Decimal, unrealized: Decimal, fees: Decimal,
              funding: Decimal = Decimal(0)) -> dict[str, str]:
    """One currency's PnL; `funding` (a perpetual's) only where there is some."""
    out = {"realized": dec(realized), "unrealized": dec(unrealized), "fees": dec(fees)}
    if funding:
        out["funding"] = dec(funding)
    out["net"] = dec(realized + unrealized - fees + funding)
    return out


def _fill_json(f: Fill) -> dict[str, Any]:
    return {
        "ts_event": f.ts_event,
        "strategy_id": f.strategy_id,
        "order_id": f.client_order_id,
        "symbol": f.symbol,
        "side": f.side,
        "qty": dec(f.qty),
        "price": dec(f.price),
        "fee": dec(f.fee),
    }
