"""Candle storage: bulk idempotent writes, indexed range reads, and gap detection.

A write is one `INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT` statement: idempotent, one round
trip per batch, and it runs on every server we support (the PGlite TimescaleDB used in tests has no
`COPY FROM STDIN`). Writing a candle that is already stored with the same values
changes nothing; writing different values for a stored candle (a REST confirmation of a candle first
finalised from the websocket) replaces them, and the result counts it as `updated` so the caller can
log the drift. Rows must be valid already: the integrity step decides what may be written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import Candle, interval_ms, ms_to_datetime
from domain.market import Interval
from storage.copy_format import CANDLE_COPY_COLUMNS, candle_copy_payload
from storage.database import Database


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class ImportResult:
    """One series written by `import_candles`."""

    inserted: int
    updated: int
    """Stored from the same source with other values (a corrected file imported again)."""
    unchanged: int
    kept: int
    """Already stored from another source (the venue, another file): left as they were."""


@dataclass(frozen=True)
class SourceCount:
    """How many candles of a window one source wrote, and whether it is a registered test source."""

    source: str
    candles: int
    is_test: bool


FILE_SOURCE_PREFIX = "file:"
"""Candles imported from a file carry the source `file:NAME`; `data_source_configs` registers
(source 'file', name NAME) as a test source."""


@dataclass(frozen=True)
class Gap:
    """Missing candles: open times from `start_ms` up to (excluding) `end_ms`."""

    start_ms: int
    end_ms: int
    missing: int


async def write_candles(
    connection: asyncpg.Connection, candles: CandleColumns | Sequence[Candle], source: str
) -> WriteResult:
    """Upsert candles (any pairs and intervals; of several rows for one key the last given wins)."""
    groups = _column_groups(candles)
    if not groups:
        return WriteResult(0, 0, 0)
    if len(groups) == 1:
        return await _upsert(connection, groups[0], source)
    async with connection.transaction():
        results = [await _upsert(connection, group, source) for group in groups]
    return WriteResult(
        sum(r.inserted for r in results), sum(r.updated for r in results), sum(r.unchanged for r in results)
    )


async def _upsert(connection: asyncpg.Connection, candles: CandleColumns, source: str) -> WriteResult:
    batch = candles.sorted_unique()  # ON CONFLICT may touch a row only once per statement
    if len(batch) == 0:
        return WriteResult(0, 0, 0)
    rows = await connection.fetch(
        """
        INSERT INTO candles AS c (pair, interval, open_time, open, high, low, close, volume, quote_volume, source)
        SELECT $8, $9, 'epoch'::timestamptz + t.open_ms * interval '1 millisecond',
               t.open, t.high, t.low, t.close, t.volume, nullif(t.quote_volume, 'NaN'), $10
        FROM unnest($1::int8[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                    $7::float8[])
             AS t(open_ms, open, high, low, close, volume, quote_volume)
        ON CONFLICT (pair, interval, open_time) DO UPDATE
            SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
                volume = excluded.volume, quote_volume = excluded.quote_volume, source = excluded.source,
                ingested_at = now()
            WHERE (c.open, c.high, c.low, c.close, c.volume, c.quote_volume)
                  IS DISTINCT FROM
                  (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                   excluded.quote_volume)
        RETURNING (xmax = 0) AS inserted
        """,
        *_upsert_args(batch, source),
    )
    inserted = sum(1 for row in rows if row["inserted"])
    return WriteResult(inserted, len(rows) - inserted, len(batch) - len(rows))


def _column_groups(candles: CandleColumns | Sequence[Candle]) -> list[CandleColumns]:
    if isinstance(candles, CandleColumns):
        return [candles]
    by_series: dict[tuple[str, str], list[Candle]] = {}
    for candle in candles:
        by_series.setdefault((candle.pair, candle.interval), []).append(candle)
    return [CandleColumns.from_candles(group) for group in by_series.values()]


async def copy_new_candles(connection: asyncpg.Connection, candles: CandleColumns, source: str) -> WriteResult:
    """Write candles that cannot be stored yet (a backfill page below the earliest stored candle) with
    a binary `COPY`, the fastest path. If one is stored after all (a concurrent writer), the COPY
    fails as a whole and the idempotent `write_candles` runs instead."""
    batch = candles.sorted_unique()
    if len(batch) == 0:
        return WriteResult(0, 0, 0)
    payload = memoryview(candle_copy_payload(batch, source))  # bytes would be taken for a file path
    try:
        if connection.is_in_transaction():  # a savepoint keeps the caller's transaction usable
            async with connection.transaction():
                await connection.copy_to_table("candles", source=payload, columns=CANDLE_COPY_COLUMNS, format="binary")
        else:  # one statement: all rows or none, without the round trips of a transaction block
            await connection.copy_to_table("candles", source=payload, columns=CANDLE_COPY_COLUMNS, format="binary")
    except asyncpg.UniqueViolationError:
        return await write_candles(connection, batch, source)
    return WriteResult(len(batch), 0, 0)


async def read_candles(
    connection: asyncpg.Connection, pair: str, interval: Interval, start_ms: int, end_ms: int
) -> list[Candle]:
    """Candles with `start_ms <= open time < end_ms`, ascending (a primary-key range scan)."""
    return (await read_candle_columns(connection, pair, interval, start_ms, end_ms)).to_candles()


async def read_candle_columns(
    connection: asyncpg.Connection, pair: str, interval: Interval, start_ms: int, end_ms: int
) -> CandleColumns:
    """Candles with `start_ms <= open time < end_ms`, ascending, as columns (a primary-key range scan);
    a missing quote volume reads as NaN."""
    rows = await connection.fetch(
        """
        SELECT (extract(epoch FROM open_time) * 1000)::bigint, open, high, low, close, volume,
               coalesce(quote_volume, 'NaN')
        FROM candles
        WHERE pair = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4
        ORDER BY open_time
        """,
        pair,
        interval,
        ms_to_datetime(start_ms),
        ms_to_datetime(end_ms),
    )
    if not rows:
        return CandleColumns.empty(pair, interval)
    values = np.array([tuple(row)[1:] for row in rows], np.float64).T.copy()
    return CandleColumns(pair, interval, np.array([row[0] for row in rows], np.int64), *values)


async def stored_span(connection: asyncpg.Connection, pair: str, interval: Interval) -> tuple[int, int] | None:
    """Open times of the earliest and the latest stored candle, or None when there is none."""
    row = await connection.fetchrow(
        """
        SELECT (extract(epoch FROM min(open_time)) * 1000)::bigint AS first,
               (extract(epoch FROM max(open_time)) * 1000)::bigint AS last
        FROM candles WHERE pair = $1 AND interval = $2
        """,
        pair,
        interval,
    )
    if row is None or row["first"] is None:
        return None
    return int(row["first"]), int(row["last"])


async def find_gaps(
    connection: asyncpg.Connection, pair: str, interval: Interval, start_ms: int, end_ms: int
) -> list[Gap]:
    """Missing candles between `start_ms` and `end_ms` (open times on the interval grid), including a
    missing head (before the first stored candle) and tail (after the last)."""
    step = interval_ms(interval)
    start_ms -= start_ms % step
    rows = await connection.fetch(
        """
        SELECT (extract(epoch FROM open_time) * 1000)::bigint AS t,
               (extract(epoch FROM lead(open_time) OVER (ORDER BY open_time)) * 1000)::bigint AS next
        FROM candles
        WHERE pair = $1 AND interval = $2 AND open_time >= $3 AND open_time < $4
        ORDER BY open_time
        """,
        pair,
        interval,
        ms_to_datetime(start_ms),
        ms_to_datetime(end_ms),
    )
    gaps: list[Gap] = []
    if not rows:
        return [Gap(start_ms, end_ms, (end_ms - start_ms + step - 1) // step)] if end_ms > start_ms else []
    if rows[0]["t"] > start_ms:
        gaps.append(Gap(start_ms, rows[0]["t"], (rows[0]["t"] - start_ms) // step))
    for row in rows:
        following = row["next"] if row["next"] is not None else None
        if following is not None and following - row["t"] > step:
            gaps.append(Gap(row["t"] + step, following, (following - row["t"]) // step - 1))
    tail_start = rows[-1]["t"] + step
    if tail_start < end_ms:
        gaps.append(Gap(tail_start, end_ms, (end_ms - tail_start + step - 1) // step))
    return gaps


async def import_candles(
    connection: asyncpg.Connection, series: Sequence[CandleColumns], source: str, details: Mapping[str, object]
) -> list[ImportResult]:
    """Write imported candles (already valid) under `source` ('file:NAME') in one transaction, and
    register the source in `data_source_configs` as a test source with `details` merged into its
    settings. Idempotent: importing the same file again changes nothing. Candles stored from another
    source are never replaced; a candle of the same source with other values is."""
    if not source.startswith(FILE_SOURCE_PREFIX) or len(source) == len(FILE_SOURCE_PREFIX):
        raise ValueError(f"an imported source is named {FILE_SOURCE_PREFIX}NAME, not {source!r}")
    results = []
    async with connection.transaction():
        await connection.execute(
            """
            INSERT INTO data_source_configs (source, name, kind, is_test, settings)
            VALUES ('file', $1, 'market_data', true, $2::jsonb)
            ON CONFLICT (source, name) DO UPDATE
                SET is_test = true, settings = data_source_configs.settings || excluded.settings, updated_at = now()
            """,
            source[len(FILE_SOURCE_PREFIX) :],
            dict(details),
        )
        for columns in series:
            batch = columns.sorted_unique()
            if len(batch) == 0:
                results.append(ImportResult(0, 0, 0, 0))
                continue
            times = batch.open_time_ms.tolist()
            kept: int = await connection.fetchval(
                """
                SELECT count(*) FROM candles c
                JOIN unnest($1::int8[]) AS t(open_ms)
                     ON c.open_time = 'epoch'::timestamptz + t.open_ms * interval '1 millisecond'
                WHERE c.pair = $2 AND c.interval = $3 AND c.source <> $4
                """,
                times,
                batch.pair,
                batch.interval,
                source,
            )
            rows = await connection.fetch(
                """
                INSERT INTO candles AS c
                       (pair, interval, open_time, open, high, low, close, volume, quote_volume, source)
                SELECT $8, $9, 'epoch'::timestamptz + t.open_ms * interval '1 millisecond',
                       t.open, t.high, t.low, t.close, t.volume, nullif(t.quote_volume, 'NaN'), $10
                FROM unnest($1::int8[], $2::float8[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                            $7::float8[])
                     AS t(open_ms, open, high, low, close, volume, quote_volume)
                ON CONFLICT (pair, interval, open_time) DO UPDATE
                    SET open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
                        volume = excluded.volume, quote_volume = excluded.quote_volume, ingested_at = now()
                    WHERE c.source = excluded.source
                      AND (c.open, c.high, c.low, c.close, c.volume, c.quote_volume)
                          IS DISTINCT FROM
                          (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume,
                           excluded.quote_volume)
                RETURNING (xmax = 0) AS inserted
                """,
                *_upsert_args(batch, source),
            )
            inserted = sum(1 for row in rows if row["inserted"])
            updated = len(rows) - inserted
            results.append(ImportResult(inserted, updated, len(batch) - len(rows) - kept, kept))
    return results


async def window_sources(
    connection: asyncpg.Connection, pair: str, interval: Interval, start_ms: int, end_ms: int
) -> list[SourceCount]:
    """The sources of the stored candles with `start_ms <= open time < end_ms`, most candles first;
    `is_test` when `data_source_configs` registers the source as a test source (an imported file)."""
    rows = await connection.fetch(
        """
        SELECT c.source, count(*) AS candles, coalesce(bool_or(s.is_test), false) AS is_test
        FROM candles c
        LEFT JOIN data_source_configs s ON c.source = s.source || ':' || s.name
        WHERE c.pair = $1 AND c.interval = $2 AND c.open_time >= $3 AND c.open_time < $4
        GROUP BY c.source
        ORDER BY count(*) DESC, c.source
        """,
        pair,
        interval,
        ms_to_datetime(start_ms),
        ms_to_datetime(end_ms),
    )
    return [SourceCount(row["source"], int(row["candles"]), bool(row["is_test"])) for row in rows]


class CandleStore:
    """The candle operations on a database's pool, for callers outside `storage` (which never see
    a driver connection)."""

    def __init__(self, pool: asyncpg.Pool, *, copy_supported: bool = True) -> None:
        self._pool = pool
        self._copy_supported = copy_supported

    @classmethod
    def of(cls, database: Database) -> CandleStore:
        return cls(database.pool, copy_supported=database.copy_supported)

    async def write(self, candles: CandleColumns | Sequence[Candle], source: str) -> WriteResult:
        async with self._pool.acquire() as connection:
            return await write_candles(connection, candles, source)

    async def write_new(self, candles: CandleColumns, source: str) -> WriteResult:
        """Like `write`, faster for candles expected not to be stored yet (see `copy_new_candles`)."""
        async with self._pool.acquire() as connection:
            if self._copy_supported:
                return await copy_new_candles(connection, candles, source)
            return await write_candles(connection, candles, source)

    async def read(self, pair: str, interval: Interval, start_ms: int, end_ms: int) -> list[Candle]:
        async with self._pool.acquire() as connection:
            return await read_candles(connection, pair, interval, start_ms, end_ms)

    async def read_columns(self, pair: str, interval: Interval, start_ms: int, end_ms: int) -> CandleColumns:
        async with self._pool.acquire() as connection:
            return await read_candle_columns(connection, pair, interval, start_ms, end_ms)

    async def span(self, pair: str, interval: Interval) -> tuple[int, int] | None:
        async with self._pool.acquire() as connection:
            return await stored_span(connection, pair, interval)

    async def gaps(self, pair: str, interval: Interval, start_ms: int, end_ms: int) -> list[Gap]:
        async with self._pool.acquire() as connection:
            return await find_gaps(connection, pair, interval, start_ms, end_ms)

    async def import_series(
        self, series: Sequence[CandleColumns], source: str, details: Mapping[str, object]
    ) -> list[ImportResult]:
        """See `import_candles`."""
        async with self._pool.acquire() as connection:
            return await import_candles(connection, series, source, details)

    async def sources(self, pair: str, interval: Interval, start_ms: int, end_ms: int) -> list[SourceCount]:
        """See `window_sources`."""
        async with self._pool.acquire() as connection:
            return await window_sources(connection, pair, interval, start_ms, end_ms)


def _upsert_args(batch: CandleColumns, source: str) -> tuple[object, ...]:
    """The parameters $1..$10 of both candle upserts: the columns, then pair, interval and source."""
    return (
        batch.open_time_ms.tolist(),
        batch.open.tolist(),
        batch.high.tolist(),
        batch.low.tolist(),
        batch.close.tolist(),
        batch.volume.tolist(),
        batch.quote_volume.tolist(),
        batch.pair,
        batch.interval,
        source,
    )
