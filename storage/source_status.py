"""`data_source_status`: freshness and lag of each source, per pair and interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

SourceState = Literal["ok", "stale", "down", "disabled", "unknown"]


@dataclass(frozen=True)
class SourceStatus:
    source: str
    pair: str
    interval: str
    status: SourceState
    last_event_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: float | None
    last_error: str | None


class SourceStatusStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, status: SourceStatus) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute(
                """
                INSERT INTO data_source_status AS s
                    (source, pair, interval, status, last_event_at, last_success_at, lag_seconds, last_error,
                     updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
                ON CONFLICT (source, pair, interval) DO UPDATE SET
                    status = excluded.status,
                    last_event_at = COALESCE(excluded.last_event_at, s.last_event_at),
                    last_success_at = COALESCE(excluded.last_success_at, s.last_success_at),
                    lag_seconds = COALESCE(excluded.lag_seconds, s.lag_seconds),
                    last_error = excluded.last_error,
                    updated_at = now()
                """,
                status.source,
                status.pair,
                status.interval,
                status.status,
                status.last_event_at,
                status.last_success_at,
                status.lag_seconds,
                status.last_error,
            )

    async def all(self) -> list[SourceStatus]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT source, pair, interval, status, last_event_at, last_success_at, lag_seconds, last_error "
                "FROM data_source_status ORDER BY source, pair, interval"
            )
        return [SourceStatus(**dict(row)) for row in rows]
