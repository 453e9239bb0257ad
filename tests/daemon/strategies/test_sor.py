"""Smart order routing: the plan over two books (fees, modes, steps, minimum
notional, a property over random books), and the `sor` strategy on a node with two
simulated venues listing the same pair under different symbols."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import load_config
from daemon.strategies.sor import VenueBook, plan, same_pair
from daemon.trading.api import BUY, SELL
from events.instruments import Instrument
from events.market import BookSnapshot, Quote, Trade
from events.orders import Fill, OrderSubmitted
from tests.daemon.strategies.algo_world import T0, Daemon, S

D = Decimal


def inst(venue: str, symbol: str, step: str = "0.001", tick: str = "0.01",
         min_notional: str = "0") -> Instrument:
    return Instrument(venue=venue, symbol=symbol, base="BTC", quote="USDT", tick_size=D(tick),
                      step_size=D(step), min_notional=D(min_notional))


def book(asks: list[tuple[float, float]], bids: list[tuple[float, float]] = ()) -> VenueBook:  # type: ignore[assignment]
    b = VenueBook()
    b.on_event(BookSnapshot(ts_event=T0, ts_recv=T0, venue="x", symbol="x",
                            bid_prices=[p for p, _ in bids], bid_sizes=[s for _, s in bids],
                            ask_prices=[p for p, _ in asks], ask_sizes=[s for _, s in asks]))
    return b


INSTS = {"a": inst("a", "BTCUSDT"), "b": inst("b", "BTC-USDT", step="0.01")}
BOOKS = {"a": book([(100.0, 0.5), (101.0, 2.0)], [(99.0, 1.0)]),
         "b": book([(100.5, 1.0), (102.0, 5.0)], [(99.5, 0.4), (98.0, 3.0)])}


def legs(side: str, qty: str, **kw: object) -> list[tuple[str, str, Decimal, Decimal]]:
    return [(leg.venue, leg.symbol, leg.qty, leg.price)
            for leg in plan(side, D(qty), BOOKS, INSTS, **kw)]  # type: ignore[arg-type]


def test_split_walks_the_merged_books_best_first() -> None:
    assert legs(BUY, "1.2") == [("a", "BTCUSDT", D("0.5"), D("100.00")),
                                ("b", "BTC-USDT", D("0.70"), D("100.50"))]
    assert legs(SELL, "1.0") == [("b", "BTC-USDT", D("0.40"), D("99.50")),
                                 ("a", "BTCUSDT", D("0.6"), D("99.00"))]


def test_a_known_fee_moves_the_route() -> None:
    """b's 100.5 costs 101.103 with a 60 bps fee: a's 101 level is cheaper."""
    assert legs(BUY, "1.2", fees={"b": D("0.006")}) == [("a", "BTCUSDT", D("1.2"), D("101.00"))]


def test_best_mode_takes_the_venue_cheapest_for_the_whole_size() -> None:
    assert legs(BUY, "1.2", mode="best") == [("a", "BTCUSDT", D("1.2"), D("101.00"))]
    assert legs(BUY, "3", mode="best") == [("b", "BTC-USDT", D("3.00"), D("102.00"))]


def test_a_leg_below_its_minimum_notional_is_replanned_elsewhere() -> None:
    insts = {**INSTS, "b": inst("b", "BTC-USDT", step="0.01", min_notional="100")}
    got = plan(BUY, D("1.2"), BOOKS, insts)
    assert [(leg.venue, leg.qty, leg.price) for leg in got] == [("a", D("1.2"), D("101.00"))]


def test_the_venues_of_a_pair_match_by_base_and_quote() -> None:
    insts = {("a", "BTCUSDT"): INSTS["a"], ("b", "BTC-USDT"): INSTS["b"],
             ("b", "ETHUSDT"): Instrument(venue="b", symbol="ETHUSDT", base="ETH", quote="USDT",
                                          tick_size=D("0.01"), step_size=D("0.001"))}
    assert same_pair(insts, "BTC", "USDT", ["a", "b"]) == INSTS


levels = st.lists(st.tuples(st.integers(9_000, 11_000), st.integers(1, 5_000)), min_size=1,
                  max_size=6, unique_by=lambda lv: lv[0])


@settings(max_examples=200, deadline=None)
@given(levels, levels, st.integers(1, 20_000), st.sampled_from(["split", "best"]),
       st.sampled_from([BUY, SELL]))
def test_plan_invariants(a, b, qty_milli, mode, side) -> None:  # type: ignore[no-untyped-def]
    """Legs are on their venue's grid, never above the order, never take more than a
    venue shows (plus the sub-step remainder), and split routes all of a big enough
    display (less what the steps round away)."""
    books = {"a": book([(p / 100, s / 1000) for p, s in a], [(p / 100, s / 1000) for p, s in a]),
             "b": book([(p / 100, s / 1000) for p, s in b], [(p / 100, s / 1000) for p, s in b])}
    qty = D(qty_milli) / 1000
    got = plan(side, qty, books, INSTS, mode=mode)
    total = sum((leg.qty for leg in got), D(0))
    assert total <= qty
    for leg in got:
        i = INSTS[leg.venue]
        assert i.on_qty_grid(leg.qty) and i.on_price_grid(leg.price) and leg.qty > 0
        walked = [(p, s) for p, s in books[leg.venue].far_side(side)
                  if (p <= leg.price if side == BUY else p >= leg.price)]
        assert leg.qty <= sum((s for _, s in walked), D(0)) + i.step_size
    shown = sum((s for v in books for _, s in books[v].far_side(side)), D(0))
    if mode == "split" and shown >= qty:
        assert qty - total < sum((i.step_size for i in INSTS.values()), D(0))


TWO_VENUES = """\
[daemon]
data_dir = "data"
control = "127.0.0.1:8765"

[[venues]]
name = "a"
kind = "sim"
balances = { USDT = 1_000_000.0 }

[[venues]]
name = "b"
kind = "sim"
balances = { USDT = 1_000_000.0 }

[[instruments]]
venue = "a"
symbol = "BTCUSDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.001

[[instruments]]
venue = "b"
symbol = "BTC-USDT"
base = "BTC"
quote = "USDT"
tick_size = 0.01
step_size = 0.01

[risk]
max_order_qty = 10.0
max_order_notional = 250_000.0
max_position_qty = 20.0
daily_loss_limit = 10_000.0
max_orders_per_s = 20
price_band_pct = 5.0

[[strategies]]
id = "sor"
class = "daemon.strategies.sor_strategy:Sor"
venue = "a"
symbols = ["BTCUSDT"]
params = { side = "BUY", total_qty = 1.2, venues = ["a", "b"] }
"""


def snap(venue: str, symbol: str, t: int, asks: list[tuple[float, float]]) -> BookSnapshot:
    return BookSnapshot(ts_event=t, ts_recv=t, venue=venue, symbol=symbol,
                        bid_prices=[95.0], bid_sizes=[1.0],
                        ask_prices=[p for p, _ in asks], ask_sizes=[s for _, s in asks])


def test_sor_on_two_simulated_venues_routes_fills_and_is_not_rerouted_after_a_restart(
        tmp_path: Path) -> None:
    path = tmp_path / "sor.toml"
    path.write_text(TWO_VENUES)
    d = Daemon(load_config(path, data_dir=tmp_path / "data"))
    node = d.boot(T0)
    d.feed([Trade(ts_event=T0, ts_recv=T0, venue=v, symbol=s, price=100.0, size=1.0)
            for v, s in (("a", "BTCUSDT"), ("b", "BTC-USDT"))])
    d.feed([snap("a", "BTCUSDT", T0, [(100.0, 0.5), (101.0, 2.0)])])
    assert d.children("sor") == []  # b has shown nothing yet
    d.feed([snap("b", "BTC-USDT", T0 + S, [(100.5, 1.0), (102.0, 5.0)])])
    assert [(e.venue, e.symbol, e.qty, e.price, e.time_in_force) for e in d.children("sor")] == [
        ("a", "BTCUSDT", D("0.5"), D("100.00"), "IOC"),
        ("b", "BTC-USDT", D("0.70"), D("100.50"), "IOC")]
    d.feed([snap("a", "BTCUSDT", T0 + 2 * S, [(100.0, 0.5), (101.0, 2.0)]),
            snap("b", "BTC-USDT", T0 + 3 * S, [(100.5, 1.0), (102.0, 5.0)])])
    fills = [(e.venue, e.qty) for e in d.journal if type(e) is Fill]
    assert sorted(fills) == [("a", D("0.5")), ("b", D("0.70"))]
    assert node.portfolio.position("b", "BTC-USDT", "sor").qty == D("0.7")
    assert node.runtime.status("sor") == "stopped"
    d.boot(T0 + 10 * S)  # a restart: the parent routed already
    d.feed([snap("a", "BTCUSDT", T0 + 11 * S, [(100.0, 0.5)]),
            Quote(ts_event=T0 + 12 * S, ts_recv=T0 + 12 * S, venue="b", symbol="BTC-USDT",
                  bid=99.0, ask=100.0, bid_size=1.0, ask_size=1.0)])
    assert len([e for e in d.journal if type(e) is OrderSubmitted]) == 2


def test_a_paper_sor_never_routes_to_a_real_venue(tmp_path: Path) -> None:
    """paper = true trades on simulated twins; b has none, so it does not start."""
    path = tmp_path / "sor.toml"
    path.write_text(TWO_VENUES + "paper = true\n")
    d = Daemon(load_config(path, data_dir=tmp_path / "data"))
    node = d.boot(T0)
    d.feed([Trade(ts_event=T0, ts_recv=T0, venue=v, symbol=s, price=100.0, size=1.0)
            for v, s in (("a", "BTCUSDT"), ("b", "BTC-USDT"))])
    d.feed([snap("a", "BTCUSDT", T0, [(100.0, 5.0)]), snap("b", "BTC-USDT", T0, [(100.0, 5.0)])])
    assert node.runtime.status("sor") == "failed"
    assert d.children("sor") == []
