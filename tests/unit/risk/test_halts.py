"""Automatic halts are loud and honest: a loss crossing the daily loss limit is one halt transition (not
one per candle), the account is HALTED, `resume` is refused with the reason and the time it lifts, the
trading day follows the market time of the candles decided (a replay of 2025 candles rolls over at the
2025 midnight, whatever the wall clock says), and every decision while halted carries the effective
state and what blocks it. Pair-level automatic pauses (a stale source, a failed gate) likewise begin and
clear once each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from domain.candles import Candle, datetime_to_ms
from features.gates import GAP
from pipeline.risk.account import AccountPolicy
from pipeline.risk.blocks import effective
from pipeline.risk.core import RiskCore, decision_time_ms
from pipeline.risk.desk import AccountDesk
from tests.unit.risk.test_risk_core import CONTEXT, LIMITS, RULES, Account, decision, report

D = Decimal
POLICY = AccountPolicy("test", D(20_000), D(20_000), D(10), 5, timedelta(minutes=30))
EVENING = datetime(2025, 5, 5, 22, 0, tzinfo=UTC)
"""Market time in a replay: 2025, while the wall clock is wherever it is."""


def desk_at(moment: datetime, policy: AccountPolicy = POLICY) -> AccountDesk:
    desk = AccountDesk(policy, None, datetime.now(UTC))  # a fresh state starts on the wall clock's date
    desk.observe(moment)
    return desk


def test_a_loss_crossing_the_daily_limit_is_one_halt_until_the_next_market_day() -> None:
    desk = desk_at(EVENING)
    assert desk.guard.state.trading_day == date(2025, 5, 5), "the trading day is the candle's, not the wall clock's"
    assert desk.changes() == []
    desk.trade_closed(D(-4), desk.now)
    assert desk.changes() == []
    assert desk.guard.trading_state == "ACTIVE"
    desk.trade_closed(D("-6.50000000333"), desk.now)  # -10.50000000333 <= -10
    (halt,) = desk.changes()
    assert "the daily PnL -10.50 USDT of 2025-05-05" in halt.block.detail, "people read cents"
    assert halt.began
    assert halt.block.cause == "daily_loss_limit"
    assert halt.block.scope == "account"
    assert halt.block.figures == {
        "daily_pnl": "-10.50000000333",
        "daily_loss_limit": "10",
        "trading_day": "2025-05-05",
    }
    assert halt.block.until == datetime(2025, 5, 6, tzinfo=UTC)
    assert "2025-05-06 00:00 UTC" in halt.block.detail
    assert desk.guard.trading_state == "HALTED"
    verdict = desk.check("BTC-USDT", D(100), False, desk.now)
    assert (verdict.allowed, verdict.reason) == (False, "daily_loss_limit")
    assert verdict.details == {"daily_pnl": "-10.50000000333", "limit": "10", "until": "2025-05-06T00:00:00+00:00"}
    # once per transition: more losses and more candles the same day announce nothing new
    desk.trade_closed(D(-1), desk.now)
    for minute in range(1, 60):
        view = desk.observe(EVENING + timedelta(minutes=minute))
        assert view.trading_state == "HALTED"
        assert [block.cause for block in view.blocks] == ["daily_loss_limit"]
    assert desk.changes() == []
    # resume cannot lift it, and says why and until when
    refusal = desk.resume(desk.now)
    assert refusal is not None
    assert "daily loss limit" in refusal
    assert "2025-05-06 00:00 UTC" in refusal
    assert desk.guard.trading_state == "HALTED"
    # the next trading day on the market's clock clears it, once
    desk.observe(datetime(2025, 5, 6, 0, 1, tzinfo=UTC))
    (cleared,) = desk.changes()
    assert (cleared.began, cleared.block.cause, cleared.cleared_by) == (False, "daily_loss_limit", "next_trading_day")
    assert desk.guard.trading_state == "ACTIVE"
    assert (desk.guard.state.trading_day, desk.guard.state.daily_pnl) == (date(2025, 5, 6), D(0))
    assert desk.resume(desk.now) is None
    assert desk.changes() == []


def test_the_market_clock_never_goes_back_so_a_lagging_pair_cannot_undo_the_day() -> None:
    desk = desk_at(datetime(2025, 5, 6, 0, 0, tzinfo=UTC))
    desk.observe(datetime(2025, 5, 5, 23, 59, tzinfo=UTC))  # the other pair's candle, a minute behind
    assert desk.now == datetime(2025, 5, 6, tzinfo=UTC)
    assert desk.guard.state.trading_day == date(2025, 5, 6)


def test_before_the_first_candle_the_clock_is_the_last_market_time_the_state_knows() -> None:
    tripped = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)
    desk = desk_at(tripped, AccountPolicy("b", D(20_000), D(20_000), D(1_000), 1, timedelta(minutes=30)))
    assert desk.trade_closed(D(-1), desk.now)
    restored = AccountDesk(POLICY, desk.row(), datetime.now(UTC))
    assert restored.now == tripped  # not the wall clock: that would pass the cooldown in a replay
    assert restored.changes() == [], "a halt restored from the store was announced before the restart"
    assert "cools down until 2025-05-05T12:30:00+00:00" in (restored.resume(restored.now) or "")


def test_a_daily_loss_halt_restored_under_a_lower_limit_is_announced_at_the_start() -> None:
    # A day that lost 88 USDT under a 500 USDT limit, restarted with a 1 USDT limit: halted from the first
    # moment, and said so (it was never announced before the restart).
    desk = desk_at(EVENING)
    desk.trade_closed(D("-8.8"), desk.now)
    assert desk.changes() == []
    lower = AccountPolicy("low", D(20_000), D(20_000), D(1), 5, timedelta(minutes=30))
    restored = AccountDesk(lower, desk.row(), datetime.now(UTC))
    assert restored.guard.trading_state == "HALTED"
    (halt,) = restored.changes()
    assert (halt.began, halt.block.cause) == (True, "daily_loss_limit")
    assert restored.changes() == []


def test_the_breaker_halts_cools_down_on_market_time_and_clears_by_command() -> None:
    start = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)
    desk = desk_at(start, AccountPolicy("b", D(20_000), D(20_000), D(1_000), 2, timedelta(minutes=30)))
    desk.trade_closed(D(-1), desk.now)
    desk.trade_closed(D(-1), desk.now)
    (halt,) = desk.changes()
    assert (halt.began, halt.block.cause) == (True, "circuit_breaker")
    assert halt.block.until == start + timedelta(minutes=30)
    assert halt.block.figures["breaker_reason"] == "2 losing trades in a row"
    assert "cools down until 2025-05-05T12:30:00+00:00" in (desk.resume(desk.now) or "")
    assert desk.changes() == []
    desk.observe(start + timedelta(minutes=31))
    (cooled,) = desk.changes()
    assert (cooled.began, cooled.cleared_by) == (False, "cooldown_over")
    assert desk.guard.trading_state == "REDUCING", "a cooled-down breaker still needs the operator"
    desk.observe(start + timedelta(minutes=32))
    assert desk.changes() == []
    assert desk.resume(desk.now) is None
    (closed,) = desk.changes()
    assert (closed.began, closed.block.cause, closed.cleared_by) == (False, "circuit_breaker", "operator")


async def test_decisions_while_the_account_is_halted_carry_the_effective_state() -> None:
    account = Account(AccountPolicy("test", D(20_000), D(20_000), D(10), 3, timedelta(minutes=10)))
    core = RiskCore(CONTEXT, LIMITS, RULES, account)
    core.reconciled()
    first = decision(1, 1.0)
    plan, _ = await core.plan(first)
    assert (plan.trading_state, plan.blocked_by, len(plan.orders)) == ("ACTIVE", (), 1)
    assert account.observed == [first.input.candle.open_time_ms + 60_000], "the candle's close, the venue's clock"
    account.desk.trade_closed(D(-12), account.desk.now)
    core.on_report(report("0", last_minute=1))
    for minute, target, reason in ((2, -1.0, "daily_loss_limit"), (3, None, None)):  # denied, and a HOLD
        plan, _ = await core.plan(decision(minute, target))
        assert plan.trading_state == "HALTED", "never ACTIVE while every order is denied"
        assert plan.blocked_by == ("daily_loss_limit",)
        assert (plan.orders, plan.risk.reason) == ((), reason)
    assert core.trading_state == "ACTIVE", "the pair's own state is untouched"
    state, name, _ = core.effective()
    assert (state, name) == ("HALTED", "HALTED (daily_loss_limit)")
    # T0 is 2025-05-05 00:00 UTC: the first candle of 2025-05-06 (market time) lifts the halt
    next_day = decision(24 * 60, -1.0)
    plan, _ = await core.plan(next_day)
    assert (plan.trading_state, plan.blocked_by, len(plan.orders)) == ("ACTIVE", (), 1)


async def test_a_stale_source_and_a_failed_gate_each_begin_and_clear_once() -> None:
    core = RiskCore(CONTEXT, LIMITS, RULES, Account())
    core.reconciled()
    core.source(True, 95.4, 90)
    (halt,) = core.changes()
    assert (halt.began, halt.block.cause, halt.block.scope) == (True, "source_stale", "pair")
    assert halt.block.figures == {"silent_sec": "95", "stale_after_sec": "90"}
    assert "no market data for 95 s (stale after 90 s)" in halt.block.detail
    core.source(True, 125, 90)
    assert core.changes() == []
    # restarted with the pause in its checkpoint: announced already
    restored = RiskCore(CONTEXT, LIMITS, RULES, Account())
    restored.restore(core.to_json())
    assert restored.changes() == []
    core.source(False)
    (cleared,) = core.changes()
    assert (cleared.began, cleared.block.cause, cleared.cleared_by) == (False, "source_stale", "data_flowing")
    for minute in (1, 2):
        await core.plan(decision(minute, None, forced=GAP))
    (gate,) = core.changes()
    assert (gate.began, gate.block.cause) == (True, f"gate:{GAP}")
    assert gate.block.figures == {"candle": "t"}
    plan, _ = await core.plan(decision(3, None))
    (passed,) = core.changes()
    assert (passed.began, passed.cleared_by) == (False, "gate_passed")
    assert plan.trading_state == "ACTIVE"


def test_the_effective_state_is_the_strictest_and_names_its_causes() -> None:
    assert effective("ACTIVE", []) == ("ACTIVE", "ACTIVE")
    assert effective("REDUCING", [("REDUCING", "operator_reduce_only")]) == (
        "REDUCING",
        "REDUCING (operator_reduce_only)",
    )
    assert effective("REDUCING", [("REDUCING", "operator_reduce_only"), ("HALTED", "daily_loss_limit")]) == (
        "HALTED",
        "HALTED (daily_loss_limit)",
    )


def test_a_candle_is_decided_at_its_close() -> None:
    open_ms = datetime_to_ms(datetime(2025, 5, 5, 23, 59, tzinfo=UTC))
    assert decision_time_ms(Candle("BTC-USDT", "1m", open_ms, 1, 1, 1, 1, 1)) == open_ms + 60_000
    assert decision_time_ms(Candle("BTC-USDT", "1M", open_ms, 1, 1, 1, 1, 1)) == open_ms
