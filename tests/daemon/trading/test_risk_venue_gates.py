"""Venue gates of the risk engine, which live adapters drive: a venue not yet
reconciled takes no order at all; a hold (an order whose outcome is unknown, a
stale feed) keeps the account REDUCING until the last hold is released, and a
release never lifts a REDUCING the day's loss still demands. Holds die with the
process: after a restart, a REDUCING only they caused lifts once the venues have
reconciled without holding anything again."""

from __future__ import annotations

from typing import Any

from daemon.trading.api import BUY, SELL
from events.system import ACTIVE, REDUCING, TradingState
from tests.daemon.trading.test_risk import Env, refused


def test_a_blocked_venue_refuses_every_order_until_unblocked() -> None:
    env = Env()
    env.risk.block_venue("sim", "sim: not reconciled with Binance yet")
    refused(env.check(), "venue_ready", "not reconciled")
    refused(env.check(side=SELL), "venue_ready", "not reconciled")  # even reducing ones
    assert env.states() == []  # a gate, not a trading state
    env.risk.unblock_venue("sim")
    assert env.check() is None


def test_holds_keep_the_account_reducing_until_the_last_is_released() -> None:
    env = Env()
    env.fill(BUY, "2", "100")
    env.risk.hold("sim:order:s1-7", "order s1-7 on sim: outcome unknown")
    env.risk.hold("sim:feed", "sim market data resyncing")
    assert env.states() == [(REDUCING, "order s1-7 on sim: outcome unknown")]
    refused(env.check(), "daily_loss_limit", "outcome unknown")
    assert env.check(side=SELL, qty="1") is None  # reducing passes
    env.risk.release("sim:order:s1-7", "order s1-7 resolved")
    assert env.risk.state == REDUCING  # the feed still holds it
    env.risk.release("sim:feed", "sim market data flowing")
    assert env.states()[-1] == (ACTIVE, "sim market data flowing")
    env.risk.release("sim:feed")  # releasing twice changes nothing
    assert len(env.states()) == 2
    assert env.check() is None


def test_a_release_does_not_lift_a_loss_limit() -> None:
    env = Env(risk_kw={"daily_loss_limit": 50.0})
    env.fill(BUY, "2", "100")
    env.risk.hold("sim:feed", "stale feed")
    env.trade(70.0)  # loss 60 >= 50: the loss demands REDUCING too
    env.risk.evaluate()
    env.risk.release("sim:feed")
    assert env.risk.state == REDUCING
    assert env.states() == [(REDUCING, "stale feed")]


def restarted(before: Env, **kw: Any) -> Env:
    """A new process on `before`'s journal: its trading states folded, as recovery
    folds them (holds are not journaled: they die with the process)."""
    after = Env(**kw)
    after.risk.recover(e for e in before.events if isinstance(e, TradingState))
    after.events.clear()
    return after


def test_a_reducing_only_holds_caused_lifts_after_a_restart_with_no_hold_left() -> None:
    # A kill -9 while an order's outcome was unknown left the journal's last state
    # REDUCING. The new process's reconciliation settled the order (nothing held
    # again): the account must trade again, not stay REDUCING until the next day.
    before = Env()
    before.risk.hold("sim:order:s1-7", "order s1-7 on sim: outcome unknown")
    after = restarted(before)
    assert after.risk.state == REDUCING
    after.risk.after_recovery()
    assert after.risk.state == ACTIVE
    [(state, reason)] = after.states()
    assert state == ACTIVE and "no hold left after the restart" in reason
    assert after.check() is None


def test_a_hold_taken_again_at_reconciliation_keeps_it_reducing_until_released() -> None:
    before = Env()
    before.risk.hold("sim:order:s1-7", "order s1-7 on sim: outcome unknown")
    after = restarted(before)
    after.risk.hold("sim:order:s1-7", "order s1-7 on sim: outcome unknown")  # still unknown
    after.risk.after_recovery()
    assert after.risk.state == REDUCING and after.states() == []
    after.risk.release("sim:order:s1-7", "order s1-7 resolved")
    assert after.states() == [(ACTIVE, "order s1-7 resolved")]


def test_a_reducing_the_days_loss_caused_stays_after_a_restart() -> None:
    before = Env(risk_kw={"daily_loss_limit": 50.0})
    before.fill(BUY, "2", "100")
    before.trade(70.0)  # loss 60 >= 50
    before.risk.evaluate()
    assert before.risk.state == REDUCING
    after = restarted(before, risk_kw={"daily_loss_limit": 50.0})
    after.risk.after_recovery()  # no position here: the day's loss now is 0, yet
    assert after.risk.state == REDUCING and after.states() == []
