"""Candle storage on a real PostgreSQL (and TimescaleDB): idempotent bulk writes, reads, gaps."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import asyncpg
import pytest

from domain.candle_columns import CandleColumns
from domain.candles import Candle
from storage.candles import CandleStore, Gap, copy_new_candles, find_gaps, read_candles, stored_span, write_candles
from storage.database import Database, StorageOptions
from storage.migrator import migrate

MINUTE = 60_000
T0 = 1_700_000_040_000


def candle(i: int, close: float = 101.0, pair: str = "BTC-USDT") -> Candle:
    return Candle(pair, "1m", T0 + i * MINUTE, 100.0, 102.0, 99.0, close, 5.0 + i)


def columns(candles: Iterable[Candle]) -> CandleColumns:
    return CandleColumns.from_candles(list(candles))


@pytest.fixture
async def db(pg: asyncpg.Connection) -> asyncpg.Connection:
    await migrate(pg)
    return pg


async def test_writes_are_idempotent_and_count_changes(db: asyncpg.Connection) -> None:
    first = await write_candles(db, [candle(i) for i in range(10)], "bingx-rest")
    assert (first.inserted, first.updated, first.unchanged) == (10, 0, 0)
    again = await write_candles(db, [candle(i) for i in range(10)], "bingx-rest")
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 10)
    revised = await write_candles(db, [candle(3, close=101.5), candle(10)], "bingx-rest")
    assert (revised.inserted, revised.updated, revised.unchanged) == (1, 1, 0)
    stored = await read_candles(db, "BTC-USDT", "1m", T0, T0 + 11 * MINUTE)
    assert [c.open_time_ms for c in stored] == [T0 + i * MINUTE for i in range(11)]
    assert stored[3].close == 101.5
    assert stored[0] == candle(0)


async def test_range_reads_are_half_open_and_per_pair(db: asyncpg.Connection) -> None:
    await write_candles(db, [candle(i) for i in range(5)] + [candle(i, pair="ETH-USDT") for i in range(5)], "x")
    stored = await read_candles(db, "BTC-USDT", "1m", T0 + MINUTE, T0 + 3 * MINUTE)
    assert [c.open_time_ms for c in stored] == [T0 + MINUTE, T0 + 2 * MINUTE]
    assert {c.pair for c in stored} == {"BTC-USDT"}
    assert await stored_span(db, "BTC-USDT", "1m") == (T0, T0 + 4 * MINUTE)
    assert await stored_span(db, "BTC-USDT", "5m") is None


async def test_gaps_include_head_interior_and_tail(db: asyncpg.Connection) -> None:
    present = [2, 3, 4, 7, 8, 12]
    await write_candles(db, [candle(i) for i in present], "x")
    gaps = await find_gaps(db, "BTC-USDT", "1m", T0, T0 + 15 * MINUTE)
    assert gaps == [
        Gap(T0, T0 + 2 * MINUTE, 2),
        Gap(T0 + 5 * MINUTE, T0 + 7 * MINUTE, 2),
        Gap(T0 + 9 * MINUTE, T0 + 12 * MINUTE, 3),
        Gap(T0 + 13 * MINUTE, T0 + 15 * MINUTE, 2),
    ]
    assert await find_gaps(db, "BTC-USDT", "1m", T0 + 2 * MINUTE, T0 + 5 * MINUTE) == []
    assert await find_gaps(db, "ETH-USDT", "1m", T0, T0 + 3 * MINUTE) == [Gap(T0, T0 + 3 * MINUTE, 3)]


async def test_invalid_candles_never_reach_the_table(db: asyncpg.Connection) -> None:
    await write_candles(db, [candle(0)], "x")
    bad = Candle("BTC-USDT", "1m", T0 + MINUTE, float("nan"), 102.0, 99.0, 101.0, 1.0)
    with pytest.raises(asyncpg.CheckViolationError):
        await write_candles(db, [candle(2), bad], "x")
    assert [c.open_time_ms for c in await read_candles(db, "BTC-USDT", "1m", T0, T0 + 5 * MINUTE)] == [T0]


async def test_the_same_writes_work_on_a_timescale_hypertable(timescale_url: str) -> None:
    connection = await asyncpg.connect(timescale_url)
    try:
        await migrate(connection)
        result = await write_candles(connection, [candle(i) for i in range(100)], "x")
        assert result.inserted == 100
        await connection.execute("SELECT compress_chunk(c) FROM show_chunks('candles') c")
        revised = await write_candles(connection, [candle(5, close=101.25), candle(100)], "x")
        assert (revised.inserted, revised.updated) == (1, 1)
        stored = await read_candles(connection, "BTC-USDT", "1m", T0, T0 + 101 * MINUTE)
        assert len(stored) == 101
        assert stored[5].close == 101.25
        assert await find_gaps(connection, "BTC-USDT", "1m", T0, T0 + 101 * MINUTE) == []
    finally:
        await connection.close()


async def test_copy_of_new_candles_falls_back_when_one_is_stored_already(db: asyncpg.Connection) -> None:
    first = await copy_new_candles(db, columns(candle(i) for i in range(5)), "x")
    assert (first.inserted, first.updated) == (5, 0)
    async with db.transaction():  # the failed COPY must not abort a caller's transaction
        overlapping = await copy_new_candles(db, columns(candle(i, close=101.5) for i in range(3, 8)), "x")
        assert await db.fetchval("SELECT count(*) FROM candles") == 8
    assert (overlapping.inserted, overlapping.updated, overlapping.unchanged) == (3, 2, 0)
    stored = await read_candles(db, "BTC-USDT", "1m", T0, T0 + 10 * MINUTE)
    assert [c.close for c in stored] == [101.0, 101.0, 101.0, 101.5, 101.5, 101.5, 101.5, 101.5]


async def test_pglite_reports_no_copy_and_the_store_writes_without_it(timescale_url: str, tmp_path: Path) -> None:
    database = await Database.open(StorageOptions(url=timescale_url, data_dir=tmp_path, pool_max_size=1))
    try:
        assert database.copy_supported is False
        async with database.pool.acquire() as connection:
            await migrate(connection)
        store = CandleStore.of(database)
        assert (await store.write_new(columns(candle(i) for i in range(3)), "x")).inserted == 3
        assert len(await store.read("BTC-USDT", "1m", T0, T0 + 3 * MINUTE)) == 3
    finally:
        await database.close()


async def test_binary_copy_stores_every_value_exactly(db: asyncpg.Connection) -> None:
    """Bit-exact floats, millisecond times before and after 2000 (the zero of binary timestamps), and
    quote volumes present on some rows and NULL on others, in one COPY stream."""
    given = [
        Candle("BTC-USDT", "1m", 915_148_800_000, 0.1, 0.30000000000000004, 0.1, 0.2, 0.0, None),  # 1999
        Candle("BTC-USDT", "1m", T0, 94_000.5, 94_010.1, 93_990.7, 94_003.2, 13.8908, 1_305_712.25),
        Candle("BTC-USDT", "1m", T0 + MINUTE, 1e-8, 2.5e-8, 1e-8, 2e-8, 1e300, None),
    ]
    assert (await copy_new_candles(db, columns(given), "bingx-rest")).inserted == 3
    stored = await read_candles(db, "BTC-USDT", "1m", 0, T0 + 2 * MINUTE)
    assert stored == given
    assert await db.fetchval("SELECT count(*) FROM candles WHERE source = 'bingx-rest'") == 3
