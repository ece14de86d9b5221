"""A live pair's order news on the simulator and PostgreSQL (issue 17): fills booked from the user stream
while it is up, from reads of the working orders while it is down, and a fill the stream could not cost
booked from a read of the order."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.bingx.trading import BingXTrading
from exchange.bingx.user_stream import UserDataStream
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import BingXOrders
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.core import FeeUnknownError
from pipeline.execution.stage import ExecutionStage
from pipeline.execution.venue import VenueOrderUpdate
from pipeline.execution.venue_news import VenueNews
from storage.checkpoints import CheckpointStore
from storage.database import Database
from storage.journal import TradingJournal
from storage.runs import RunStore
from tests.execution_plans import PAIR, RULES, no_sleep, plan
from trading.context import PairContext

KEY, SECRET = "news-key-0001", "news-secret-0001-abcdefghijklmnop"
T0 = 1_700_000_040_000
DEADLINE_SEC = 60


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET}, ping_interval_sec=0.2
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def rest(sim: BingXSimulator) -> AsyncIterator[BingXRest]:
    client = BingXRest(sim.rest_url, Credentials(KEY, SECRET), retry=RetryPolicy(attempts=3, base_delay_sec=0))
    yield client
    await client.close()


@pytest.fixture
async def stage(database: Database, rest: BingXRest) -> ExecutionStage:
    run = await RunStore(database.pool).start(
        pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    context = PairContext(str(run.id), PAIR, "1m", "live", "v1", "baseline:momentum", Decimal(10_000))
    (contract,) = await rest.contracts(PAIR)
    venue = BingXVenue(BingXOrders(BingXTrading(rest), contract, sleep=no_sleep))
    built = ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool), venue)
    await built.restore()
    return built


ONE_AT_A_TIME = asyncio.Lock
"""The actor's inbox: a plan (its submit and answers included) and the news are handled one at a time."""


def news_for(stage: ExecutionStage, stream: UserDataStream, inbox: asyncio.Lock) -> VenueNews:
    assert isinstance(stage.venue, BingXVenue)

    async def deliver(update: VenueOrderUpdate) -> None:
        async with inbox:
            await stage.on_venue_update(update)

    return VenueNews(stream, stage.venue, lambda: list(stage.core.book.working), deliver, poll_every_sec=0.1)


async def decide(stage: ExecutionStage, inbox: asyncio.Lock) -> None:
    async with inbox:
        await stage.on_plan(plan(stage.core.context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))


async def until(what: str, done: object) -> None:
    async with asyncio.timeout(DEADLINE_SEC):
        while not done():  # type: ignore[operator]
            await asyncio.sleep(0.02)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_fills_are_booked_from_the_stream_while_it_is_up(
    sim: BingXSimulator, rest: BingXRest, stage: ExecutionStage
) -> None:
    inbox = ONE_AT_A_TIME()
    news = news_for(stage, UserDataStream(rest, sim.ws_url, sleep=no_sleep), inbox)
    running = asyncio.create_task(news.run())
    await until("the stream", lambda: news.stats.stream_up)
    await decide(stage, inbox)
    await until("the fill", lambda: stage.core.book.position.quantity == Decimal("0.5"))
    assert news.stats.streamed >= 2  # NEW, then the TRADE that filled it
    assert news.stats.polled == 0  # no read was needed
    await news.stream.close()
    await asyncio.wait_for(running, DEADLINE_SEC)


async def test_reads_of_the_working_orders_stand_in_while_the_stream_is_down(
    rest: BingXRest, stage: ExecutionStage
) -> None:
    inbox = ONE_AT_A_TIME()
    news = news_for(stage, UserDataStream(rest, f"ws://127.0.0.1:{closed_port()}", sleep=no_sleep), inbox)
    running = asyncio.create_task(news.run())
    await decide(stage, inbox)
    await until("the fill", lambda: stage.core.book.position.quantity == Decimal("0.5"))
    assert not news.stats.stream_up
    assert news.stats.polled >= 1
    assert news.stats.streamed == 0
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


async def test_a_fill_the_stream_cannot_cost_is_booked_from_a_read(rest: BingXRest, stage: ExecutionStage) -> None:
    seen: list[VenueOrderUpdate] = []

    async def deliver(update: VenueOrderUpdate) -> None:
        seen.append(update)
        if update.fees is None:
            raise FeeUnknownError("missed a fill")
        await stage.on_venue_update(update)

    assert isinstance(stage.venue, BingXVenue)
    news = VenueNews(UserDataStream(rest, "ws://127.0.0.1:9"), stage.venue, list, deliver)
    await stage.on_plan(plan(stage.core.context, 0, 100.0, 1.0, [("BUY", "0.5", False)]))
    (cid,) = stage.core.book.working
    streamed = VenueOrderUpdate(cid, "1", "filled", Decimal("0.5"), Decimal("100.1"), None, source="user_stream")
    await news.book(streamed)
    assert [u.source for u in seen] == ["user_stream", "order_poll"]
    assert stage.core.book.position.quantity == Decimal("0.5")
    assert news.stats.reads_for_fees == 1
