"""Positions files: the positions to seed a portfolio with at first start.

Owns the two accepted formats and their errors. CSV has a header row naming at
least `Symbol,Exchange,Quantity,AvgEntryPrice` (any order, any case; `Exchange` is
the venue; an optional `StrategyId` column; other columns are ignored). JSON is a
list of objects `{"symbol", "venue", "qty", "avg_price"[, "strategy_id"]}`.
Numbers are read as exact decimals (JSON numbers too). A bad file is one
`ValueError` line: `FILE:LINE:COLUMN: what is wrong`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from daemon.trading.api import Position

UNATTRIBUTED = ""  # strategy id of positions no strategy owns (seeded, external fills)
ZERO = Decimal(0)

_CSV_COLUMNS = {"symbol": "Symbol", "exchange": "Exchange", "quantity": "Quantity",
                "avgentryprice": "AvgEntryPrice"}
_CSV_STRATEGY = ("strategyid", "strategy_id", "strategy")


def load_positions(path: str | os.PathLike[str]) -> list[Position]:
    """Positions to `seed` from a file: CSV with header `Symbol,Exchange,Quantity,
    AvgEntryPrice[,StrategyId],...` (extra columns ignored, Exchange is the venue)
    or JSON, a list of `{symbol, venue, qty, avg_price[, strategy_id]}` objects
    (`.json`, or any file starting with `[`). Numbers are read as exact decimals.

    Raises ValueError with one line `FILE:LINE:COLUMN: message` for a bad file.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValueError(f"{name}:1:1: cannot read positions file: "
                         f"{exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(f"{name}:{line}:{col}: not UTF-8 text ({exc.reason})") from None
    if name.lower().endswith(".json") or text.lstrip().startswith("["):
        return _load_json(name, text)
    return _load_csv(name, text)


def _decimal(text: Any, field: str, where: str, *, positive: bool = False) -> Decimal:
    if isinstance(text, bool) or not isinstance(text, str | int | Decimal):
        raise ValueError(f"{where}: {field}: expected a decimal number, got {text!r}")
    try:
        value = Decimal(text.strip()) if isinstance(text, str) else Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{where}: {field}: expected a decimal number, got {text!r}") from None
    if not value.is_finite():
        raise ValueError(f"{where}: {field}: expected a finite number, got {text!r}")
    if positive and value < 0:
        raise ValueError(f"{where}: {field}: must be >= 0, got {text!r}")
    return value


def _position(symbol: Any, venue: Any, qty: Decimal, avg: Decimal, strategy_id: Any,
              where: Callable[[str], str], seen: set[tuple[str, str, str]]) -> Position:
    for field, value in (("symbol", symbol), ("venue", venue)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where(field)}: {field}: expected a non-empty name, got {value!r}")
    if not isinstance(strategy_id, str):
        raise ValueError(f"{where('strategy_id')}: strategy_id: expected a string, "
                         f"got {strategy_id!r}")
    if qty and avg <= 0:
        raise ValueError(f"{where('avg_price')}: avg_price: must be > 0 for a non-zero "
                         f"quantity, got {avg}")
    key = (venue.strip(), symbol.strip(), strategy_id.strip())
    if key in seen:
        raise ValueError(f"{where('symbol')}: duplicate position {key[0]}:{key[1]} "
                         f"strategy {key[2]!r}")
    seen.add(key)
    return Position(venue=key[0], symbol=key[1], strategy_id=key[2], qty=qty,
                    avg_price=avg if qty else ZERO)


def _load_csv(name: str, text: str) -> list[Position]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{name}:1:1: empty positions file (expected a header "
                         "Symbol,Exchange,Quantity,AvgEntryPrice)") from None
    except csv.Error as exc:
        raise ValueError(f"{name}:1:1: bad CSV: {exc}") from None
    index = {h.strip().lower(): i for i, h in enumerate(header)}
    for key, title in _CSV_COLUMNS.items():
        if key not in index:
            raise ValueError(f"{name}:1:{len(header) + 1}: missing column {title!r} "
                             f"(header: {','.join(header)})")
    sid_col = next((index[k] for k in _CSV_STRATEGY if k in index), None)
    # our field name -> its column
    cols = {"symbol": index["symbol"], "venue": index["exchange"], "qty": index["quantity"],
            "avg_price": index["avgentryprice"]}
    if sid_col is not None:
        cols["strategy_id"] = sid_col
    out: list[Position] = []
    seen: set[tuple[str, str, str]] = set()
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num

            def where(field: str, line: int = line) -> str:
                return f"{name}:{line}:{cols.get(field, cols['symbol']) + 1}"

            values: dict[str, str] = {}
            for field, col in cols.items():
                if col >= len(row):
                    title = header[col].strip()
                    raise ValueError(f"{where(field)}: {title}: missing value")
                values[field] = row[col]
            qty = _decimal(values["qty"], header[cols["qty"]].strip(), where("qty"))
            avg = _decimal(values["avg_price"], header[cols["avg_price"]].strip(),
                           where("avg_price"), positive=True)
            out.append(_position(values["symbol"], values["venue"], qty, avg,
                                 values.get("strategy_id", UNATTRIBUTED), where, seen))
    except csv.Error as exc:
        raise ValueError(f"{name}:{reader.line_num}:1: bad CSV: {exc}") from None
    return out


def _load_json(name: str, text: str) -> list[Position]:
    decoder = json.JSONDecoder(parse_float=Decimal)

    def at(offset: int) -> str:
        line = text.count("\n", 0, offset) + 1
        col = offset - text.rfind("\n", 0, offset)
        return f"{name}:{line}:{col}"

    try:
        decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        raise ValueError(f"{at(start)}: expected a JSON list of positions")
    out: list[Position] = []
    seen: set[tuple[str, str, str]] = set()
    i = start + 1
    n = 0
    # The text is valid JSON: walk the list's items to know where each one starts.
    while True:
        while text[i].isspace() or text[i] == ",":
            i += 1
        if text[i] == "]":
            return out
        begin = i
        item, i = decoder.raw_decode(text, i)
        end = i

        def where(field: str, begin: int = begin, end: int = end, n: int = n) -> str:
            found = text.find(f'"{field}"', begin, end)
            return f"{at(found if found >= 0 else begin)}: $[{n}]"

        if not isinstance(item, dict):
            raise ValueError(f"{where('')}: expected an object, got {type(item).__name__}")
        for field in ("symbol", "venue", "qty", "avg_price"):
            if field not in item:
                raise ValueError(f"{where('')}: missing key {field!r}")
        qty = _decimal(item["qty"], "qty", where("qty"))
        avg = _decimal(item["avg_price"], "avg_price", where("avg_price"), positive=True)
        out.append(_position(item["symbol"], item["venue"], qty, avg,
                             item.get("strategy_id", UNATTRIBUTED), where, seen))
        n += 1
