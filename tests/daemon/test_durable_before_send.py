"""The order intent is durable before the order is sent, on the real live path: a
trade frame over a websocket, the Binance market stream, the bus with the journal
wired for group commit (as the daemon wires it), a strategy, the OMS and risk, the
Binance venue and its REST client, up to the moment the signed request would go to
the network (bench/bench_tick_to_order.py's last inch). The journal's fdatasync is
instrumented where it reaches the disk: at every send, the OrderSubmitted of that
client order id must already be covered by a completed fdatasync."""

from __future__ import annotations

import pytest

import events.journal as journal_mod
from bench.bench_tick_to_order import SyncTimes, measure
from events.orders import OrderSubmitted


@pytest.mark.parametrize("sync_wait", ["spin", "block"])
async def test_no_order_is_sent_before_the_fdatasync_covering_its_intent(
        monkeypatch: pytest.MonkeyPatch, sync_wait: str) -> None:
    state = {"durable": 0}
    intents: dict[str, int] = {}
    sends: list[tuple[str, int, int]] = []  # (client id, its intent's seq, durable seq)
    journal_ref: list = []
    real = journal_mod._datasync

    def datasync(fd: int) -> None:
        real(fd)
        state["durable"] = journal_ref[0].written_seq  # handed to the OS before the sync

    def on_open(bus, journal) -> None:
        journal_ref.append(journal)
        bus.subscribe(OrderSubmitted, lambda e: intents.__setitem__(e.client_order_id, e.seq))

    def on_send(cid: str) -> None:
        sends.append((cid, intents.get(cid, 0), state["durable"]))

    monkeypatch.setattr(journal_mod, "_datasync", datasync)
    latencies, fsyncs = await measure(60, "critical", warmup=5, on_open=on_open,
                                      on_send=on_send, sync_wait=sync_wait)
    assert len(latencies) == 60 and len(sends) == 65
    late = [(cid, seq, durable) for cid, seq, durable in sends if not 0 < seq <= durable]
    assert late == [], f"sent before its intent was durable: {late[:5]}"
    # one fdatasync for the intent, one for the answer's ack and expiry together
    assert 60 <= fsyncs <= 2 * 60 + 2, fsyncs


async def test_the_bench_times_the_journals_fdatasyncs_and_the_one_inside_each_order() -> None:
    """bench_tick_to_order's SyncTimes: every fdatasync of the measured orders is timed,
    and each order's window (trade delivered -> send) holds its intent's, and no more
    than its latency; the journal's own fdatasync is put back afterwards."""

    real = journal_mod._datasync
    syncs = SyncTimes()
    latencies, fsyncs = await measure(40, "critical", warmup=5, syncs=syncs)
    assert journal_mod._datasync is real
    assert len(syncs.calls) == fsyncs and len(syncs.in_window) == len(latencies) == 40
    assert all(0 < w < lat for w, lat in zip(syncs.in_window, latencies, strict=True)), (
        syncs.in_window, latencies)
    never = SyncTimes()
    await measure(10, "never", warmup=2, syncs=never)
    assert never.calls == [] and never.in_window == [0] * 10


async def test_the_bench_samples_the_disks_floor_between_its_orders() -> None:
    """bench_tick_to_order's interleaved floor: one write and fdatasync before every
    other frame after the warm-up, none inside an order's window (each order's
    window holds its own intent's fdatasync and nothing of the probe's)."""
    floor: list[int] = []
    syncs = SyncTimes()
    latencies, _ = await measure(20, "critical", warmup=4, syncs=syncs, floor=floor)
    assert len(latencies) == 20
    assert len(floor) == 10 and all(ns > 0 for ns in floor)
    # the probe's fdatasyncs are not the journal's: in no order's window
    assert all(0 < w < lat for w, lat in zip(syncs.in_window, latencies, strict=True))


@pytest.mark.parametrize("http", ["lean", "aiohttp"])
async def test_the_bench_times_each_order_to_the_wire_through_a_real_http_exchange(
        http: str) -> None:
    """bench_tick_to_order's `tick_to_wire`: every order goes through the REST client's
    own transport to the wire server and back (its answer closes the order), and each
    latency ends at the kernel's stamp of that request's arrival: after the trade
    was received, before the next one is sent."""
    orders: dict[str, str] = {}

    def on_open(bus, journal) -> None:
        from events.orders import OrderExpired
        bus.subscribe(OrderExpired, lambda e: orders.__setitem__(e.client_order_id, "expired"))

    latencies, fsyncs = await measure(30, "never", warmup=3, wire=http, on_open=on_open)
    assert len(latencies) == 30 and fsyncs == 0
    assert all(0 < ns < 1_000_000_000 for ns in latencies), latencies
    assert len(orders) == 33 and set(orders.values()) == {"expired"}  # every answer read
