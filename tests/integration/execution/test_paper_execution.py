"""Paper execution on a real PostgreSQL: each decision recorded once with its orders, the intent
committed before the paper venue accepts it, fills at the next candle's open, trades and the
checkpoint kept, and a restart that resumes without deciding or sending anything twice."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from domain.messages import (
    OrderIntent,
    OrderPlan,
)
from pipeline.execution.core import NotClosableError
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore, FencedError
from storage.database import Database
from storage.journal import TradingJournal
from storage.runs import RunStore
from tests.execution_plans import PAIR, RULES, plan
from trading.context import PairContext


async def start_run(database: Database) -> PairContext:
    run = await RunStore(database.pool).start(
        pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    return PairContext(str(run.id), PAIR, "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))


@pytest.fixture
async def context(database: Database) -> PairContext:
    return await start_run(database)


def core(database: Database, context: PairContext) -> ExecutionStage:
    return ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool))


async def test_decisions_orders_fills_and_trades_are_recorded_once(database: Database, context: PairContext) -> None:
    execution = core(database, context)
    assert await execution.restore() == []
    first = await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    assert first is not None
    assert first.report.working == Decimal(1)
    assert first.report.quantity == 0
    assert await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)])) is None  # decided before
    second = await execution.on_plan(plan(context, 1, 110.0, None, []))
    assert second is not None
    assert second.report.quantity == Decimal(1)
    assert second.report.entry_price == Decimal("110.0")
    third = await execution.on_plan(plan(context, 2, 120.0, 0.0, [("SELL", "1", True)]))
    assert third is not None
    assert not third.closed_trades
    fourth = await execution.on_plan(plan(context, 3, 100.0, None, []))
    assert fourth is not None
    assert len(fourth.closed_trades) == 1
    pool = database.pool
    assert await pool.fetchval("SELECT count(*) FROM trade_decisions") == 4
    assert await pool.fetchval("SELECT count(*) FROM market_input_snapshots") == 4
    executions = await pool.fetch(
        "SELECT client_order_id, state, filled_quantity, avg_fill_price, fee FROM trade_executions ORDER BY created_at"
    )
    assert [(e["state"], e["filled_quantity"], e["avg_fill_price"]) for e in executions] == [
        ("filled", Decimal(1), Decimal("110.0")),
        ("filled", Decimal(1), Decimal("100.0")),
    ]
    events = await pool.fetch("SELECT from_state, to_state FROM trade_state_events ORDER BY id")
    assert [(e["from_state"], e["to_state"]) for e in events][:4] == [
        (None, "intent"),
        ("intent", "submitted"),
        ("submitted", "accepted"),
        ("accepted", "filled"),
    ]
    trade = await pool.fetchrow("SELECT * FROM trades")
    # (100 - 110) * 1 = -10, fees 0.055 + 0.05
    assert (trade["status"], trade["entry_price"], trade["exit_price"]) == (
        "closed",
        Decimal("110.0"),
        Decimal("100.0"),
    )
    assert trade["realized_pnl"] == Decimal("-10.105")
    assert trade["close_reason"] == "target"
    row = await pool.fetchrow(
        "SELECT action, order_count, policy, latency_ms FROM trade_decisions ORDER BY candle_open_time LIMIT 1"
    )
    assert (row["action"], row["order_count"], row["policy"]) == ("long", 1, "momentum")
    # The decision log line's action has one type, the row's words; the signed target is beside it.
    recorded = (first, second, third, fourth)
    assert [r.log["action"] for r in recorded] == ["long", "hold", "flat", "hold"]
    assert [r.log["target"] for r in recorded] == [1.0, None, 0.0, None]
    rows = await pool.fetch("SELECT action FROM trade_decisions ORDER BY candle_open_time")
    assert [r["action"] for r in rows] == [r.log["action"] for r in recorded]
    assert await pool.fetchval("SELECT count(*) FROM observability_metrics WHERE metric = 'slippage_bps'") == 2


async def test_a_restart_resumes_the_book_and_submits_an_intent_left_unsent(
    database: Database, context: PairContext
) -> None:
    execution = core(database, context)
    await execution.restore()
    submitted: list[str] = []

    async def crash_before_submit(orders: list[object]) -> list[str]:
        submitted.extend(str(o) for o in orders)
        raise ConnectionError("killed between the intent and the submit")

    execution._submit = crash_before_submit  # type: ignore[method-assign,assignment]
    with pytest.raises(ConnectionError):
        await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    pool = database.pool
    assert await pool.fetchval("SELECT state FROM trade_executions") == "intent"
    restarted = core(database, context)
    (sent,) = await restarted.restore()
    assert await pool.fetchval("SELECT state FROM trade_executions") == "accepted"
    assert await restarted.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)])) is None
    recorded = await restarted.on_plan(plan(context, 1, 101.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == Decimal("0.5")
    assert await pool.fetchval("SELECT count(*) FROM trade_executions WHERE client_order_id = $1", sent) == 1
    assert await pool.fetchval("SELECT state FROM trade_executions") == "filled"


async def test_a_failed_commit_leaves_the_book_as_it_was(database: Database, context: PairContext) -> None:
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    before = execution.core.book.to_json()
    bad = plan(context, 1, 100.0, 1.0, [("BUY", "1", False)])
    # The same client order id as the first order: the unique constraint refuses the whole commit.
    first_id = await database.pool.fetchval("SELECT client_order_id FROM trade_executions")
    bad = OrderPlan(
        bad.decision,
        bad.target_quantity,
        (OrderIntent(first_id, "BUY", Decimal(1), False, "target", 1),),
        bad.risk,
        "ACTIVE",
    )
    with pytest.raises(Exception, match=r"unique|duplicate"):
        await execution.on_plan(bad)
    assert execution.core.book.to_json() == before
    assert await database.pool.fetchval("SELECT count(*) FROM trade_decisions") == 1


async def test_cancelling_a_trade_before_it_fills(database: Database, context: PairContext) -> None:
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    trade_id = await database.pool.fetchval("SELECT id FROM trades")
    assert len(await execution.cancel_trade(uuid.UUID(str(trade_id)))) == 1
    assert await database.pool.fetchval("SELECT status FROM trades") == "cancelled"
    assert await database.pool.fetchval("SELECT state FROM trade_executions") == "cancelled"
    recorded = await execution.on_plan(plan(context, 1, 100.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == 0


async def test_an_operator_closes_the_open_trade_once(database: Database, context: PairContext) -> None:
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    await execution.on_plan(plan(context, 1, 100.0, None, []))
    trade_id = uuid.UUID(str(await database.pool.fetchval("SELECT id FROM trades")))
    first = await execution.close_trade(trade_id)
    assert await execution.close_trade(trade_id) == first  # asked twice, one order
    with pytest.raises(KeyError):
        await execution.close_trade(uuid.uuid4())
    recorded = await execution.on_plan(plan(context, 2, 105.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == 0
    trade = await database.pool.fetchrow("SELECT status, close_reason, realized_pnl FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("closed", "operator")
    assert await database.pool.fetchval("SELECT count(*) FROM trade_executions WHERE reduce_only") == 1


async def test_an_operator_close_cancelled_can_be_sent_again_and_closes_the_trade(
    database: Database, context: PairContext
) -> None:
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    trade_id = uuid.UUID(str(await database.pool.fetchval("SELECT id FROM trades")))
    with pytest.raises(NotClosableError, match="opening order is working"):
        await execution.close_trade(trade_id)  # nothing filled yet: cancel-trade is the way out
    await execution.on_plan(plan(context, 1, 100.0, None, []))
    first = await execution.close_trade(trade_id)
    assert await database.pool.fetchval("SELECT status FROM trades") == "closing"
    assert await execution.cancel_trade(trade_id) == [first]
    assert await database.pool.fetchval("SELECT status FROM trades") == "open"
    assert execution.core.book.working == {}
    second = await execution.close_trade(trade_id)  # a new order: the cancelled one's id is spent
    assert second != first
    assert await execution.close_trade(trade_id) == second  # asked again, still one working order
    recorded = await execution.on_plan(plan(context, 2, 105.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == 0
    trade = await database.pool.fetchrow("SELECT status, close_reason FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("closed", "operator")
    states = await database.pool.fetch(
        "SELECT client_order_id, state FROM trade_executions WHERE reduce_only ORDER BY created_at"
    )
    assert [tuple(row) for row in states] == [(first, "cancelled"), (second, "filled")]


async def test_an_old_instance_is_fenced_off_once_a_new_one_claimed_the_pair(
    database: Database, context: PairContext
) -> None:
    old = core(database, context)
    await old.restore()
    await old.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    new = core(database, context)
    await new.restore()
    with pytest.raises(FencedError):
        await old.on_plan(plan(context, 1, 100.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)]))
    assert old.core.book.position.quantity == 0  # rewound: the refused commit left nothing behind
    assert await database.pool.fetchval("SELECT count(*) FROM trade_decisions") == 1
    assert await database.pool.fetchval("SELECT count(*) FROM trade_executions") == 1
    recorded = await new.on_plan(plan(context, 1, 100.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == Decimal(1)


async def test_a_candle_the_journal_has_decided_is_refused_and_leaves_the_book_as_it_was(
    database: Database, context: PairContext
) -> None:
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    await execution.on_plan(plan(context, 1, 100.0, None, []))
    before = (execution.core.book.to_json(), execution.core.mark)
    # The core forgets what it decided (as a book restored without its sequence would): the journal still refuses.
    execution.core.last_sequence = -1
    assert await execution.on_plan(plan(context, 1, 120.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)])) is None
    assert (execution.core.book.to_json(), execution.core.mark) == before
    assert await database.pool.fetchval("SELECT count(*) FROM trade_decisions") == 2
    assert await database.pool.fetchval("SELECT count(*) FROM trade_executions") == 1
    # ... and the next candle is recorded from the book as it was
    recorded = await execution.on_plan(plan(context, 2, 100.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == Decimal(1)


async def test_an_operator_close_cancels_the_rest_of_a_resting_entry_first(
    database: Database, context: PairContext
) -> None:
    """A post-only BUY of 2 at 99 fills 0.75 in candle 1 (a quarter of its volume); closing the trade
    then cancels the 1.25 still resting before the exit is placed: filled after it, it would reopen what
    the operator closed (and the book, whose trade had ended, could not place the fill)."""
    from dataclasses import replace

    from domain.limit_orders import LimitRules
    from trading.paper import EXIT_CANCELS_ENTRY

    limited = replace(context, limit_rules=LimitRules("touch", 5, Decimal("0.25")))
    execution = core(database, limited)
    await execution.restore()
    entering = plan(limited, 0, 100.0, 1.0, [("BUY", "2", False)])
    (intent,) = entering.orders
    await execution.on_plan(replace(entering, orders=(replace(intent, limit_price=Decimal(99)),)))
    filled = await execution.on_plan(plan(limited, 1, 100.0, None, []))  # its low, 95, reaches 99
    assert filled is not None
    assert (filled.report.quantity, filled.report.resting) == (Decimal("0.75"), Decimal("1.25"))
    trade_id = uuid.UUID(str(await database.pool.fetchval("SELECT id FROM trades")))
    closing = await execution.close_trade(trade_id)
    assert execution.core.book.resting_entries() == []
    assert list(execution.core.book.working) == [closing]
    closed = await execution.on_plan(plan(limited, 2, 101.0, None, []))
    assert closed is not None
    assert (closed.report.quantity, closed.report.resting) == (0, 0)
    trade = await database.pool.fetchrow("SELECT status, close_reason FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("closed", "operator")
    ended = await database.pool.fetchval(
        "SELECT reason FROM trade_state_events WHERE to_state = 'cancelled' ORDER BY id DESC LIMIT 1"
    )
    assert ended == EXIT_CANCELS_ENTRY
