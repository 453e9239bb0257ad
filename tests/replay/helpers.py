"""Building small event stores for the replay tests: events of a few types
(with and without a symbol, floats, Decimals, lists), written as part files in
the store's layout, optionally split into parts that overlap in time."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

from events.base import Event, event_type_name
from events.market import BookDelta, Quote, Trade
from events.orders import Fill
from events.schema import schema_for
from events.system import VenueStatus

NS = 1_000_000_000
DAY_NS = 86_400 * NS
DAY0 = date(2024, 3, 1)
DAY0_NS = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * NS
TYPES = ("Trade", "Quote", "Fill", "VenueStatus", "BookDelta")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def make_event(type_name: str, ts: int, seq: int, symbol: str = "BTCUSDT") -> Event:
    common = {"ts_event": ts, "ts_recv": ts + 7, "seq": seq}
    if type_name == "Trade":
        return Trade(
            **common,
            venue="sim",
            symbol=symbol,
            price=100.0 + seq / 8,
            size=0.5,
            aggressor=seq % 3,
            trade_id=f"t{seq}",
        )
    if type_name == "Quote":
        return Quote(
            **common,
            venue="sim",
            symbol=symbol,
            bid=99.5,
            ask=100.5,
            bid_size=1.0,
            ask_size=2.0 + seq,
        )
    if type_name == "Fill":
        return Fill(
            **common,
            venue="sim",
            symbol=symbol,
            strategy_id="s",
            client_order_id=f"c{seq}",
            trade_id=f"f{seq}",
            side="BUY",
            qty=Decimal("0.001"),
            price=Decimal(f"{seq}.10"),
            fee=Decimal("0.0001"),
            fee_currency="USDT",
            liquidity="TAKER",
        )
    if type_name == "VenueStatus":
        return VenueStatus(**common, venue="sim", status="connected", reason=str(seq))
    if type_name == "BookDelta":
        return BookDelta(
            **common,
            venue="sim",
            symbol=symbol,
            bid_prices=[1.0, 0.5],
            bid_sizes=[2.0, 3.0],
            ask_prices=[],
            ask_sizes=[],
            last_update_id=seq,
        )
    raise ValueError(type_name)


def key(event: Event) -> tuple[int, int]:
    return (event.ts_event, event.seq)


def part_path(root: Path, day: date, type_name: str, number: int) -> Path:
    return (
        root
        / "events"
        / f"date={day.isoformat()}"
        / f"type={type_name}"
        / f"part-{number:05d}.parquet"
    )


def write_part(
    path: Path, events: Sequence[Event], *, row_group_size: int | None = None, sort: bool = True
) -> Path:
    """One part file holding `events` (all of one type), sorted unless told not to."""
    rows = sorted(events, key=key) if sort else list(events)
    table = schema_for(type(rows[0])).to_table(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)
    return path


def date_of(ts: int) -> date:
    return datetime.fromtimestamp(ts // NS, UTC).date()


def write_store(
    root: Path,
    events: Iterable[Event],
    *,
    parts: int = 1,
    seed: int = 0,
    row_group_size: int | None = None,
) -> list[Path]:
    """The events as a store: by UTC date and type, each group dealt at random
    into up to `parts` part files, so parts overlap in time."""
    rng = random.Random(seed)
    groups: dict[tuple[date, str], list[Event]] = defaultdict(list)
    for event in events:
        groups[(date_of(event.ts_event), event_type_name(type(event)))].append(event)
    number = 0
    paths = []
    for (day, type_name), group in sorted(groups.items()):
        piles: list[list[Event]] = [[] for _ in range(parts)]
        for event in group:
            piles[rng.randrange(parts)].append(event)
        for pile in piles:
            if pile:
                paths.append(
                    write_part(
                        part_path(root, day, type_name, number), pile, row_group_size=row_group_size
                    )
                )
                number += 1
    return paths


def flatten(batches: Iterable[list[Event]]) -> list[Event]:
    return [event for batch in batches for event in batch]
