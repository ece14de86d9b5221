"""Funding on paper, end to end below the actors on a real PostgreSQL: the feed's collector stores the
simulator's rate of a funding time (its funding history, API.md 4.3) as the candle holding it is final,
and the execution stage pays it from the store, on the trade and in `funding_payments`; a rate the venue
does not give yet is paid later, a closed trade's row included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domain.candles import Candle, ms_to_datetime
from domain.funding import FUNDING_INTERVAL_MS
from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, SimulatorOptions
from market_data.funding import FundingCollector
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.funding_rates import FundingRateStore
from storage.journal import TradingJournal
from storage.runs import RunStore
from tests.execution_plans import PAIR, RULES, no_sleep, plan
from trading.context import PairContext

MINUTE = 60_000
START_MS = 1_700_000_000_000 // MINUTE * MINUTE  # the shared plans' minute 0
FUNDING_MS = -(-START_MS // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
HOLDING = (FUNDING_MS - START_MS) // MINUTE - 1
"""The minute whose candle closes at the funding time."""
RATE = "0.0003"


@pytest.fixture
async def context(database: Database) -> PairContext:
    run = await RunStore(database.pool).start(
        pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    return PairContext(str(run.id), PAIR, "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))


def stage(database: Database, context: PairContext) -> ExecutionStage:
    return ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool))


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    """A replay of the minutes around the funding time, its clock a second before it."""
    rows = [FileCandle(START_MS + i * MINUTE, "100", "101", "99", "100.5", "10") for i in range(HOLDING + 5)]
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)], ReplayClock(FUNDING_MS - 1_000), options=SimulatorOptions(funding_rate=RATE)
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def rest(sim: BingXSimulator) -> AsyncIterator[BingXRest]:
    client = BingXRest(sim.rest_url, retry=RetryPolicy(attempts=1, base_delay_sec=0), sleep=no_sleep, timeout_sec=5.0)
    yield client
    await client.close()


def candle(minute: int) -> Candle:
    return Candle(PAIR, "1m", START_MS + minute * MINUTE, 100.0, 101.0, 99.0, 100.5, 10.0)


async def test_the_collected_rate_is_paid_on_the_position_held_through_the_funding_time(
    database: Database, context: PairContext, sim: BingXSimulator, rest: BingXRest
) -> None:
    sim.clock.set(FUNDING_MS + 1_000)  # the funding candle's close has passed
    collector = FundingCollector(rest, FundingRateStore(database.pool), PAIR)
    assert await collector.on_final([candle(HOLDING - 1)]) == 0  # holds no funding time: nothing asked
    assert await collector.on_final([candle(HOLDING)]) == 1
    assert await collector.on_final([candle(HOLDING)]) == 0  # stored once
    assert await FundingRateStore(database.pool).rates(PAIR, [FUNDING_MS]) == {FUNDING_MS: Decimal(RATE)}

    execution = stage(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, HOLDING - 2, 100.0, 1.0, [("BUY", "2", False)]))
    await execution.on_plan(plan(context, HOLDING - 1, 100.0, None, []))  # filled at 100
    paid = await execution.on_plan(plan(context, HOLDING, 100.0, None, [], close=150.0))
    assert paid is not None
    assert paid.report.funding == Decimal("0.09")  # 2 x 150 x 0.0003
    pool = database.pool
    row = await pool.fetchrow("SELECT * FROM funding_payments")
    assert (row["funding_time"], row["quantity"], row["mark"], row["rate"], row["payment"], row["mode"]) == (
        ms_to_datetime(FUNDING_MS), Decimal(2), Decimal("150.0"), Decimal(RATE), Decimal("0.09"), "paper"
    )  # fmt: skip
    assert row["trade_id"] == await pool.fetchval("SELECT id FROM trades")
    await execution.on_plan(plan(context, HOLDING + 1, 150.0, 0.0, [("SELL", "2", True)]))
    closed = await execution.on_plan(plan(context, HOLDING + 2, 120.0, None, []))
    assert closed is not None
    assert len(closed.closed_trades) == 1
    trade = await pool.fetchrow("SELECT funding, fees, realized_pnl FROM trades")
    assert trade["funding"] == Decimal("0.09")
    # (120 - 100) x 2 = 40, less the taker fees (0.1 + 0.12) and the funding
    assert trade["realized_pnl"] == Decimal(40) - Decimal("0.22") - Decimal("0.09")
    assert trade["fees"] == Decimal("0.22")


async def test_a_rate_the_venue_does_not_give_yet_is_paid_later_on_the_closed_trades_row(
    database: Database, context: PairContext, sim: BingXSimulator, rest: BingXRest
) -> None:
    # the venue's clock a second before the funding time: its history does not hold it yet
    collector = FundingCollector(rest, FundingRateStore(database.pool), PAIR)
    assert await collector.on_final([candle(HOLDING)]) == 0
    assert collector.wanted == {FUNDING_MS}

    execution = stage(database, context)
    await execution.restore()
    await execution.on_plan(plan(context, HOLDING - 2, 100.0, 1.0, [("BUY", "2", False)]))
    await execution.on_plan(plan(context, HOLDING - 1, 100.0, None, []))
    due = await execution.on_plan(plan(context, HOLDING, 100.0, 0.0, [("SELL", "2", True)], close=150.0))
    assert due is not None
    assert due.log["funding_due"] == [FUNDING_MS]
    closed = await execution.on_plan(plan(context, HOLDING + 1, 120.0, None, []))
    assert closed is not None
    assert len(closed.closed_trades) == 1
    pool = database.pool
    before = await pool.fetchval("SELECT realized_pnl FROM trades")
    assert await pool.fetchval("SELECT count(*) FROM funding_payments") == 0

    sim.clock.set(FUNDING_MS + MINUTE)  # the venue gives it now: the next final candle asks again
    assert await collector.on_final([candle(HOLDING + 1)]) == 1
    assert collector.wanted == set()
    paid = await execution.on_plan(plan(context, HOLDING + 2, 120.0, None, []))
    assert paid is not None
    assert paid.report.funding == Decimal("0.09")  # on what was held through it: 2 at 150
    trade = await pool.fetchrow("SELECT funding, realized_pnl FROM trades")
    assert (trade["funding"], trade["realized_pnl"]) == (Decimal("0.09"), before - Decimal("0.09"))
    assert await pool.fetchval("SELECT payment FROM funding_payments") == Decimal("0.09")


async def test_an_unreachable_venue_keeps_the_funding_time_wanted_and_never_raises(database: Database) -> None:
    unreachable = BingXRest("http://127.0.0.1:9", retry=RetryPolicy(attempts=1, base_delay_sec=0), sleep=no_sleep)
    try:
        collector = FundingCollector(unreachable, FundingRateStore(database.pool), PAIR)
        assert await collector.on_final([candle(HOLDING)]) == 0
        assert collector.wanted == {FUNDING_MS}
        assert await collector.warm_up(START_MS + HOLDING * MINUTE) == 0
    finally:
        await unreachable.close()
