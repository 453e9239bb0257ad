"""The client side of the control API, shared by `tapeloop status`, `top`, `positions`,
`orders`, `halt` and `resume`.

Where the daemon listens: `DATA/control.json` (written by the running daemon:
the only way to find a port-0 daemon) if present, else the config's
`daemon.control`. The token: `daemon.control.load_control_token` (never
created by a client). Output: rich tables on a terminal, plain aligned columns
otherwise, the API's JSON with `--json`. A daemon that does not answer is one
line and exit 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.errors import UserError

DEFAULT_CONFIG = "configs/paper.toml"
TIMEOUT_S = 10.0


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help=f"the daemon's config file (default {DEFAULT_CONFIG})")
    parser.add_argument("--data", metavar="DIR", help="data directory (overrides daemon.data_dir)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


# -- finding the daemon -----------------------------------------------------------------


class Target:
    """Where the daemon listens and the token to show it."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token


def locate(args: argparse.Namespace) -> Target:
    from daemon.config import DaemonConfig, load_config, parse_control
    from daemon.control_files import address_url, load_control_token, read_control_file

    config_file = args.config
    if config_file is None and not Path(DEFAULT_CONFIG).is_file():
        daemon = DaemonConfig()  # no config at hand: the defaults (and --data)
        data_dir = Path(args.data or daemon.data_dir).absolute()
        control = daemon.control
    else:
        config = load_config(config_file or DEFAULT_CONFIG, data_dir=args.data)
        data_dir, control = config.daemon.data_dir, config.daemon.control
    written = read_control_file(data_dir)
    url = written["url"] if written else address_url(parse_control(control))
    return Target(url, load_control_token(data_dir, create=False))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _connection(url: str, timeout: float = TIMEOUT_S) -> http.client.HTTPConnection:
    if url.startswith("unix://"):
        return _UnixConnection(url[len("unix://"):], timeout)
    if not url.startswith("http://"):
        raise UserError(f"cannot reach the control API at {url!r}: not http:// or unix://")
    hostport = url[len("http://"):].rstrip("/")
    return http.client.HTTPConnection(hostport, timeout=timeout)


def call(target: Target, method: str, path: str, body: dict[str, Any] | None = None,
         *, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The JSON answer of `method path`; UserError for anything but 2xx."""
    headers = {"Accept": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = _connection(target.url, timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException):
        raise UserError(f"no tapeloop daemon answers at {target.url} (is it running?)") from None
    finally:
        conn.close()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"error": raw.decode(errors="replace")[:200]}
    if response.status == 401:
        why = "no control token found" if not target.token else "the daemon refused the token"
        raise UserError(f"{why} (HTTP 401): is --data the daemon's data directory?")
    if not 200 <= response.status < 300 and not (path == "/health" and response.status == 503):
        error = answer.get("error") if isinstance(answer, dict) else None
        raise UserError(f"{method} {path}: HTTP {response.status}: {error or 'failed'}")
    return answer


# -- output -----------------------------------------------------------------------------


def is_tty() -> bool:
    return sys.stdout.isatty()


def show_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
               *, right: Sequence[str] = ()) -> None:
    """A rich table on a terminal; plain aligned columns otherwise."""
    cells = [[text(v) for v in row] for row in rows]
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        for col in columns:
            table.add_column(col, justify="right" if col in right else "left")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
        return
    if title:
        print(title)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        out = [v.rjust(w) if col in right else v.ljust(w)
               for v, w, col in zip(values, widths, columns, strict=True)]
        return "  ".join(out).rstrip()

    print(line(columns))
    for row in cells:
        print(line(row))


def show_pairs(title: str | None, pairs: Sequence[tuple[str, Any]]) -> None:
    show_table(title, ["FIELD", "VALUE"], [(k, v) for k, v in pairs])


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else str(int(value))
    return str(value)


def print_json(answer: Any) -> None:
    print(json.dumps(answer, indent=2))


def uptime(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return (f"{days}d " if days else "") + f"{hours:d}:{minutes:02d}:{s:02d}"


# -- the commands -----------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    target = locate(args)
    answer = call(target, "GET", "/status")
    if args.json:
        print_json(answer)
        return 0
    show_pairs("tapeloop daemon", [
        ("url", target.url), ("pid", answer.get("pid")),
        ("status", f"{answer.get('status')}" + (" (ready)" if answer.get("ready") else "")),
        ("uptime", uptime(answer.get("uptime_s") or 0)),
        ("trading", " - ".join(x for x in (answer.get("trading_state"),
                                          answer.get("trading_reason")) if x)),
        ("equity", _money(answer.get("equity"), answer.get("account_currency"))),
        ("open orders", answer.get("open_orders")),
        ("fills", answer.get("fills")),
        ("events", f"{answer.get('events_total')} ({text(answer.get('events_per_second'))}/s)"),
        ("journal", _journal(answer.get("journal"))),
    ])
    venues = answer.get("venues") or {}
    if venues:
        show_table("venues", ["VENUE", "STATUS", "RECONNECTS"],
                   [(n, v.get("status"), v.get("reconnects")) for n, v in sorted(venues.items())],
                   right=["RECONNECTS"])
    strategies = answer.get("strategies") or {}
    pnl = answer.get("pnl") or {}
    if strategies or pnl:
        # funding is a perpetual's: its column only where the account holds one
        keys = ["realized", "unrealized", "fees"] + (["funding"] if answer.get("perpetuals")
                                                     else []) + ["pnl"]
        rows = [(sid, strategies.get(sid), *(pnl.get(sid, {}).get(k) for k in keys))
                for sid in sorted({*strategies, *pnl})]
        money = [k.upper() for k in keys]
        show_table("strategies", ["STRATEGY", "STATUS", *money], rows, right=money)
    _show_perpetuals(answer.get("perpetuals"))
    _show_unvalued(answer)
    return 0


def _show_perpetuals(perp: dict[str, Any] | None) -> None:
    """Margin per account and each perpetual position with its liquidation price
    and funding (what `/status` says under "perpetuals")."""
    if not perp:
        return
    rows = [(a.get("venue"), a.get("currency"), a.get("wallet"), a.get("margin_balance"),
             a.get("initial_margin"), a.get("maintenance_margin"), _pct(a.get("margin_ratio")),
             _pct(a.get("usage")), a.get("funding")) for a in perp.get("accounts") or ()]
    cols = ["VENUE", "CURRENCY", "WALLET", "MARGIN_BAL", "INITIAL", "MAINT", "RATIO",
            "USAGE", "FUNDING"]
    show_table("margin", cols, rows, right=cols[2:])
    rows = [(p.get("venue"), p.get("symbol"), p.get("qty"), p.get("entry_price"),
             p.get("mark"), p.get("unrealized_pnl"), f"{p.get('leverage')}x",
             p.get("margin_mode"), p.get("liquidation_price"), p.get("funding"),
             _next_funding(p.get("next_funding")))
            for p in perp.get("positions") or ()]
    cols = ["VENUE", "SYMBOL", "QTY", "ENTRY", "MARK", "UNREALIZED", "LEV", "MODE",
            "LIQ_PRICE", "FUNDING", "NEXT_FUNDING"]
    if rows:
        show_table("perpetual positions", cols, rows,
                   right=["QTY", "ENTRY", "MARK", "UNREALIZED", "LIQ_PRICE", "FUNDING"])


def _pct(value: Any) -> str | None:
    if value is None:
        return None
    return f"{float(value) * 100:.2f}%"


def _next_funding(nf: dict[str, Any] | None) -> str | None:
    """"0.0100% at 16:00:00Z" (the rate is the venue's estimate until then)."""
    if not nf:
        return None
    when = time.strftime("%H:%M:%SZ", time.gmtime(int(nf["ts_ns"]) / 1e9))
    return f"{float(nf['rate']) * 100:.4f}% at {when}"


def _money(amount: Any, currency: Any) -> str | None:
    if amount is None:
        return None
    return f"{text(amount)} {currency}" if currency else text(amount)


def _show_unvalued(answer: dict[str, Any]) -> None:
    """Balances the equity leaves out: no conversion into the account currency."""
    rows = [(u.get("venue"), u.get("currency"), u.get("balance"), u.get("pnl"), u.get("reason"))
            for u in answer.get("unvalued") or ()]
    if rows:
        show_table("unvalued (left out of equity)",
                   ["VENUE", "CURRENCY", "BALANCE", "PNL", "WHY"], rows,
                   right=["BALANCE", "PNL"])


def _journal(j: dict[str, Any] | None) -> str | None:
    if not j:
        return None
    return (f"written {j.get('written_seq')}, synced {j.get('synced_seq')}, "
            f"backlog {j.get('backlog_bytes')} B")


def run_positions(args: argparse.Namespace) -> int:
    answer = call(locate(args), "GET", "/positions" + ("?all=1" if args.all else ""))
    if args.json:
        print_json(answer)
        return 0
    cols = ["VENUE", "SYMBOL", "STRATEGY", "QTY", "AVG_PRICE", "MARK", "UNREALIZED", "REALIZED",
            "FEES"]
    keys = ["venue", "symbol", "strategy_id", "qty", "avg_price", "mark", "unrealized_pnl",
            "realized_pnl", "fees"]
    positions = answer.get("positions") or []
    if positions:
        show_table("positions", cols, [[p.get(k) for k in keys] for p in positions],
                   right=cols[3:])
    else:
        print("no open positions")
    print(f"equity {_money(answer.get('equity'), answer.get('account_currency'))}")
    _show_unvalued(answer)
    return 0


def run_orders(args: argparse.Namespace) -> int:
    answer = call(locate(args), "GET", "/orders" + ("?all=1" if args.all else ""))
    if args.json:
        print_json(answer)
        return 0
    orders = answer.get("orders") or []
    if not orders:
        print("no orders" if args.all else "no open orders")
        return 0
    cols = ["CLIENT_ORDER_ID", "STRATEGY", "VENUE", "SYMBOL", "SIDE", "TYPE", "QTY", "PRICE",
            "FILLED", "STATE"]
    keys = ["client_order_id", "strategy_id", "venue", "symbol", "side", "order_type", "qty",
            "price", "filled_qty", "state"]
    show_table("orders" if args.all else "open orders", cols,
               [[o.get(k) for k in keys] for o in orders], right=["QTY", "PRICE", "FILLED"])
    return 0


def run_halt(args: argparse.Namespace) -> int:
    return _set_state(args, "/halt")


def run_resume(args: argparse.Namespace) -> int:
    return _set_state(args, "/resume")


def _set_state(args: argparse.Namespace, path: str) -> int:
    body = {"reason": args.reason} if getattr(args, "reason", None) else {}
    answer = call(locate(args), "POST", path, body)
    if args.json:
        print_json(answer)
    else:
        print(f"trading {answer.get('state')}: {answer.get('reason')}")
    return 0
