"""Each risk limit, the allowed instruments, the trading states, the exits, the account caps, the daily
loss limit and the circuit breaker block with their reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.risk import account as acct
from pipeline.risk.account import AccountGuard, AccountPolicy, AccountState
from trading import limits as lim
from trading.limits import OrderCheck, PairRiskGuard, RiskLimits

D = Decimal
LIMITS = RiskLimits(
    name="test",
    max_position_notional=D(5_000),
    max_order_notional=D(3_000),
    max_orders_per_interval=2,
    max_leverage=D(2),
    stop_loss_pct=D("0.02"),
    take_profit_pct=D("0.05"),
    allowed_instruments=frozenset({"BTC-USDT", "ETH-USDT"}),
)


def order(
    quantity: str, before: str = "0", after: str | None = None, pair: str = "BTC-USDT", equity: str = "10000"
) -> OrderCheck:
    q = D(quantity)
    return OrderCheck(pair, abs(q), D(100), D(before), D(after) if after is not None else D(before) + q, D(equity), 0)


def active_guard() -> PairRiskGuard:
    guard = PairRiskGuard("BTC-USDT", LIMITS)
    guard.state = "ACTIVE"
    return guard


@pytest.mark.parametrize(
    ("check", "reason"),
    [
        (order("31"), lim.MAX_ORDER_NOTIONAL),  # 3,100 > 3,000
        (order("20", before="40"), lim.MAX_POSITION_NOTIONAL),  # 6,000 > 5,000
        (order("25", before="20", equity="2000"), lim.MAX_LEVERAGE),  # 4,500 / 2,000 > 2
        (order("1", pair="DOGE-USDT"), lim.INSTRUMENT_NOT_ALLOWED),
        (order("29"), None),
    ],
)
def test_each_limit_blocks_with_its_reason(check: OrderCheck, reason: str | None) -> None:
    verdict = active_guard().check(check)
    assert (verdict.allowed, verdict.reason) == (reason is None, reason)


def test_exits_pass_the_size_limits_but_not_the_halt() -> None:
    guard = active_guard()
    big_exit = order("-60", before="60", after="0")
    assert big_exit.reduces_only
    assert guard.check(big_exit).allowed
    assert not order("-120", before="60").reduces_only  # a flip opens a short: not a reduction
    guard.state = "REDUCING"
    assert guard.check(big_exit).allowed
    assert guard.check(order("1")).reason == lim.STATE_REDUCING
    guard.state = "HALTED"
    assert guard.check(big_exit).reason == lim.STATE_HALTED
    assert PairRiskGuard("BTC-USDT", LIMITS).check(order("1")).reason == lim.STATE_HALTED, "pairs start HALTED"


def test_orders_per_interval_are_counted_per_interval() -> None:
    guard = active_guard()
    guard.record_sent(0)
    guard.record_sent(0)
    assert guard.check(order("1")).reason == lim.MAX_ORDERS_PER_INTERVAL
    later = OrderCheck("BTC-USDT", D(1), D(100), D(0), D(1), D(10_000), 60_000)
    assert guard.check(later).allowed


def test_stop_loss_and_take_profit() -> None:
    guard = active_guard()
    assert guard.exit_reason(D(1), D(100), D(98)) == lim.STOP_LOSS
    assert guard.exit_reason(D(1), D(100), D("98.1")) is None
    assert guard.exit_reason(D(-1), D(100), D(102)) == lim.STOP_LOSS
    assert guard.exit_reason(D(-1), D(100), D(95)) == lim.TAKE_PROFIT
    assert guard.exit_reason(D(0), D(0), D(95)) is None


POLICY = AccountPolicy("acct", D(8_000), D(6_000), D(500), breaker_max_losses=3, breaker_cooldown=timedelta(minutes=30))
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_exposure_caps_count_working_orders() -> None:
    guard = AccountGuard(POLICY, AccountState(NOW.date()))
    exposures = {"BTC-USDT": D(4_000), "ETH-USDT": D(-3_000)}  # positions plus working orders
    assert guard.check(exposures, "BTC-USDT", D(5_500), False, NOW).reason == acct.GROSS_EXPOSURE  # 8,500
    assert guard.check(exposures, "ETH-USDT", D(-1_000), False, NOW).allowed
    assert guard.check({"BTC-USDT": D(0)}, "BTC-USDT", D(6_500), False, NOW).reason == acct.NET_EXPOSURE


def test_daily_loss_limit_halts_until_the_next_utc_day() -> None:
    guard = AccountGuard(POLICY, AccountState(NOW.date()))
    guard.record_trade(D(-300), NOW)
    guard.record_trade(D(100), NOW)
    guard.record_trade(D(-300), NOW)
    assert guard.trading_state == "HALTED"
    assert guard.check({}, "BTC-USDT", D(100), False, NOW).reason == acct.DAILY_LOSS
    assert guard.check({}, "BTC-USDT", D(0), True, NOW).allowed, "exits stay possible"
    tomorrow = NOW + timedelta(days=1)
    assert guard.check({}, "BTC-USDT", D(100), False, tomorrow).allowed
    assert guard.state.trading_day == date(2026, 11, 22)


def test_the_circuit_breaker_trips_and_resumes_only_by_command_after_its_cooldown() -> None:
    guard = AccountGuard(POLICY, AccountState(NOW.date()))
    assert not guard.record_trade(D(-1), NOW)
    assert not guard.record_trade(D(-1), NOW)
    assert guard.record_trade(D(-1), NOW)
    assert guard.check({}, "BTC-USDT", D(100), False, NOW + timedelta(hours=5)).reason == acct.BREAKER_OPEN
    refused = guard.resume(NOW + timedelta(minutes=10))
    assert refused is not None
    assert "cools down until 2026-11-21T12:30:00+00:00" in refused
    assert guard.resume(NOW + timedelta(minutes=31)) is None
    assert guard.check({}, "BTC-USDT", D(100), False, NOW + timedelta(minutes=31)).allowed
    # A restart restores the state it checkpointed: the breaker does not close itself.
    restored = AccountGuard(POLICY, AccountState(NOW.date(), D(-3), 3, True, NOW, "3 losing trades in a row"))
    assert restored.trading_state == "REDUCING", "exits only: the breaker keeps the stops and lets positions close"
