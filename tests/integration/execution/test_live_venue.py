"""A live pair's way to the venue as its execution actor opens it (issue 17), on the simulator and a real
PostgreSQL: the account made ready for the pair, orders sent through the venue it answers with and
their fills booked from its order news; a refused setup says why and leaves nothing open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from domain.errors import FatalVenueError
from exchange.bingx.rest import Credentials
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import Consequence
from pipeline.execution.bingx_setup import AccountSetupError
from pipeline.execution.live_venue import LiveVenueSource, open_live_venue, pair_state
from pipeline.execution.stage import ExecutionStage
from pipeline.execution.venue import VenueOrderUpdate
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from storage.runs import RunStore
from tests.execution_plans import PAIR, RULES, plan
from trading.context import PairContext
from trading.protection import ProtectionRule

KEY, SECRET = "live-key-0001", "live-secret-0001-abcdefghijklmnop"
T0 = 1_700_000_040_000
DEADLINE_SEC = 60
RULE = ProtectionRule(Decimal("0.05"))


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET}, ping_interval_sec=0.2
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def source(sim: BingXSimulator, leverage: int = 2) -> LiveVenueSource:
    return LiveVenueSource(sim.rest_url, sim.ws_url, Credentials(KEY, SECRET), 5000, "ISOLATED", leverage, RULE)


async def until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE_SEC):
        while not done():
            await asyncio.sleep(0.02)


async def test_a_live_pair_is_made_ready_then_trades_and_books_from_the_stream(
    database: Database, sim: BingXSimulator
) -> None:
    live = await open_live_venue(source(sim, leverage=2), PAIR)
    try:
        assert (live.setup.leverage, live.setup.margin_type) == (2, "ISOLATED")
        assert (await BingXTrading(live.rest).leverage(PAIR))[0] == 2
        assert await BingXTrading(live.rest).margin_type(PAIR) == "ISOLATED"
        run = await RunStore(database.pool).start(
            pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={},
            baseline_policy="momentum",
        )  # fmt: skip
        context = PairContext(str(run.id), PAIR, "1m", "live", "v1", "baseline:momentum", Decimal(10_000))
        stage = ExecutionStage(
            context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool), live.venue
        )
        await stage.restore()
        inbox = asyncio.Lock()  # the actor's inbox: plans and news one at a time

        async def deliver(update: VenueOrderUpdate) -> None:
            async with inbox:
                await stage.on_venue_update(update)

        news = live.news(lambda: list(stage.core.book.working), deliver)
        running = asyncio.create_task(news.run())
        await until(lambda: news.stats.stream_up)
        async with inbox:
            await stage.on_plan(plan(context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
        await until(lambda: stage.core.book.position.quantity == Decimal("0.5"))
        assert news.stats.streamed >= 1
        (venue_position,) = await BingXTrading(live.rest).positions(PAIR)
        assert venue_position.quantity == Decimal("0.5")
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    finally:
        await live.close()


async def test_a_pair_the_venue_does_not_list_is_refused_with_why(sim: BingXSimulator) -> None:
    with pytest.raises(AccountSetupError, match="DOGE-USDT is not listed on the venue"):
        await open_live_venue(source(sim), "DOGE-USDT")


async def test_keys_the_venue_refuses_stop_the_pair_before_it_trades(sim: BingXSimulator) -> None:
    refused = LiveVenueSource(sim.rest_url, sim.ws_url, Credentials(KEY, "not-the-secret"), 5000, "ISOLATED", 1, RULE)
    leverage_before = sim.trading.account.leverage_of(PAIR)
    with pytest.raises(FatalVenueError, match="100001"):
        await open_live_venue(refused, PAIR)
    assert sim.trading.account.leverage_of(PAIR) == leverage_before  # nothing was set with a refused key
    assert len(sim.trading.account.orders) == 0


def test_each_outcome_beyond_the_order_holds_the_pair() -> None:
    assert pair_state(Consequence.NONE) is None
    assert pair_state(Consequence.UNRESOLVED) == ("REDUCING", "order_unresolved")
    assert pair_state(Consequence.HALT_PAIR) == ("HALTED", "venue_refused_pair")
    assert pair_state(Consequence.HALT_ACCOUNT) == ("HALTED", "venue_refused_account")
