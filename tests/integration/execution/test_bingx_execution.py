"""The execution stage on the BingX venue (the simulator) and a real PostgreSQL (issue 17): each order's
intent committed before it is sent, sent once whatever the venue answers, its fill booked from the
venue's word only, and the database agreeing with the venue after a crash at either side of the send."""

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
from pipeline.execution.bingx_orders import Backoff, BingXOrders, Consequence
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from storage.runs import RunStore
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
    orders = BingXOrders(BingXTrading(rest), contract, resolve_backoff=Backoff(attempts=3), sleep=no_sleep)
    venue = BingXVenue(orders)
    return ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool), venue)


def venue_of(stage: ExecutionStage) -> BingXVenue:
    assert isinstance(stage.venue, BingXVenue)
    return stage.venue


async def venue_orders(rest: BingXRest, cid: str) -> int:
    return sum(1 for o in await BingXTrading(rest).all_orders(PAIR) if o.client_order_id == cid)


async def venue_position(rest: BingXRest) -> Decimal:
    return sum((p.quantity for p in await BingXTrading(rest).positions(PAIR)), Decimal(0))


async def booked_position(database: Database, context: PairContext) -> Decimal:
    holdings = await RunStore(database.pool).holdings(uuid.UUID(context.run_id))
    return sum((h.position for h in holdings), Decimal(0))


async def test_an_order_is_accepted_then_booked_from_the_venues_word(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    assert await stage.restore() == []
    recorded = await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert recorded is not None
    (order,) = stage.core.book.working.values()
    assert order.state == "accepted"  # the venue filled it, but only its word books a fill
    assert stage.core.book.position.quantity == 0
    filled = await stage.on_venue_update(await venue_of(stage).read(order.client_order_id))
    assert filled is not None
    assert filled.report.quantity == Decimal("0.5")
    assert await venue_position(rest) == await booked_position(database, context) == Decimal("0.5")
    row = await database.pool.fetchrow("SELECT state, avg_fill_price, fee, exchange_order_id FROM trade_executions")
    venue = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert (row["state"], row["exchange_order_id"]) == ("filled", str(venue.order_id))
    assert (row["avg_fill_price"], row["fee"]) == (venue.avg_price, -venue.commission)  # the venue's, not ours
    assert venue.avg_price == Decimal("100.1")  # its 2 bps of slippage: paper's model is not what is booked
    assert await stage.on_venue_update(await venue_of(stage).read(order.client_order_id)) is None  # told twice


async def test_a_lost_answer_is_resolved_and_booked_once(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.restore()
    sim.trading.faults.next_order_outcomes.append("504")
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert stage.core.book.working == {}
    assert await venue_position(rest) == await booked_position(database, context) == Decimal("0.5")
    events = await database.pool.fetch("SELECT from_state, to_state FROM trade_state_events ORDER BY id")
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "intent"),
        ("intent", "submitted"),
        ("submitted", "unknown"),
        ("unknown", "accepted"),
        ("accepted", "filled"),
    ]


async def test_a_crash_before_the_send_sends_at_restart_and_a_crash_after_it_sends_nothing_more(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    # before: the intent is committed, the process dies before the send
    stage = await stage_on(database, context, rest)
    await stage.restore()
    step = stage.core.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert step is not None
    assert await stage._write(step)
    (intent,) = step.submit
    assert await venue_orders(rest, intent.client_order_id) == 0
    restarted = await stage_on(database, context, rest)
    assert await restarted.restore() == [intent.client_order_id]
    assert await venue_orders(rest, intent.client_order_id) == 1
    assert await restarted.on_venue_update(await venue_of(restarted).read(intent.client_order_id)) is not None
    # after: sent, and the process died before the answer was written; the restart finds it by its id
    step = restarted.core.on_plan(plan(context, 1, 100.0, 0.0, [("SELL", "0.5", True)]))
    assert step is not None
    assert await restarted._write(step)
    (close,) = step.submit
    await BingXTrading(rest).place_order(
        PAIR, "SELL", "MARKET", Decimal("0.5"), client_order_id=close.client_order_id, reduce_only=True
    )  # what the dead process sent
    again = await stage_on(database, context, rest)
    assert await again.restore() == [close.client_order_id]
    assert await venue_orders(rest, close.client_order_id) == 1  # 101481, looked up: not sent twice
    states = await database.pool.fetch("SELECT client_order_id, state FROM trade_executions ORDER BY created_at")
    assert [(r["client_order_id"], r["state"]) for r in states] == [
        (intent.client_order_id, "filled"),
        (close.client_order_id, "filled"),
    ]
    assert await venue_position(rest) == await booked_position(database, context) == 0


@pytest.mark.parametrize(("code", "consequence"), [(101204, Consequence.NONE), (101415, Consequence.HALT_PAIR)])
async def test_a_refused_order_leaves_the_book_and_says_what_it_means(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator, code: int,
    consequence: Consequence,
) -> None:  # fmt: skip
    stage = await stage_on(database, context, rest)
    await stage.restore()
    sim.trading.faults.reject_next_orders.append(code)
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert stage.core.book.working == {}
    assert stage.core.book.trade is None
    trade = await database.pool.fetchrow("SELECT status FROM trades")
    assert trade["status"] == "cancelled"
    said = venue_of(stage).take_consequences()
    assert [c.consequence for c in said] == ([] if consequence is Consequence.NONE else [consequence])
    assert await venue_position(rest) == 0


async def test_a_cancel_of_an_order_that_filled_first_books_the_fill(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.restore()
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    (order,) = stage.core.book.working.values()  # filled on the venue; its news is not booked yet
    trade_id = order.trade_id
    assert await stage.cancel_trade(trade_id) == []  # 80018: filled first, so nothing was cancelled
    assert stage.core.book.working == {}
    assert await venue_position(rest) == await booked_position(database, context) == Decimal("0.5")
    events = await database.pool.fetch("SELECT from_state, to_state FROM trade_state_events ORDER BY id")
    assert [(e["from_state"], e["to_state"]) for e in events][-2:] == [
        ("accepted", "cancel_requested"),
        ("cancel_requested", "filled"),
    ]
    trade = await database.pool.fetchrow("SELECT status FROM trades WHERE id = $1", trade_id)
    assert trade["status"] == "open"


async def resting_order(database: Database, context: PairContext, rest: BingXRest) -> ExecutionStage:
    """A stage whose one working order rests on the venue: its intent was committed, then (before the
    process died) sent as a limit below the market; the restart finds it by its id (101481)."""
    stage = await stage_on(database, context, rest)
    await stage.restore()
    step = stage.core.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert step is not None
    assert await stage._write(step)
    (intent,) = step.submit
    await BingXTrading(rest).place_order(
        PAIR, "BUY", "LIMIT", Decimal("0.5"), client_order_id=intent.client_order_id, price=Decimal("90")
    )
    restarted = await stage_on(database, context, rest)
    assert await restarted.restore() == [intent.client_order_id]
    assert [o.state for o in restarted.core.book.working.values()] == ["accepted"]
    return restarted


async def test_a_resting_order_is_cancelled_on_the_venues_word(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await resting_order(database, context, rest)
    (order,) = stage.core.book.working.values()
    assert await stage.cancel_trade(order.trade_id) == [order.client_order_id]
    assert stage.core.book.working == {}
    assert stage.core.book.trade is None
    venue = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert venue.status == "CANCELLED"
    assert await BingXTrading(rest).open_orders(PAIR) == []
    row = await database.pool.fetchrow("SELECT state FROM trade_executions")
    assert row["state"] == "cancelled"
    trade = await database.pool.fetchrow("SELECT status, close_reason FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("cancelled", "operator_cancel")
    assert await stage.cancel_trade(order.trade_id) == []  # nothing left to cancel


async def test_a_cancel_the_venue_cannot_answer_stays_requested_until_a_read_ends_it(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await resting_order(database, context, rest)
    (order,) = stage.core.book.working.values()
    sim.faults.burst(503, 20)  # the cancel and the read after it both fail (each retried, then given up)
    assert await stage.cancel_trade(order.trade_id) == []
    assert [o.state for o in stage.core.book.working.values()] == ["cancel_requested"]
    sim.faults.http_errors.clear()
    assert await venue_of(stage).read(order.client_order_id) is not None
    assert (await BingXTrading(rest).open_orders(PAIR))[0].client_order_id == order.client_order_id
    # A read that still shows the order working changes nothing; the cancel, once it goes through, ends it.
    assert await stage.on_venue_update(await venue_of(stage).read(order.client_order_id)) is None
    assert await stage.cancel_trade(order.trade_id) == [order.client_order_id]
    assert stage.core.book.working == {}


async def test_the_flatten_cancels_a_resting_opening_order_on_the_venue(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await resting_order(database, context, rest)
    flatness = await stage.flatten()
    assert flatness["position"] == "0"
    assert stage.core.book.working == {}
    assert await BingXTrading(rest).open_orders(PAIR) == []
    trade = await database.pool.fetchrow("SELECT status, close_reason FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("cancelled", "run_stopping")
