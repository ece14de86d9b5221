"""The gap monitor heals what was cut from the store; failures wait in the retry queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from domain.candles import ms_to_datetime
from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.sim.candle_file import FileCandle, as_candles
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from market_data.gap_monitor import heal_gaps
from market_data.retries import run_due_jobs
from storage.candles import CandleStore, write_candles
from storage.database import Database, StorageOptions
from storage.migrator import migrate
from storage.retry_queue import RetryQueue

MINUTE = 60_000
T0 = 1_700_000_040_000


async def no_sleep(_seconds: float) -> None:
    return None


def rows(count: int) -> list[FileCandle]:
    return [
        FileCandle(T0 + i * MINUTE, f"{50 + i}.5", f"{53 + i}.0", f"{49 + i}.25", f"{51 + i}.75", "3.5")
        for i in range(count)
    ]


@pytest.fixture
async def env(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, BingXSimulator, BingXRest]]:
    database = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=3))
    async with database.pool.acquire() as connection:
        await migrate(connection)
    data = rows(500)
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", data[:200] + data[260:])],  # a venue hole at 200-259
        ReplayClock(data[-1].open_time_ms + MINUTE),
    )
    await simulator.start()
    rest = BingXRest(simulator.rest_url, retry=RetryPolicy(attempts=2, base_delay_sec=0.0), sleep=no_sleep)
    yield database, simulator, rest
    await rest.close()
    await simulator.stop()
    await database.close()


async def test_gaps_cut_into_the_store_are_healed_and_venue_holes_reported(
    env: tuple[Database, BingXSimulator, BingXRest],
) -> None:
    database, _simulator, rest = env
    data = rows(500)
    async with database.pool.acquire() as connection:
        await write_candles(connection, as_candles(data[:200] + data[260:], "BTC-USDT", "1m"), "test")
        await connection.execute(
            "DELETE FROM candles WHERE open_time >= $1 AND open_time < $2 OR open_time = $3",
            ms_to_datetime(data[20].open_time_ms),
            ms_to_datetime(data[95].open_time_ms),
            ms_to_datetime(data[400].open_time_ms),
        )
    store = CandleStore(database.pool)
    known: set[tuple[str, str, int, int]] = set()
    with capture_logs() as logs:
        report = await heal_gaps(rest, store, "BTC-USDT", "1m", known_unfillable=known)
    assert (report.gaps, report.missing, report.healed, report.unfillable) == (3, 75 + 60 + 1, 76, 60)
    assert any(e["event"] == "gap_unfillable" and e["missing"] == 60 for e in logs)
    stored = await store.read("BTC-USDT", "1m", T0, T0 + 500 * MINUTE)
    assert [c.open_time_ms for c in stored] == [r.open_time_ms for r in data[:200] + data[260:]]
    # The venue's hole is not asked for again in this process.
    requests_before = rest.requests_sent
    again = await heal_gaps(rest, store, "BTC-USDT", "1m", known_unfillable=known)
    assert (again.gaps, again.skipped, rest.requests_sent) == (0, 1, requests_before)


async def test_a_failed_heal_waits_in_the_retry_queue_and_succeeds_later(
    env: tuple[Database, BingXSimulator, BingXRest],
) -> None:
    database, simulator, rest = env
    data = rows(500)
    async with database.pool.acquire() as connection:
        await write_candles(connection, as_candles(data[300:310] + data[330:340], "BTC-USDT", "1m"), "test")
    store, queue = CandleStore(database.pool), RetryQueue(database.pool)
    simulator.faults.burst(503, 2)  # exactly the client's two attempts: the heal fails, the retry will not
    report = await heal_gaps(rest, store, "BTC-USDT", "1m", queue)
    assert (report.gaps, report.queued, report.healed) == (1, 1, 0)
    (job,) = await queue.jobs()
    assert (job.kind, job.status, job.payload["start_ms"]) == ("heal_gap", "pending", data[310].open_time_ms)
    assert "503" in (job.last_error or "")
    assert await run_due_jobs(queue, rest, store) == 0  # not due yet (30 s backoff)
    async with database.pool.acquire() as connection:
        await connection.execute("UPDATE retry_queue SET next_attempt_at = now()")
    assert await run_due_jobs(queue, rest, store) == 1
    assert await queue.jobs() == []
    assert len(await store.read("BTC-USDT", "1m", data[300].open_time_ms, data[340].open_time_ms)) == 40


async def test_a_job_that_keeps_failing_ends_dead_and_visible(env: tuple[Database, BingXSimulator, BingXRest]) -> None:
    database, simulator, rest = env
    store, queue = CandleStore(database.pool), RetryQueue(database.pool)
    await queue.enqueue(
        "heal_gap",
        "x",
        {"pair": "BTC-USDT", "interval": "1m", "start_ms": T0, "end_ms": T0 + MINUTE},
        "first failure",
        delay_sec=0,
        max_attempts=2,
    )
    for _ in range(2):
        simulator.faults.burst(503, 10)
        assert await run_due_jobs(queue, rest, store) == 0
        simulator.faults.http_errors.clear()
        async with database.pool.acquire() as connection:
            await connection.execute("UPDATE retry_queue SET next_attempt_at = now() WHERE status = 'pending'")
    (job,) = await queue.jobs()
    assert (job.status, job.attempts) == ("dead", 2)
    again = await queue.enqueue("heal_gap", "x", {}, "new failure", delay_sec=0)
    assert again != job.id  # a dead job does not block a new one
