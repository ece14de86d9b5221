"""The feed actor's warm-up when the venue refuses it (issue 16, defect 3): put off when candles are
stored (the stream fills from the newest of them), raised when nothing is (the supervisor waits)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.feed.actor import FeedActor, FeedSource
from actors.shell import WorkerEnv
from actors.transport import FeaturesHandle, Peers
from domain.candles import Candle
from domain.errors import TemporaryVenueError
from exchange.sim.candle_file import as_candles
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from market_data.runner import FeedSchedule
from storage.candles import CandleStore
from storage.database import Database
from tests.integration.feed.test_live_ingestion import MINUTE, synthetic


class FeatureInbox:
    """The feature actor's end of the line: the candles the feed passes on."""

    def __init__(self) -> None:
        self.candles: list[Candle] = []

    async def call(self, method: str, *args: Any) -> Any:
        raise AssertionError(f"the feed does not ask the feature actor anything ({method})")

    def send(self, method: str, *args: Any) -> None:
        assert method == "on_candles"
        self.candles.extend(args[0])

    def kill(self) -> None:
        return None


async def test_a_warm_up_the_venue_refuses_is_put_off_only_when_candles_are_stored(database: Database) -> None:
    rows = synthetic(300)
    now = 200  # the simulator's clock is in row 200: rows 0..199 are final
    simulator = BingXSimulator([ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(rows[now].open_time_ms))
    await simulator.start()
    store = CandleStore(database.pool)
    env = WorkerEnv(database.dsn, None, "info", ())
    source = FeedSource(simulator.rest_url, simulator.ws_url, ("1m",), 100, FeedSchedule())
    inbox = FeatureInbox()
    peers = Peers(features=FeaturesHandle(inbox))
    try:
        # A 503 storm (a 429 one is the same path, but the client waits the venue's 5 s between tries).
        simulator.faults.burst(503, 10_000)
        empty = FeedActor(env, "BTC-USDT", source)
        with pytest.raises(TemporaryVenueError):
            await empty.ready(peers)
        await empty.close()

        await store.write(as_candles(rows[:150], "BTC-USDT", "1m"), "test")
        feed = FeedActor(env, "BTC-USDT", source)
        try:
            answer = await asyncio.wait_for(feed.ready(peers), 60)
            assert answer["warmed"] == {"1m": 0}
            assert feed.ping()["running"], "the feed streams with what is stored"
            simulator.faults.http_errors.clear()  # the burst is over
            await simulator.market.step(60)  # row 200 becomes final: the stream heals 150..199 over REST
            async with asyncio.timeout(60):
                while (span := await store.span("BTC-USDT", "1m")) is None or span[1] < rows[now].open_time_ms:
                    await asyncio.sleep(0.05)
            count = await database.pool.fetchval(
                "SELECT count(*) FROM candles WHERE pair = 'BTC-USDT' AND interval = '1m'"
            )
            assert count == now + 1
            assert span == (rows[0].open_time_ms, rows[0].open_time_ms + now * MINUTE)
            async with asyncio.timeout(60):
                while len(inbox.candles) < now - 150 + 1:
                    await asyncio.sleep(0.05)
            assert [c.open_time_ms for c in inbox.candles] == [r.open_time_ms for r in rows[150 : now + 1]]
        finally:
            await feed.close()
    finally:
        await simulator.stop()
