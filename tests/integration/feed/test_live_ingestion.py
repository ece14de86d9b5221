"""Live ingestion against the simulator: whatever the stream does, the store ends equal to the file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.bingx.ws import MarketDataStream
from exchange.sim.candle_file import FileCandle, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from market_data.live import FeedTopic, LiveIngestor
from storage.candles import CandleStore
from storage.database import Database
from storage.source_status import SourceStatusStore

MINUTE = 60_000
FAST = RetryPolicy(attempts=8, base_delay_sec=0.01, max_delay_sec=0.05)


async def no_sleep(_seconds: float) -> None:
    return None


def synthetic(count: int, start: int = 1_700_000_040_000) -> list[FileCandle]:
    return [
        FileCandle(
            start + i * MINUTE,
            f"{200 + i % 40}.5",
            f"{204 + i % 40}.0",
            f"{198 + i % 40}.25",
            f"{202 + i % 40}.75",
            f"{1 + i % 9}.5",
        )
        for i in range(count)
    ]


async def replay(
    database: Database,
    rows: list[FileCandle],
    during: Callable[[int, BingXSimulator], Awaitable[None]] | None = None,
) -> tuple[LiveIngestor, BingXSimulator]:
    """Step the simulator through every second of `rows` while an ingestor runs, then let it settle."""
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)],
        ReplayClock(rows[0].open_time_ms),
        ping_interval_sec=0.2,
        pong_timeout_sec=2.0,
    )
    await simulator.start()
    rest = BingXRest(simulator.rest_url, retry=FAST, sleep=no_sleep)
    stream = MarketDataStream(simulator.ws_url, ["BTC-USDT@kline_1m"], idle_timeout_sec=0.5, backoff=FAST)
    store = CandleStore(database.pool)
    ingestor = LiveIngestor(
        rest,
        store,
        stream,
        [FeedTopic("BTC-USDT", "1m")],
        status=SourceStatusStore(database.pool),
        poll_after_sec=0.6,
        check_every_sec=0.1,
    )
    running = asyncio.create_task(ingestor.run())
    try:
        async with asyncio.timeout(10):
            while not stream.is_connected() or not simulator.stream.subscribe_log:
                await asyncio.sleep(0.01)
            while ingestor.stats.catch_ups < 1:  # the catch-up on connecting is done before the replay moves
                await asyncio.sleep(0.01)
        for second in range(len(rows) * 60):
            await simulator.market.step(1)
            if during is not None:
                await during(second, simulator)
            await asyncio.sleep(0)
        expected = len(rows) - 1  # the last candle never sees a successor: it stays forming
        async with asyncio.timeout(20):
            while True:
                stored = await store.read("BTC-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms + MINUTE)
                if len(stored) >= expected:
                    break
                await asyncio.sleep(0.1)
        await ingestor.drain()
    finally:
        await ingestor.stop()
        await running
        await rest.close()
        await simulator.stop()
    return ingestor, simulator


async def assert_store_equals(database: Database, rows: list[FileCandle]) -> None:
    store = CandleStore(database.pool)
    stored = await store.read("BTC-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms + MINUTE)
    assert [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in stored] == [
        (r.open_time_ms, float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume)) for r in rows[:-1]
    ]
    assert await store.gaps("BTC-USDT", "1m", rows[0].open_time_ms, rows[-2].open_time_ms + MINUTE) == []


async def test_a_clean_stream_is_stored_exactly(database: Database) -> None:
    rows = synthetic(40)
    ingestor, _ = await replay(database, rows)
    await assert_store_equals(database, rows)
    assert ingestor.stats.finals_from_stream >= len(rows) - 3
    statuses = await SourceStatusStore(database.pool).all()
    assert [(s.source, s.pair, s.interval, s.status) for s in statuses] == [("bingx", "BTC-USDT", "1m", "ok")]


async def test_drops_stalls_and_error_bursts_lose_nothing(database: Database) -> None:
    rows = synthetic(60)

    async def faults(second: int, simulator: BingXSimulator) -> None:
        if second in (300, 1200, 2100):
            simulator.faults.burst(429, 2)
            simulator.faults.burst(503, 1)
            subscribed = len(simulator.stream.subscribe_log)
            await simulator.stream.drop_all()
            # The replay waits for the client to be back (it subscribes again), not for a time: on a loaded
            # machine the next drop could otherwise come before the reconnect.
            async with asyncio.timeout(30):
                while len(simulator.stream.subscribe_log) <= subscribed:
                    await asyncio.sleep(0.01)
        if second == 2600:
            simulator.stream.faults.stalled = True
            simulator.stream.faults.answer_pongs_required = False
        if 2600 <= second < 2900:
            await asyncio.sleep(0.003)  # the stall lasts longer than the client's idle timeout
        if second == 2900:
            simulator.stream.faults.stalled = False
            simulator.stream.faults.answer_pongs_required = True

    ingestor, simulator = await replay(database, rows, faults)
    await assert_store_equals(database, rows)
    assert ingestor.stream.stats.connections >= 4
    assert ingestor.stats.candles_from_rest > 0
    assert ingestor.stats.holes_healed + ingestor.stats.catch_ups > 3
    assert {429, 503} <= {record.status for record in simulator.request_log}


async def test_a_rest_storm_longer_than_the_clients_retries_leaves_no_hole(database: Database) -> None:
    """Found by the reliability suite (issue 16): a catch-up or hole heal whose retries a 5xx storm
    exhausted was dropped, and the candles missed while the stream was down were never stored."""
    rows = synthetic(40)

    async def storm(second: int, simulator: BingXSimulator) -> None:
        if second == 600:  # five candles pass unseen: a hole, which only REST can heal
            simulator.stream.faults.stalled = True
        if second == 900:
            simulator.faults.burst(503, 30)  # more than the client's 8 tries, several times over
            simulator.stream.faults.stalled = False

    ingestor, simulator = await replay(database, rows, storm)
    await assert_store_equals(database, rows)
    assert ingestor.stats.rest_failures >= 3
    assert not simulator.faults.http_errors, "the storm was met, and outlasted"


async def test_real_candles_through_the_stream(database: Database, shared_candles: Path) -> None:
    rows = load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[1000:1030]
    await replay(database, rows)
    await assert_store_equals(database, rows)
