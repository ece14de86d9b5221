"""The account guard's state survives a restart: a tripped circuit breaker stays open across a new
desk restored from `account_risk_state`, refuses to close before its cooldown, and closes after it
only by command. Limits and policies are activated one at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.messages import PositionReport
from pipeline.risk.account import AccountPolicy
from pipeline.risk.desk import AccountDesk
from storage.database import Database
from storage.risk import AccountPolicyRow, LimitSetRow, RiskStore

POLICY = AccountPolicy("test", Decimal(10_000), Decimal(8_000), Decimal(100), 2, timedelta(minutes=30))
NOW = datetime(2025, 5, 5, 12, tzinfo=UTC)


def report(pair: str, quantity: str, mark: str, version: int = 1) -> PositionReport:
    return PositionReport(
        pair, Decimal(quantity), Decimal(mark), Decimal(0), 1, Decimal(mark), Decimal(0), Decimal(0), 0, version
    )


async def test_the_circuit_breaker_survives_a_restart_and_closes_only_by_command(database: Database) -> None:
    store = RiskStore(database.pool)
    desk = AccountDesk(POLICY, await store.account_state(), NOW)
    desk.on_report(report("BTC-USDT", "0.05", "100000"))
    assert not desk.trade_closed(Decimal(-3), NOW)
    assert desk.trade_closed(Decimal(-4), NOW)
    await store.save_account_state(desk.row())
    restored = AccountDesk(POLICY, await store.account_state(), NOW + timedelta(minutes=5))
    assert restored.guard.trading_state == "REDUCING"  # exits only
    verdict = restored.check("ETH-USDT", Decimal(100), False, NOW + timedelta(minutes=5))
    assert (verdict.allowed, verdict.reason) == (False, "circuit_breaker_open")
    assert restored.check("ETH-USDT", Decimal(0), True, NOW).allowed  # closing is still allowed
    assert "cools down" in (restored.resume(NOW + timedelta(minutes=10)) or "")
    assert restored.resume(NOW + timedelta(minutes=31)) is None
    await store.save_account_state(restored.row())
    row = await store.account_state()
    assert row is not None
    assert (row.breaker_open, row.daily_pnl, row.trading_state) == (False, Decimal(-7), "ACTIVE")


async def test_the_marked_value_and_its_peak_survive_a_restart(database: Database) -> None:
    store = RiskStore(database.pool)
    policy = AccountPolicy("dd", Decimal(50_000), Decimal(50_000), Decimal(10_000), 50, timedelta(0), Decimal(30))
    desk = AccountDesk(policy, None, NOW)
    desk.on_report(report("BTC-USDT", "1", "100", version=1))
    desk.on_report(report("BTC-USDT", "1", "100", version=2))
    marked = PositionReport(
        "BTC-USDT", Decimal(1), Decimal(100), Decimal(0), 1, Decimal(125), Decimal(0), Decimal(0), 0, 3
    )
    desk.on_report(marked)  # +25: the peak
    await store.save_account_state(desk.row())
    restored = AccountDesk(policy, await store.account_state(), NOW)
    assert (restored.guard.state.equity, restored.guard.state.equity_peak) == (Decimal(25), Decimal(25))
    restored.on_report(marked)
    fallen = PositionReport(
        "BTC-USDT", Decimal(1), Decimal(100), Decimal(0), 1, Decimal(94), Decimal(0), Decimal(0), 0, 4
    )
    assert restored.on_report(fallen), "31 below the peak saved before the restart"


async def test_exposure_counts_every_pair_and_the_daily_loss_limit_halts(database: Database) -> None:
    desk = AccountDesk(POLICY, None, NOW)
    desk.on_report(report("BTC-USDT", "0.05", "100000"))  # 5,000
    desk.on_report(report("BTC-USDT", "0.01", "100000", version=0))  # older: ignored
    verdict = desk.check("ETH-USDT", Decimal(6_000), False, NOW)
    assert (verdict.allowed, verdict.reason) == (False, "max_gross_exposure")
    assert desk.check("ETH-USDT", Decimal(2_000), False, NOW).allowed
    desk.trade_closed(Decimal(-150), NOW)
    assert desk.check("ETH-USDT", Decimal(10), False, NOW).reason == "daily_loss_limit"
    assert desk.check("ETH-USDT", Decimal(10), False, NOW + timedelta(days=1)).allowed  # a new trading day


async def test_one_limit_set_and_one_account_policy_are_active(database: Database) -> None:
    store = RiskStore(database.pool)
    first = await store.activate_limits(LimitSetRow("a", Decimal(1), Decimal(1), 1, Decimal(1), None, None, ()))
    second = await store.activate_limits(
        LimitSetRow("b", Decimal(2), Decimal(2), 2, Decimal(1), Decimal("0.05"), None, ("BTC-USDT",))
    )
    again = await store.activate_limits(LimitSetRow("a", Decimal(3), Decimal(3), 3, Decimal(1), None, None, ()))
    assert again == first != second
    active = await database.pool.fetch("SELECT name, max_order_notional FROM risk_limit_sets WHERE active")
    assert [(r["name"], r["max_order_notional"]) for r in active] == [("a", Decimal(3))]
    await store.activate_account_policy(AccountPolicyRow("x", Decimal(1), Decimal(1), Decimal(1), 1, 1))
    await store.activate_account_policy(AccountPolicyRow("y", Decimal(2), Decimal(2), Decimal(2), 2, 2))
    assert await database.pool.fetchval("SELECT name FROM account_risk_policies WHERE active") == "y"
