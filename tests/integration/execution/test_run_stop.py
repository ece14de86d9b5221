"""Stopping a run by the rule for its positions, on a real PostgreSQL: refused while it holds one; a
flat pair's working orders cancelled with it; `keep` hands the position over and the next run's
execution adopts it (its book starts from the kept position, not flat); `flatten` closes it."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore, FencedError
from storage.database import Database
from storage.journal import TradingJournal
from storage.runs import OpenPositionsError, RunNotActiveError, RunStore
from tests.execution_plans import PAIR, RULES, plan
from tests.integration.execution.test_paper_execution import start_run
from trading.context import PairContext


def core(database: Database, context: PairContext) -> ExecutionStage:
    return ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool))


async def long_one(database: Database) -> tuple[PairContext, ExecutionStage]:
    """A run holding 1 long at 100 (filled), with nothing working."""
    context = await start_run(database)
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))
    await execution.on_plan(plan(context, 1, 100.0, None, []))
    assert execution.core.book.position.quantity == Decimal(1)
    return context, execution


async def test_a_run_holding_a_position_is_not_stopped_without_a_rule(database: Database) -> None:
    context, _ = await long_one(database)
    runs = RunStore(database.pool)
    run_id = uuid.UUID(context.run_id)
    with pytest.raises(OpenPositionsError) as refused:
        await runs.stop(run_id, "operator")
    assert "BTC-USDT long 1" in str(refused.value)
    assert [h.pair for h in refused.value.holdings] == [PAIR]
    active = await runs.active()
    assert active is not None
    assert active.id == run_id  # nothing changed
    assert await database.pool.fetchval("SELECT count(*) FROM actor_checkpoints WHERE role = 'handover'") == 0


async def test_kept_positions_are_adopted_by_the_next_run_on_the_pair(database: Database) -> None:
    context, old = await long_one(database)
    pool = database.pool
    runs = RunStore(pool)
    # a working order goes with the position: a reduce-only half close, not filled yet
    await old.on_plan(plan(context, 2, 110.0, 0.5, [("SELL", "0.5", True)]))
    trade_id = await pool.fetchval("SELECT id FROM trades")
    stopped = await runs.stop(uuid.UUID(context.run_id), "operator", keep=True)
    assert stopped.kept == (PAIR,)
    assert stopped.positions()[PAIR]["outcome"] == "kept"
    assert stopped.run.status == "stopped"
    (handover,) = await runs.handovers()
    assert (handover.pair, handover.position, handover.trades) == (PAIR, "1", (str(trade_id),))
    # the stopped run's execution is fenced: an actor of it still alive writes nothing more
    with pytest.raises(FencedError):
        await old.on_plan(plan(context, 3, 100.0, None, []))

    new_context = await start_run(database)
    new = core(database, new_context)
    await new.restore()
    assert new.core.adopted is not None
    assert new.core.adopted.from_run == uuid.UUID(context.run_id)
    assert new.core.book.position.quantity == Decimal(1)
    assert new.core.book.position.entry_price == Decimal("100.0")
    assert (new.core.book.position.realised, new.core.book.position.fees) == (Decimal(0), Decimal(0))
    assert new.core.book.trade is not None
    assert new.core.book.trade.id == trade_id
    assert len(new.core.book.working) == 1
    assert await runs.handovers() == []
    new_run = uuid.UUID(new_context.run_id)
    assert await pool.fetchval("SELECT run_id FROM trades WHERE id = $1", trade_id) == new_run
    assert await pool.fetchval("SELECT count(*) FROM trade_executions WHERE run_id = $1", new_run) == 2
    assert [h.position for h in await runs.holdings(new_run)] == [Decimal(1)]
    assert await runs.holdings(uuid.UUID(context.run_id)) == []
    assert await pool.fetchval("SELECT count(*) FROM ops_audit_events WHERE command = 'position_adopted'") == 1
    # the new run trades the adopted position on: the half close fills, then it closes the rest
    recorded = await new.on_plan(plan(new_context, 3, 120.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == Decimal("0.5")
    await new.close_trade(trade_id)
    recorded = await new.on_plan(plan(new_context, 4, 130.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == 0
    trade = await pool.fetchrow("SELECT run_id, status, realized_pnl FROM trades WHERE id = $1", trade_id)
    assert (trade["run_id"], trade["status"]) == (new_run, "closed")
    assert trade["realized_pnl"] > 0
    # a restart of the new run restores its own checkpoint, adopting nothing again
    again = core(database, new_context)
    await again.restore()
    assert again.core.adopted is None
    assert again.core.book.position.quantity == 0


async def test_a_flat_pair_stops_with_its_working_orders_cancelled(database: Database) -> None:
    context = await start_run(database)
    execution = core(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "1", False)]))  # not filled yet
    runs = RunStore(database.pool)
    stopped = await runs.stop(uuid.UUID(context.run_id), "operator")
    assert len(stopped.cancelled_orders) == 1
    assert stopped.positions()[PAIR]["outcome"] == "orders_cancelled"
    pool = database.pool
    assert await pool.fetchval("SELECT state FROM trade_executions") == "cancelled"
    assert await pool.fetchval("SELECT reason FROM trade_state_events ORDER BY id DESC LIMIT 1") == "run_stopped"
    assert await pool.fetchval("SELECT status FROM trades") == "cancelled"
    assert await runs.active() is None
    with pytest.raises(RunNotActiveError):
        await runs.stop(uuid.UUID(context.run_id), "operator")


async def test_flatten_cancels_opening_orders_and_closes_the_position(database: Database) -> None:
    context, execution = await long_one(database)
    # a flip planned: a reduce-only close and an opening short, both working
    await execution.on_plan(plan(context, 2, 100.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)]))
    first = await execution.flatten()
    assert not first["flat"]
    assert len(first["working_orders"]) == 1  # the opening short cancelled; the close kept
    assert await execution.flatten() == first  # asked again: no second order
    recorded = await execution.on_plan(plan(context, 3, 101.0, None, []))
    assert recorded is not None
    assert recorded.report.quantity == 0
    assert execution.core.flatness()["flat"]
    runs = RunStore(database.pool)
    stopped = await runs.stop(uuid.UUID(context.run_id), "operator")
    assert stopped.holdings == ()
