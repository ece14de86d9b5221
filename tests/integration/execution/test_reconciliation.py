"""Reconciliation of a live pair's book with the venue (issue 17), on the simulator and a real PostgreSQL:
what the book missed is booked from the venue's word, an order that never reached the venue is proved
absent, what nothing here placed is named and fails the reconciliation (or, for a position, is adopted
when the setting says so), and a second reconciliation changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from exchange.bingx.rest import BingXRest
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import Backoff, BingXOrders
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.reconciliation import ExternalPositions, Reconciler
from pipeline.execution.stage import ExecutionStage
from pipeline.execution.venue import VenueStep
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from tests.execution_plans import PAIR, RULES, no_sleep, plan
from tests.integration.execution.conftest import KEY, SECRET
from trading.context import PairContext

T0 = 1_700_000_040_000


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator([ReplaySeries(PAIR, "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await simulator.start()
    yield simulator
    await simulator.stop()


async def stage_on(database: Database, context: PairContext, rest: BingXRest) -> ExecutionStage:
    (contract,) = await rest.contracts(PAIR)
    orders = BingXOrders(BingXTrading(rest), contract, resolve_backoff=Backoff(attempts=2), sleep=no_sleep)
    stage = ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool),
                           BingXVenue(orders))  # fmt: skip
    await stage.restore()
    return stage


def reconciler(stage: ExecutionStage, external: ExternalPositions = "halt") -> Reconciler:
    assert isinstance(stage.venue, BingXVenue)
    return Reconciler(stage, stage.venue, external)


async def venue_position(rest: BingXRest) -> Decimal:
    return sum((p.quantity for p in await BingXTrading(rest).positions(PAIR)), Decimal(0))


async def unanswered(stage: ExecutionStage, minute: int = 0) -> str:
    """An order whose intent is committed and whose submit's answer was lost (`unknown`), as a crash
    after an ambiguous answer leaves it; whether the venue booked it is up to the test."""
    step = stage.core.on_plan(plan(stage.core.context, minute, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert step is not None
    assert await stage._write(step)
    (order,) = step.submit
    cid = order.client_order_id
    lost = [VenueStep(cid, "submitted", "bingx_submitted"), VenueStep(cid, "unknown", "bingx_outcome_unknown")]
    assert await stage._write(stage.core.submitted(lost))
    return cid


async def test_a_fill_the_book_missed_is_booked_and_a_second_run_changes_nothing(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))  # filled; its news not heard
    first = await reconciler(stage).run()
    assert first.ok, first.unresolved()
    assert [f.kind for f in first.findings] == ["order_booked"]
    assert first.book_position == first.venue_position == Decimal("0.5")
    assert first.balance is not None
    assert first.hold == ("ACTIVE", "reconciled")
    rows = await database.pool.fetchval("SELECT count(*) FROM trade_state_events")
    second = await reconciler(stage).run()
    assert (second.ok, second.findings) == (True, ())
    assert await database.pool.fetchval("SELECT count(*) FROM trade_state_events") == rows


async def test_an_unanswered_order_the_venue_booked_is_found_and_one_it_never_saw_is_proved_absent(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    cid = await unanswered(stage)
    absent = await reconciler(stage).run()
    assert absent.ok, absent.unresolved()
    assert [f.kind for f in absent.findings] == ["order_absent"]
    row = await database.pool.fetchrow("SELECT state FROM trade_executions WHERE client_order_id = $1", cid)
    assert row["state"] == "rejected"
    assert stage.core.book.working == {}

    booked_stage = await stage_on(database, context, rest)
    booked = await unanswered_booked(booked_stage, rest)
    found = await reconciler(booked_stage).run()
    assert found.ok, found.unresolved()
    assert [f.kind for f in found.findings] == ["order_booked"]
    row = await database.pool.fetchrow("SELECT state FROM trade_executions WHERE client_order_id = $1", booked)
    assert row["state"] == "filled"
    assert booked_stage.core.book.position.quantity == await venue_position(rest) == Decimal("0.5")


async def unanswered_booked(stage: ExecutionStage, rest: BingXRest) -> str:
    cid = await unanswered(stage, minute=1)
    await BingXTrading(rest).place_order(PAIR, "BUY", "MARKET", Decimal("0.5"), client_order_id=cid)  # it got there
    return cid


async def test_an_order_nothing_here_placed_fails_the_reconciliation(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await BingXTrading(rest).place_order(
        PAIR, "BUY", "LIMIT", Decimal("0.5"), client_order_id="manual-order-1", price=Decimal("90")
    )
    result = await reconciler(stage).run()
    assert not result.ok
    assert [f.kind for f in result.findings] == ["foreign_order"]
    assert "manual-order-1" in result.unresolved()[0]
    assert result.hold == ("HALTED", "reconciliation_failed")
    await BingXTrading(rest).cancel_order(PAIR, client_order_id="manual-order-1")
    assert (await reconciler(stage).run()).ok, "once it is gone, the pair may trade"


async def test_an_external_position_halts_the_pair_by_default(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await BingXTrading(rest).place_order(PAIR, "SELL", "MARKET", Decimal("0.3"), client_order_id="manual-open-1")
    result = await reconciler(stage).run()
    assert not result.ok
    ((finding),) = result.findings
    assert finding.kind == "external_position"
    assert "trading.external_positions" in finding.detail
    assert stage.core.book.position.quantity == 0
    assert await database.pool.fetchval("SELECT count(*) FROM trades") == 0


async def test_an_external_position_is_adopted_when_the_setting_says_so(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await BingXTrading(rest).place_order(PAIR, "SELL", "MARKET", Decimal("0.3"), client_order_id="manual-open-2")
    result = await reconciler(stage, "adopt").run()
    assert result.ok, result.unresolved()
    assert [f.kind for f in result.findings] == ["position_adopted"]
    assert stage.core.book.position.quantity == Decimal("-0.3")
    trade = await database.pool.fetchrow("SELECT id, side, quantity, entry_price, origin, status FROM trades")
    (venue,) = await BingXTrading(rest).positions(PAIR)
    assert (trade["side"], trade["quantity"], trade["origin"], trade["status"]) == ("short", Decimal("0.3"),
                                                                                     "external", "open")  # fmt: skip
    assert trade["entry_price"] == venue.entry_price
    again = await reconciler(stage, "adopt").run()
    assert (again.ok, again.findings) == (True, ())
    restarted = await stage_on(database, context, rest)  # the adoption is in the checkpoint
    assert restarted.core.book.trade is not None
    assert restarted.core.book.trade.id == uuid.UUID(str(trade["id"]))
    assert restarted.core.book.trade.origin == "external"


async def test_a_position_that_differs_or_a_venue_that_cannot_be_read_fails_it(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert (await reconciler(stage).run()).ok
    await BingXTrading(rest).place_order(
        PAIR, "SELL", "MARKET", Decimal("0.2"), client_order_id="manual-reduce-1", reduce_only=True
    )
    mismatch = await reconciler(stage).run()
    assert [(f.kind, f.resolved) for f in mismatch.findings] == [("position_mismatch", False)]
    sim.faults.burst(503, 50)
    away = await reconciler(stage).run()
    assert not away.ok
    assert away.error is not None
    assert "the venue could not be read" in away.unresolved()[0]
