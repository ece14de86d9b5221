"""Post-only limit entries on the live venue (the simulator) and a real PostgreSQL (issue 18): sent as
LIMIT with timeInForce PostOnly at the plan's price, booked from the venue's word only (a maker fill at
the limit), refused post-only when they would take, and cancelled on the venue, not in the book, when
their life ends or an exit is due, each ending recorded with the limit fill model's reason."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from domain.limit_orders import LimitRules
from domain.messages import OrderPlan
from exchange.bingx.rest import BingXRest
from exchange.bingx.trading import BingXTrading
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import Backoff, BingXOrders
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from tests.execution_plans import PAIR, RULES, no_sleep, plan
from trading.context import PairContext
from trading.paper import EXIT_CANCELS_ENTRY, LIMIT_EXPIRED, POST_ONLY_WOULD_TAKE


async def stage_on(database: Database, context: PairContext, rest: BingXRest, expiry: int = 1) -> ExecutionStage:
    (contract,) = await rest.contracts(PAIR)
    orders = BingXOrders(BingXTrading(rest), contract, resolve_backoff=Backoff(attempts=3), sleep=no_sleep)
    limited = replace(context, limit_rules=LimitRules("touch", expiry, Decimal("0.25")))
    stage = ExecutionStage(limited, RULES, TradingJournal(database.pool), CheckpointStore(database.pool),
                           BingXVenue(orders))  # fmt: skip
    await stage.restore()
    return stage


def limit_plan(context: PairContext, minute: int, side: str, quantity: str, price: str) -> OrderPlan:
    """The plan of candle `minute` entering with one post-only limit at `price`."""
    placed = plan(context, minute, 100.0, 1.0 if side == "BUY" else -1.0, [(side, quantity, False)])  # type: ignore[list-item]
    (intent,) = placed.orders
    return replace(placed, orders=(replace(intent, limit_price=Decimal(price)),))


async def trade_of(database: Database) -> tuple[str, str | None]:
    row = await database.pool.fetchrow("SELECT status, close_reason FROM trades")
    assert row is not None
    return row["status"], row["close_reason"]


async def test_an_entry_rests_post_only_then_its_maker_fill_is_booked_from_the_venue(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest)
    recorded = await stage.on_plan(limit_plan(context, 0, "BUY", "0.5", "99.9"))
    assert recorded is not None
    assert recorded.report.resting == Decimal("0.5")
    (order,) = stage.core.book.working.values()
    venue = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert (venue.type, venue.price, venue.status) == ("LIMIT", Decimal("99.9"), "NEW")
    assert order.state == "accepted"
    assert stage.core.book.position.quantity == 0
    await sim.market.step(60)  # minute 1 trades down to 95: the venue fills it at its price
    assert isinstance(stage.venue, BingXVenue)
    filled = await stage.on_venue_update(await stage.venue.read(order.client_order_id))
    assert filled is not None
    assert (filled.report.quantity, filled.report.resting) == (Decimal("0.5"), 0)
    assert stage.core.book.position.entry_price == Decimal("99.9")
    row = await database.pool.fetchrow("SELECT order_type, price, state, avg_fill_price, fee FROM trade_executions")
    assert row is not None
    assert (row["order_type"], row["price"], row["state"]) == ("LIMIT", Decimal("99.9"), "filled")
    assert (row["avg_fill_price"], row["fee"]) == (Decimal("99.9"), Decimal("0.00999")), "the maker's 2 bps"


async def test_an_entry_that_would_take_is_refused_post_only_and_its_trade_cancelled(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest)
    recorded = await stage.on_plan(limit_plan(context, 0, "BUY", "0.5", "100.1"))  # a market buy pays 100.1
    assert recorded is not None
    assert recorded.report.resting == 0
    assert stage.core.book.working == {}
    assert await BingXTrading(rest).all_orders(PAIR) == [], "refused, so never booked"
    events = await database.pool.fetch("SELECT to_state, reason FROM trade_state_events ORDER BY id")
    assert [(e["to_state"], e["reason"]) for e in events][-1] == ("rejected", POST_ONLY_WOULD_TAKE)
    assert await trade_of(database) == ("cancelled", POST_ONLY_WOULD_TAKE)


async def test_an_entry_is_cancelled_on_the_venue_when_its_life_ends(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest, expiry=2)
    await stage.on_plan(limit_plan(context, 0, "BUY", "0.5", "90"))
    (order,) = stage.core.book.working.values()
    held = await stage.on_plan(plan(context, 1, 100.0, None, []))  # its first candle of two
    assert held is not None
    assert held.report.resting == Decimal("0.5")
    assert (await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)).status == "NEW"
    ended = await stage.on_plan(plan(context, 2, 100.0, None, []))  # its last: cancelled before the plan
    assert ended is not None
    assert ended.report.resting == 0
    assert ended.log["limit_ended"] == [LIMIT_EXPIRED]
    venue = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert venue.status == "CANCELLED"
    assert stage.core.book.working == {}
    assert await trade_of(database) == ("cancelled", LIMIT_EXPIRED)
    states = await database.pool.fetch("SELECT from_state, to_state FROM trade_state_events ORDER BY id")
    assert [(s["from_state"], s["to_state"]) for s in states][-2:] == [
        ("accepted", "cancel_requested"),
        ("cancel_requested", "cancelled"),
    ]


async def test_an_exit_cancels_the_resting_entry_on_the_venue_first(
    database: Database, context: PairContext, rest: BingXRest
) -> None:
    stage = await stage_on(database, context, rest, expiry=5)
    await stage.on_plan(limit_plan(context, 0, "BUY", "0.5", "90"))
    (order,) = stage.core.book.working.values()
    exiting = replace(plan(context, 1, 100.0, 0.0, []), cancels_resting=True)
    recorded = await stage.on_plan(exiting)
    assert recorded is not None
    assert recorded.log["limit_ended"] == [EXIT_CANCELS_ENTRY]
    venue = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert venue.status == "CANCELLED"
    assert await trade_of(database) == ("cancelled", EXIT_CANCELS_ENTRY)
    # restarted: the book agrees with the venue (nothing working, nothing held)
    again = await stage_on(database, context, rest, expiry=5)
    assert again.core.book.working == {}
    assert again.core.book.position.quantity == 0


async def test_an_operator_close_cancels_the_rest_of_the_entry_on_the_venue_first(
    database: Database, context: PairContext, rest: BingXRest, sim: BingXSimulator
) -> None:
    stage = await stage_on(database, context, rest, expiry=5)
    await stage.on_plan(limit_plan(context, 0, "BUY", "3", "99.9"))
    (order,) = stage.core.book.working.values()
    await sim.market.step(60)  # minute 1: a quarter of its 10 BTC, 2.5, fills at 99.9
    assert isinstance(stage.venue, BingXVenue)
    part = await stage.on_venue_update(await stage.venue.read(order.client_order_id))
    assert part is not None
    assert (part.report.quantity, part.report.resting) == (Decimal("2.5"), Decimal("0.5"))
    trade_id = stage.core.book.trade.id if stage.core.book.trade else None
    assert trade_id is not None
    closing = await stage.close_trade(trade_id)
    entry = await BingXTrading(rest).query_order(PAIR, client_order_id=order.client_order_id)
    assert (entry.status, entry.executed_quantity) == ("CANCELLED", Decimal("2.5"))
    exit_order = await BingXTrading(rest).query_order(PAIR, client_order_id=closing)
    assert (exit_order.side, exit_order.quantity, exit_order.reduce_only) == ("SELL", Decimal("2.5"), True)
