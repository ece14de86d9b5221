"""Protective orders on a live venue (issue 17), on the simulator and a real PostgreSQL: every position gets
its reduce-only stop (and take-profit) at the limit set's distances, a moved stop is placed before the
old one is cancelled, a stop the venue triggers closes the trade from the venue's word, a closed
position's orders are cancelled, and a stop sent before a crash (or whose answer was lost) is found on
the venue, never sent twice."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

from exchange.bingx.rest import BingXRest
from exchange.bingx.trading import BingXTrading, VenueOrder
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import Backoff, BingXOrders
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.reconciliation import Reconciler
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from tests.execution_plans import PAIR, RULES, no_sleep, plan
from trading.context import PairContext
from trading.protection import ProtectionRule

MINUTE = 60_000
T0 = 1_700_000_040_000
RULE = ProtectionRule(Decimal("0.02"), Decimal("0.05"))


async def stage_on(database: Database, context: PairContext, rest: BingXRest) -> ExecutionStage:
    (contract,) = await rest.contracts(PAIR)
    orders = BingXOrders(BingXTrading(rest), contract, resolve_backoff=Backoff(attempts=2), sleep=no_sleep)
    stage = ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool),
                           BingXVenue(orders), RULE)  # fmt: skip
    await stage.restore()
    return stage


def venue_of(stage: ExecutionStage) -> BingXVenue:
    assert isinstance(stage.venue, BingXVenue)
    return stage.venue


async def conditionals(rest: BingXRest) -> list[VenueOrder]:
    return [o for o in await BingXTrading(rest).open_orders(PAIR) if o.type in ("STOP_MARKET", "TAKE_PROFIT_MARKET")]


async def opened(stage: ExecutionStage, quantity: str = "0.5", minute: int = 0) -> None:
    """A long of `quantity` opened and its fill booked from the venue's word."""
    await stage.on_plan(plan(stage.core.context, minute, 100.0, 1.0, [("BUY", quantity, False)]))
    for cid in list(stage.core.book.working):
        await stage.on_venue_update(await venue_of(stage).read(cid))


async def test_a_position_gets_its_stop_and_take_profit_on_the_venue(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await opened(stage)
    entry = stage.core.book.position.entry_price
    assert entry == Decimal("100.1")  # the simulator's 2 bps of slippage, on the tick
    venue = sorted(await conditionals(rest), key=lambda o: o.type)
    assert [(o.type, o.side, o.quantity, o.stop_price, o.reduce_only) for o in venue] == [
        ("STOP_MARKET", "SELL", Decimal("0.5"), Decimal("98.0"), True),  # 100.1 * 0.98 = 98.098, down the tick
        ("TAKE_PROFIT_MARKET", "SELL", Decimal("0.5"), Decimal("105.2"), True),  # 105.105, up the tick
    ]
    held = sorted(stage.core.book.protection.values(), key=lambda p: p.kind)
    assert [(p.kind, p.state, p.exchange_order_id) for p in held] == [
        ("stop_loss", "accepted", str(venue[0].order_id)),
        ("take_profit", "accepted", str(venue[1].order_id)),
    ]
    rows = await database.pool.fetch(
        "SELECT order_type, stop_price, reduce_only, state, exchange_order_id FROM trade_executions "
        "WHERE order_type <> 'MARKET' ORDER BY order_type"
    )
    assert [(r["order_type"], r["stop_price"], r["reduce_only"], r["state"]) for r in rows] == [
        ("STOP_MARKET", Decimal("98.0"), True, "accepted"),
        ("TAKE_PROFIT_MARKET", Decimal("105.2"), True, "accepted"),
    ]
    await stage.protect()
    assert len(await conditionals(rest)) == 2, "asked again, nothing more is sent"


async def test_a_moved_stop_is_placed_before_the_old_one_is_cancelled_and_a_close_cancels_them(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await opened(stage)
    (old_stop,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    await opened(stage, "0.3", minute=1)  # the position grows: 0.8 at a new average
    venue = [o for o in await conditionals(rest) if o.type == "STOP_MARKET"]
    assert [o.quantity for o in venue] == [Decimal("0.8")]
    events = await database.pool.fetch(
        "SELECT e.id, x.client_order_id, e.to_state FROM trade_state_events e "
        "JOIN trade_executions x ON x.id = e.execution_id WHERE x.order_type = 'STOP_MARKET' ORDER BY e.id"
    )
    (new_stop,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    accepted = next(e["id"] for e in events if e["client_order_id"] == new_stop.client_order_id
                    and e["to_state"] == "accepted")  # fmt: skip
    asked = next(e["id"] for e in events if e["client_order_id"] == old_stop.client_order_id
                 and e["to_state"] == "cancel_requested")  # fmt: skip
    assert accepted < asked, "the new stop was on the venue before the old one was asked to go"
    old = await BingXTrading(rest).query_order(PAIR, order_id=int(old_stop.exchange_order_id or 0))
    assert old.status == "CANCELLED"

    await stage.on_plan(plan(context, 2, 100.0, 0.0, [("SELL", "0.8", True)]))
    for cid in list(stage.core.book.working):
        await stage.on_venue_update(await venue_of(stage).read(cid))
    assert stage.core.book.position.quantity == 0
    assert await conditionals(rest) == [], "a closed position leaves no protective order behind"
    assert stage.core.book.protection == {}


async def test_an_obsolete_stop_whose_cancel_is_refused_is_asked_again_until_it_goes(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    """Found by CI (the live e2e test: two stops open for one position): the venue refused the old stop's
    cancel and a read said it was still open; it was booked back as accepted and nothing asked again until
    the venue's next news. It now stays `cancel_requested`, the protection counts as unsettled (the
    execution actor's check runs `protect` again), and the next `protect` cancels it."""
    stage = await stage_on(database, context, rest)
    await opened(stage)
    (old_stop,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    assert stage.core.protection_settled(RULE)
    sim.trading.faults.refuse_next_cancels.append(109201)  # the old stop's cancel: the same order within 1 s
    await opened(stage, "0.3", minute=1)
    stops = [o for o in await conditionals(rest) if o.type == "STOP_MARKET"]
    assert sorted(o.quantity for o in stops) == [Decimal("0.5"), Decimal("0.8")], "the old one is still open"
    assert stage.core.book.protection[old_stop.client_order_id].state == "cancel_requested"
    assert not stage.core.protection_settled(RULE)
    await stage.protect()
    stops = [o for o in await conditionals(rest) if o.type == "STOP_MARKET"]
    assert [o.quantity for o in stops] == [Decimal("0.8")], "one stop, for the whole position"
    assert old_stop.client_order_id not in stage.core.book.protection
    assert stage.core.protection_settled(RULE)
    state = await database.pool.fetchval(
        "SELECT state FROM trade_executions WHERE client_order_id = $1", old_stop.client_order_id
    )
    assert state == "cancelled"


async def test_a_stop_the_venue_triggers_closes_the_trade_from_its_word(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest)
    await opened(stage)
    (stop,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    await sim.market.step(60)  # minute 1 falls to 95: through the stop at 98
    triggered = await venue_of(stage).read(stop.client_order_id)
    assert (triggered.state, triggered.filled) == ("filled", Decimal("0.5"))
    recorded = await stage.on_venue_update(triggered)
    assert recorded is not None
    (closed,) = recorded.closed_trades
    assert closed.close_reason == "stop_loss"
    assert stage.core.book.position.quantity == 0
    assert sum((p.quantity for p in await BingXTrading(rest).positions(PAIR)), Decimal(0)) == 0
    assert await conditionals(rest) == [], "the take-profit went with the position"
    trade = await database.pool.fetchrow("SELECT status, close_reason, exit_price FROM trades")
    assert (trade["status"], trade["close_reason"]) == ("closed", "stop_loss")
    assert trade["exit_price"] == triggered.average_price


async def test_a_stop_sent_before_a_crash_is_found_at_restart_not_sent_again(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    (entry,) = stage.core.book.working
    # The fill's news is booked; the process dies while the stops are being placed: their intents are
    # written and they reached the venue, their answers were never recorded.
    step = stage.core.on_venue_update(await venue_of(stage).read(entry))
    assert step is not None
    assert await stage._write(step)
    planned = stage.core.protect(RULE)
    assert planned.step is not None
    assert await stage._write(planned.step)
    for order in planned.send:
        kind = "STOP_MARKET" if order.kind == "stop_loss" else "TAKE_PROFIT_MARKET"
        await BingXTrading(rest).place_conditional(PAIR, order.side, kind, order.quantity, order.trigger)
    assert len(await conditionals(rest)) == 2
    restarted = await stage_on(database, context, rest)
    result = await Reconciler(restarted, venue_of(restarted)).run()  # what the actor runs at start
    assert result.ok, result.unresolved()
    assert len(await conditionals(rest)) == 2, "found on the venue, not sent twice"
    assert {p.state for p in restarted.core.book.protection.values()} == {"accepted"}
    how = await database.pool.fetch(
        "SELECT e.reason FROM trade_state_events e JOIN trade_executions x ON x.id = e.execution_id "
        "WHERE x.order_type <> 'MARKET' AND e.to_state = 'accepted'"
    )
    assert {r["reason"] for r in how} == {"bingx_found_open"}


async def test_a_stop_whose_answer_was_lost_is_found_not_sent_again(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest)
    await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    sim.trading.faults.next_order_outcomes.extend(["504", "reset"])  # both protective orders booked, answers lost
    for cid in list(stage.core.book.working):
        await stage.on_venue_update(await venue_of(stage).read(cid))
    assert len(await conditionals(rest)) == 2
    held = stage.core.book.protection.values()
    assert {p.state for p in held} == {"accepted"}
    assert {p.exchange_order_id for p in held} == {str(o.order_id) for o in await conditionals(rest)}
    how = await database.pool.fetch(
        "SELECT e.reason FROM trade_state_events e JOIN trade_executions x ON x.id = e.execution_id "
        "WHERE x.order_type <> 'MARKET' AND e.to_state = 'accepted'"
    )
    assert {r["reason"] for r in how} == {"bingx_found_after_lost_answer"}


async def test_a_stop_cancelled_behind_our_back_is_placed_again_by_reconciliation(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    await opened(stage)
    (stop,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    await BingXTrading(rest).cancel_order(PAIR, order_id=int(stop.exchange_order_id or 0))  # someone, in the app
    result = await Reconciler(stage, venue_of(stage)).run()
    assert result.ok, result.unresolved()
    kinds = [f.kind for f in result.findings]
    assert kinds == ["order_booked"]
    venue = [o for o in await conditionals(rest) if o.type == "STOP_MARKET"]
    assert [(o.quantity, o.stop_price) for o in venue] == [(Decimal("0.5"), Decimal("98.0"))]
    (again,) = [p for p in stage.core.book.protection.values() if p.kind == "stop_loss"]
    assert again.client_order_id != stop.client_order_id
    assert again.exchange_order_id == str(venue[0].order_id)


async def test_a_crash_during_a_stop_replacement_leaves_one_stop_for_the_whole_position_after_restart(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    """The new stop placed, the old one's cancel caught by the crash (the simulator's window holds it
    unexecuted): after a restart, the old one is cancelled and the new one kept, for the whole position."""
    stage = await stage_on(database, context, rest)
    await opened(stage)
    sim.trading.faults.window.arm("stop_replacement")
    task = asyncio.get_running_loop().create_task(opened(stage, "0.3", minute=1))
    deadline = asyncio.get_running_loop().time() + 60
    while not sim.trading.faults.window.frozen:  # the old stop's cancel is held: the crash comes here
        assert not task.done(), "the stop was moved without its old one's cancel reaching the venue"
        assert asyncio.get_running_loop().time() < deadline, "the window never caught the old stop's cancel"
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    sim.trading.faults.window.release()
    assert sorted(o.quantity for o in await conditionals(rest) if o.type == "STOP_MARKET") == [
        Decimal("0.5"), Decimal("0.8")
    ]  # fmt: skip

    restarted = await stage_on(database, context, rest)
    result = await Reconciler(restarted, venue_of(restarted), "halt").run()
    assert result.ok, result.unresolved()
    stops = [o for o in await conditionals(rest) if o.type == "STOP_MARKET"]
    assert [o.quantity for o in stops] == [Decimal("0.8")], "one stop, for the whole position"
    assert restarted.core.book.position.quantity == Decimal("0.8")
    assert restarted.core.protection_settled(RULE)
