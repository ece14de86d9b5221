"""Backfill against the simulator and a real PostgreSQL: exact, resumable, hole-tolerant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import FileCandle, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, SimulatorOptions
from market_data.backfill import backfill
from storage.candles import CandleStore
from storage.database import Database, StorageOptions
from storage.migrator import migrate

MINUTE = 60_000


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def store(postgres_url: str, tmp_path: Path) -> AsyncIterator[CandleStore]:
    database = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=2))
    async with database.pool.acquire() as connection:
        await migrate(connection)
    yield CandleStore(database.pool)
    await database.close()


async def run_sim(rows: list[FileCandle], options: SimulatorOptions | None = None) -> BingXSimulator:
    # The clock stands inside the last row: it is still forming and must not be stored.
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(rows[-1].open_time_ms + 30_000), options=options
    )
    await simulator.start()
    return simulator


async def assert_stored_equals(store: CandleStore, rows: list[FileCandle]) -> None:
    stored = await store.read("BTC-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms + MINUTE)
    assert len(stored) == len(rows)
    for candle, row in zip(stored, rows, strict=True):
        assert (candle.open_time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume) == (
            row.open_time_ms,
            float(row.open),
            float(row.high),
            float(row.low),
            float(row.close),
            float(row.volume),
        )


async def test_real_candles_are_reproduced_with_stop_and_resume(store: CandleStore, shared_candles: Path) -> None:
    rows = load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[: 5 * 1440 + 1]  # five days + a forming one
    simulator = await run_sim(rows)
    try:
        async with BingXRest(simulator.rest_url, sleep=no_sleep) as rest:
            first = await backfill(rest, store, "BTC-USDT", "1m", max_batches=2)
            assert first.batches == 2
            assert not first.reached_earliest
            assert first.written == 2 * 1440 - 1
            assert first.earliest_ms == rows[-1 - (2 * 1440 - 1)].open_time_ms
            resumed = await backfill(rest, store, "BTC-USDT", "1m")
            assert resumed.reached_earliest
            assert resumed.earliest_ms == rows[0].open_time_ms
        await assert_stored_equals(store, rows[:-1])
    finally:
        await simulator.stop()


def synthetic(count: int, start: int = 1_700_000_040_000) -> list[FileCandle]:
    return [
        FileCandle(
            start + i * MINUTE,
            f"{100 + i % 50}.5",
            f"{103 + i % 50}.0",
            f"{99 + i % 50}.25",
            f"{101 + i % 50}.75",
            f"{i % 7}.5",
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(
    "options",
    [SimulatorOptions(), SimulatorOptions(kline_order="desc"), SimulatorOptions(kline_end_inclusive=True)],
    ids=["ascending", "descending", "end-inclusive"],
)
async def test_page_order_and_end_semantics_do_not_matter(store: CandleStore, options: SimulatorOptions) -> None:
    rows = synthetic(3000)
    simulator = await run_sim(rows, options)
    try:
        async with BingXRest(simulator.rest_url, sleep=no_sleep) as rest:
            result = await backfill(rest, store, "BTC-USDT", "1m")
        assert result.reached_earliest
        await assert_stored_equals(store, rows[:-1])
    finally:
        await simulator.stop()


async def test_a_hole_in_the_venue_history_is_jumped(store: CandleStore) -> None:
    rows = synthetic(6000)
    holed = rows[:1000] + rows[3500:]  # 2500 minutes missing at the venue: more than one page
    simulator = await run_sim(holed)
    try:
        async with BingXRest(simulator.rest_url, sleep=no_sleep) as rest:
            with capture_logs() as logs:
                result = await backfill(rest, store, "BTC-USDT", "1m")
        assert result.reached_earliest
        assert any(entry["event"] == "backfill_hole_skipped" for entry in logs)
        stored = await store.read("BTC-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms)
        assert [c.open_time_ms for c in stored] == [row.open_time_ms for row in holed[:-1]]
    finally:
        await simulator.stop()


async def test_invalid_rows_are_rejected_with_the_reason_and_not_stored(store: CandleStore) -> None:
    rows = synthetic(100)
    bad = rows[40]
    rows[40] = FileCandle(bad.open_time_ms, bad.open, "1.0", bad.low, bad.close, bad.volume)  # high below low
    simulator = await run_sim(rows)
    try:
        async with BingXRest(simulator.rest_url, sleep=no_sleep) as rest:
            with capture_logs() as logs:
                result = await backfill(rest, store, "BTC-USDT", "1m")
        assert result.rejected == 1
        rejections = [e for e in logs if e["event"] == "candle_rejected"]
        assert rejections == [
            {
                "event": "candle_rejected",
                "log_level": "warning",
                "pair": "BTC-USDT",
                "interval": "1m",
                "source": "bingx-rest",
                "reason": "high/low inconsistent with open/close",
                "open_time_ms": bad.open_time_ms,
            }
        ]
        stored = await store.read("BTC-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms)
        assert bad.open_time_ms not in {c.open_time_ms for c in stored}
        assert len(stored) == 98
    finally:
        await simulator.stop()
