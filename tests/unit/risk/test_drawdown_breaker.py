"""The circuit breaker on a drawdown from the equity peak, unrealised PnL included (issue 17): the
account's marked value follows every pair's reports (realised PnL less fees plus the open position at
its mark), the breaker trips when it falls `breaker_max_drawdown` below its peak, holds the account to
REDUCING (exits only), survives a restart, and once closed by the operator counts from the value then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.messages import PositionReport
from pipeline.risk.account import AccountPolicy
from pipeline.risk.desk import AccountDesk, marked_value

D = Decimal
START = datetime(2025, 5, 5, 12, 0, tzinfo=UTC)
POLICY = AccountPolicy("dd", D(50_000), D(50_000), D(10_000), 50, timedelta(minutes=30), D(100))


def report(
    pair: str, version: int, quantity: str, entry: str, mark: str, realised: str = "0", fees: str = "0"
) -> PositionReport:
    return PositionReport(pair, D(quantity), D(entry), D(0), version, D(mark), D(realised), D(fees), 0, version)


def desk(policy: AccountPolicy = POLICY) -> AccountDesk:
    found = AccountDesk(policy, None, START)
    found.observe(START)
    return found


def test_an_unrealised_loss_trips_the_breaker_before_any_trade_closes() -> None:
    d = desk()
    assert not d.on_report(report("BTC-USDT", 1, "0", "0", "100"))  # the baseline
    assert not d.on_report(report("BTC-USDT", 2, "1", "100", "100", fees="0.05"))  # opened: -0.05
    assert not d.on_report(report("BTC-USDT", 3, "1", "100", "150", fees="0.05"))  # peak +49.95
    assert d.guard.state.equity_peak == D("49.95")
    assert not d.on_report(report("BTC-USDT", 4, "1", "100", "51", fees="0.05"))  # 99 below the peak
    assert d.guard.trading_state == "ACTIVE"
    assert d.on_report(report("BTC-USDT", 5, "1", "100", "49.9", fees="0.05"))  # 100.1 below: tripped
    assert d.guard.trading_state == "REDUCING"
    assert "drawdown of 100.10 USDT from the equity peak (unrealised PnL included) reached 100" in (
        d.guard.state.breaker_reason or ""
    )
    assert d.check("ETH-USDT", D(10), False, d.now).reason == "circuit_breaker_open"
    assert d.check("BTC-USDT", D(0), True, d.now).allowed, "exits still go"
    (began,) = d.changes()
    assert (began.began, began.block.cause, began.block.state) == (True, "circuit_breaker", "REDUCING")
    assert d.summary()["drawdown"] == "100.10"


def test_pairs_add_up_and_an_older_or_first_report_moves_nothing() -> None:
    d = desk()
    d.on_report(report("BTC-USDT", 1, "1", "100", "100"))
    d.on_report(report("ETH-USDT", 1, "-2", "50", "50"))
    d.on_report(report("BTC-USDT", 2, "1", "100", "160"))  # +60
    d.on_report(report("ETH-USDT", 2, "-2", "50", "70"))  # -40
    assert d.guard.state.equity == D(20)
    assert not d.on_report(report("BTC-USDT", 1, "1", "100", "0.01"))  # late: ignored
    assert d.guard.state.equity == D(20)
    # a restarted pair's actor reports from version 1 again: a new baseline, not a change
    assert not d.on_report(report("BTC-USDT", 1, "1", "100", "10"))
    assert d.guard.state.equity == D(20)
    # a position adopted before any candle has no mark: nothing counted until it has one
    assert marked_value(report("SOL-USDT", 2, "3", "20", "0")) is None
    d.on_report(report("SOL-USDT", 1, "0", "0", "0"))
    assert not d.on_report(report("SOL-USDT", 2, "3", "20", "0"))
    assert d.guard.state.equity == D(20)


def test_the_trip_survives_a_restart_and_the_operator_restarts_the_peak() -> None:
    d = desk()
    d.on_report(report("BTC-USDT", 1, "1", "100", "300"))
    d.on_report(report("BTC-USDT", 2, "1", "100", "400"))  # peak +100
    assert d.on_report(report("BTC-USDT", 3, "1", "100", "299"))
    restored = AccountDesk(POLICY, d.row(), START)
    assert restored.guard.trading_state == "REDUCING"
    assert (restored.guard.state.equity, restored.guard.state.equity_peak) == (D(-1), D(100))
    later = START + timedelta(minutes=31)
    restored.observe(later)
    assert restored.resume(later) is None
    assert restored.guard.trading_state == "ACTIVE"
    assert restored.guard.drawdown == 0, "the drawdown counts from the value at the resume"


def test_without_a_limit_a_drawdown_only_is_measured() -> None:
    unlimited = AccountPolicy("none", D(50_000), D(50_000), D(10_000), 50, timedelta(minutes=30), None)
    d = desk(unlimited)
    d.on_report(report("BTC-USDT", 1, "1", "100", "100"))
    assert not d.on_report(report("BTC-USDT", 2, "1", "100", "1"))
    assert (d.guard.trading_state, d.guard.drawdown) == ("ACTIVE", D(99))
