"""The venue's funding rates as runs pay them (`funding_rates`): the feed stores each funding time's
settled rate as it passes (`market_data.funding`), and execution reads the rates of the funding times
its positions were held through. The venue's first word for a funding time stands."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg

from domain.candles import datetime_to_ms, ms_to_datetime


class FundingRateStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def store(self, pair: str, rates: Sequence[tuple[int, Decimal]], source: str) -> int:
        """Store `(funding time, rate)` pairs not stored yet; how many were new."""
        if not rates:
            return 0
        async with self._pool.acquire() as connection:
            stored = await connection.fetch(
                """
                INSERT INTO funding_rates (pair, funding_time, rate, source)
                SELECT $1, t, r, $4 FROM unnest($2::timestamptz[], $3::numeric[]) AS u (t, r)
                ON CONFLICT DO NOTHING
                RETURNING 1
                """,
                pair,
                [ms_to_datetime(time_ms) for time_ms, _ in rates],
                [rate for _, rate in rates],
                source,
            )
        return len(stored)

    async def rates(self, pair: str, times_ms: Sequence[int]) -> dict[int, Decimal]:
        """The stored rates of these funding times, by time (a time not stored yet is absent)."""
        if not times_ms:
            return {}
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT funding_time, rate FROM funding_rates "
                "WHERE pair = $1 AND funding_time = ANY($2::timestamptz[])",
                pair,
                [ms_to_datetime(time_ms) for time_ms in times_ms],
            )
        return {datetime_to_ms(row["funding_time"]): Decimal(row["rate"]) for row in rows}

    async def missing(self, pair: str, times_ms: Sequence[int]) -> list[int]:
        """Which of these funding times have no stored rate yet."""
        known = await self.rates(pair, times_ms)
        return [time_ms for time_ms in times_ms if time_ms not in known]
