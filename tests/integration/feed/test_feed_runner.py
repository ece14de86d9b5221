"""The feed runner spreads topics over websocket connections of at most 200 topics each."""

from __future__ import annotations

import asyncio

import pytest

from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.bingx.ws import MAX_CONNECTIONS, MAX_TOPICS_PER_CONNECTION
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from market_data.live import FeedTopic
from market_data.runner import FeedRunner, FeedSchedule
from storage.candles import CandleStore
from storage.database import Database
from storage.retry_queue import RetryQueue
from storage.source_status import SourceStatusStore

MINUTE = 60_000
T0 = 1_700_000_040_000
FAST = RetryPolicy(attempts=8, base_delay_sec=0.01, max_delay_sec=0.05)


async def no_sleep(_seconds: float) -> None:
    return None


def rows(count: int) -> list[FileCandle]:
    return [FileCandle(T0 + i * MINUTE, "10.5", "11.0", "10.0", "10.75", "2.5") for i in range(count)]


def runner_for(
    database: Database, rest: BingXRest, ws_url: str, topics: list[FeedTopic], per_connection: int = 200
) -> FeedRunner:
    return FeedRunner(
        rest,
        ws_url,
        CandleStore.of(database),
        SourceStatusStore(database.pool),
        RetryQueue(database.pool),
        topics,
        FeedSchedule(),
        topics_per_connection=per_connection,
    )


async def test_topics_are_spread_over_several_connections(database: Database) -> None:
    """Seven topics at three per connection (the same code splits 201 at 200; subscribing 200 topics at
    the venue's 10 a second takes 20 s, too long for a test)."""
    topics = [FeedTopic(f"C{i:03d}-USDT", "1m") for i in range(7)]
    data = rows(3)
    simulator = BingXSimulator(
        [ReplaySeries(topic.pair, "1m", data) for topic in topics], ReplayClock(data[0].open_time_ms)
    )
    await simulator.start()
    rest = BingXRest(simulator.rest_url, retry=FAST, sleep=no_sleep)
    runner = runner_for(database, rest, simulator.ws_url, topics, per_connection=3)
    assert [len(ingestor.topics) for ingestor in runner.live] == [3, 3, 1]
    many = [FeedTopic(f"D{i:03d}-USDT", "1m") for i in range(210)]
    assert [len(ingestor.topics) for ingestor in runner_for(database, rest, "ws://x", many).live] == [200, 10]
    running = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(20):
            while len(simulator.stream.subscribe_log) < len(topics):
                await asyncio.sleep(0.02)
        assert len(simulator.stream.connections) == 3
        assert sorted(simulator.stream.subscribe_log) == sorted(topic.name for topic in topics)
        for _ in range(2 * 60):  # two candles close; the third stays forming
            await simulator.market.step(1)
            await asyncio.sleep(0)
        store = CandleStore.of(database)
        async with asyncio.timeout(20):
            for topic in (topics[0], topics[-1]):  # one on each connection
                while len(await store.read(topic.pair, "1m", T0, T0 + 3 * MINUTE)) < 2:
                    await asyncio.sleep(0.05)
    finally:
        await runner.stop()
        await asyncio.wait_for(running, 10)
        await rest.close()
        await simulator.stop()


async def test_a_feed_beyond_the_connection_limit_is_refused(database: Database) -> None:
    too_many = [FeedTopic(f"C{i:05d}-USDT", "1m") for i in range(MAX_TOPICS_PER_CONNECTION * MAX_CONNECTIONS + 1)]
    async with BingXRest("http://127.0.0.1:9") as rest:
        with pytest.raises(ValueError, match="more than 60 websocket connections"):
            runner_for(database, rest, "ws://127.0.0.1:9", too_many)
        with pytest.raises(ValueError, match="at least one"):
            runner_for(database, rest, "ws://127.0.0.1:9", [])
        with pytest.raises(ValueError, match="BTC-USDT@kline_1m is listed twice"):
            runner_for(database, rest, "ws://127.0.0.1:9", [FeedTopic("BTC-USDT", "1m")] * 2)
