"""CCXT unified symbols ('/' and ':') through the journal, the Parquet roll and the
replay reader: no path or file name is built from a symbol."""

from __future__ import annotations

from pathlib import Path

from events.bus import Bus
from events.market import Trade
from events.store import EventStore
from replay.reader import read_events

SYMBOLS = ["BTC/USDT", "BTC/USDT:USDT", "ETH/USD:ETH-241227"]


def test_unified_symbols_survive_journal_roll_and_replay_read(tmp_path: Path) -> None:
    store = EventStore.open_writer(tmp_path)
    journal = store.open_journal()
    bus = Bus(next_seq=journal.next_seq)
    bus.subscribe_all(journal.append)
    for i in range(30):
        bus.publish(Trade(ts_event=1_700_000_000_000_000_000 + i, ts_recv=i, venue="v",
                          symbol=SYMBOLS[i % 3], price=100.0 + i, size=1.0, trade_id=str(i)))
    last = journal.close()
    store.roll_segment(last)
    store.close()
    assert not any(":" in p.name or "USDT" in p.name for p in tmp_path.rglob("*"))
    for symbol in SYMBOLS:
        back = [e for batch in read_events(tmp_path, symbols=[symbol]) for e in batch]
        assert [e.trade_id for e in back] == [str(i) for i in range(30) if SYMBOLS[i % 3]
                                              == symbol]
        assert {e.symbol for e in back} == {symbol}
