"""The store for SQL users (issue 14 item 5): the recipes in
docs/store-recipes.md run AS WRITTEN (each ```python block, extracted from the
file, in a child process whose working directory holds `data/`) against a
store holding the imported Binance recording (four event types) and a month
of bars; `events.store.dataset` gives one type with its own schema; the
aggressor reads as 'buy'/'sell' (null when unknown), and parts written before,
with the int codes, still read, in the replay and through `dataset`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from events.market import AGGRESSOR_BUY, AGGRESSOR_SELL, AGGRESSOR_UNKNOWN, Trade
from events.schema import schema_for
from events.store import EventStore, dataset, list_parts
from replay.reader import read_events
from tests.conftest import REPO, SHARED_DATA, cli_env, tapeloop_cmd

RECIPES = REPO / "docs" / "store-recipes.md"
SAMPLE = REPO / "configs" / "samples" / "binance-usdm-btcusdt-20240808-head30k.gz"
BARS = SHARED_DATA / "nautilus_trader" / "btc-perp-20211231-20220201_1m.csv"
TRADE_COLUMNS = {"ts_event", "symbol", "price", "size", "aggressor"}


def cli(*args: str | Path) -> None:
    out = subprocess.run(tapeloop_cmd(*map(str, args)), capture_output=True, text=True,
                         env=cli_env(), cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory whose data/ holds the Binance recording and bars."""
    root = tmp_path_factory.mktemp("recipes")
    cli("import", "binance-stream", SAMPLE, "--venue", "binance", "--symbol", "BTCUSDT",
        "--data", root / "data")
    if BARS.is_file():
        cli("import", "bars", BARS, "--venue", "ftx", "--symbol", "BTC-PERP", "--interval",
            "1m", "--data", root / "data")
    return root


def stored(data: Path, type_name: str) -> pa.Table:
    """One type's rows read file by file (independent of the helper)."""
    return pa.concat_tables(pq.read_table(p.path)
                            for p in list_parts(data / "events", types=[type_name]))


README = REPO / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def blocks() -> list[str]:
    return _python_blocks(RECIPES.read_text())


def readme_blocks() -> list[str]:
    """The python blocks of the README's "The store" section."""
    text = README.read_text()
    section = text.split("\n## The store\n", 1)[1].split("\n## ", 1)[0]
    return _python_blocks(section)


def test_the_readme_store_section_has_its_recipes() -> None:
    text = "\n".join(readme_blocks())
    assert len(readme_blocks()) == 3
    for needle in ("from events.store import dataset", "import duckdb", "import polars"):
        assert needle in text


def test_the_recipes_file_has_a_block_for_each_tool() -> None:
    text = "\n".join(blocks())
    assert len(blocks()) == 4
    for needle in ("from events.store import dataset", "import duckdb", "import polars"):
        assert needle in text


@pytest.mark.parametrize("source", [f"docs-{i}" for i in range(4)]
                         + [f"readme-{i}" for i in range(3)])
def test_each_recipe_runs_as_written_and_gives_the_trades(store: Path, source: str) -> None:
    # the block as written, then a report of what it left in `trades` (and `bars`)
    probe = """
import json as _json
_t = trades
if hasattr(_t, "to_arrow"):  # polars
    _t = _t.to_arrow()
_out = {"rows": _t.num_rows, "columns": _t.column_names,
        "aggressor": sorted({str(v) for v in _t.column("aggressor").to_pylist()})}
if "bars" in globals():
    _out["bars"] = bars.num_rows
if "by_side" in globals():
    _out["by_side"] = str(by_side)
print("RESULT " + _json.dumps(_out))
"""
    where, index = source.split("-")
    code = (blocks() if where == "docs" else readme_blocks())[int(index)] + probe
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=store, env=cli_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    want = stored(store / "data", "Trade")
    assert result["rows"] == want.num_rows == 4565
    assert TRADE_COLUMNS <= set(result["columns"])
    assert not {"bid_prices", "ask_sizes"} & set(result["columns"])  # BookDelta's
    assert result["aggressor"] == ["buy", "sell"]
    if "bars" in result and BARS.is_file():
        days = bars_since_2022(stored(store / "data", "Bar"))
        assert result["bars"] == days
    if "by_side" in result:
        sides = Counter(want.column("aggressor").to_pylist())
        for side in ("buy", "sell"):
            assert str(sides[side]) in result["by_side"]


def bars_since_2022(bars: pa.Table) -> int:
    """Bars dated 2022-01-01 or later (the first recipe's filter)."""
    import pyarrow.compute as pc

    ts = bars.column("ts_event").cast(pa.timestamp("ns", tz="UTC"))
    return int(pc.sum(pc.greater_equal(ts, pa.scalar(1_640_995_200 * 10**9,
                                                      pa.timestamp("ns", tz="UTC")))).as_py())


def test_dataset_is_one_type_with_its_schema_and_the_date(store: Path) -> None:
    data = store / "data"
    types = {p.type for p in list_parts(data / "events")}
    assert {"BookDelta", "Quote", "Trade"} <= types  # a store of several types
    table = dataset(data, "Trade").to_table()
    assert table.schema.remove(table.schema.get_field_index("date")).equals(
        schema_for(Trade).schema, check_metadata=False)
    assert table.schema.field("date").type == pa.date32()
    assert table.num_rows == stored(data, "Trade").num_rows
    buys = dataset(data, "Trade").to_table(filter=ds.field("aggressor") == "buy")
    assert 0 < buys.num_rows < table.num_rows
    with pytest.raises(ValueError, match="unknown event type 'Trades'"):
        dataset(data, "Trades")


def test_the_readme_pitfall_a_whole_store_dataset_takes_one_types_schema(store: Path) -> None:
    """Why the helper exists: the README's former recipe, over the whole store,
    gives the trades another type's columns (the first file's: no price)."""
    data = store / "data"
    whole = ds.dataset(data / "events", partitioning="hive")
    trades = whole.to_table(filter=ds.field("type") == "Trade")
    assert trades.num_rows == stored(data, "Trade").num_rows
    assert "price" not in trades.column_names
    assert "price" in dataset(data, "Trade").schema.names


def old_trades() -> list[Trade]:
    return [Trade(ts_event=1_700_000_000 * 10**9 + i, ts_recv=1_700_000_000 * 10**9 + i,
                  seq=i + 1, venue="v", symbol="X", price=100.0 + i, size=1.0,
                  aggressor=(AGGRESSOR_UNKNOWN, AGGRESSOR_BUY, AGGRESSOR_SELL)[i % 3],
                  trade_id=str(i)) for i in range(9)]


def test_parts_written_with_int_aggressors_still_read(tmp_path: Path) -> None:
    """A part from before (aggressor stored as the int code) next to a new one."""
    data = tmp_path / "data"
    events = old_trades()
    EventStore.open_writer(data).close()
    parts = data / "events" / "date=2023-11-14" / "type=Trade"
    parts.mkdir(parents=True)
    # the old part: rows as the old writer stored them (codes, int64); then a new one
    old = schema_for(Trade).to_table(events[:5])
    old = old.set_column(old.schema.get_field_index("aggressor"), "aggressor",
                         pa.array([e.aggressor for e in events[:5]], pa.int64()))
    pq.write_table(old, parts / "part-00000.parquet")
    new = schema_for(Trade).to_table(events[5:])
    assert new.column("aggressor").to_pylist() == ["sell", None, "buy", "sell"]
    pq.write_table(new, parts / "part-00001.parquet")
    assert pq.read_schema(parts / "part-00000.parquet").field("aggressor").type == pa.int64()

    replayed = [e for batch in read_events(data) for e in batch]
    assert sorted(replayed, key=lambda e: e.seq) == events
    table = dataset(data, "Trade").to_table().sort_by("seq")
    assert table.column("aggressor").to_pylist() == \
        [(None, "buy", "sell")[e.aggressor] for e in events]
