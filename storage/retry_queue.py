"""`retry_queue`: failed jobs wait here with exponential backoff until they succeed or run out of
attempts (then they are `dead`, and stay visible to the operator).

At most one live (pending or running) job exists per (kind, key): enqueueing the same job again
only refreshes its error. Claiming is `FOR UPDATE SKIP LOCKED`, so several workers never run one job
twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

JobStatus = Literal["pending", "running", "succeeded", "dead"]


@dataclass(frozen=True)
class RetryJob:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    last_error: str | None

    def summary(self) -> dict[str, Any]:
        """What operators are shown (the payload stays out)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "status": self.status,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
        }


def backoff_seconds(attempts: int, base: float = 30.0, cap: float = 3600.0) -> float:
    """30 s, 1 min, 2 min, ... capped at an hour."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


class RetryQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def enqueue(
        self,
        kind: str,
        key: str,
        payload: dict[str, Any],
        error: str,
        *,
        delay_sec: float = 30.0,
        max_attempts: int = 8,
    ) -> int:
        async with self._pool.acquire() as connection:
            job_id = await connection.fetchval(
                """
                INSERT INTO retry_queue (job_kind, job_key, payload, last_error, max_attempts, next_attempt_at)
                VALUES ($1, $2, $3::text::jsonb, $4, $5, now() + make_interval(secs => $6))
                ON CONFLICT (job_kind, job_key) WHERE status IN ('pending', 'running')
                DO UPDATE SET last_error = excluded.last_error, updated_at = now()
                RETURNING id
                """,
                kind,
                key,
                json.dumps(payload),
                error,
                max_attempts,
                delay_sec,
            )
        return int(job_id)

    async def claim_due(self, limit: int = 10) -> list[RetryJob]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                """
                UPDATE retry_queue SET status = 'running', attempts = attempts + 1, updated_at = now()
                WHERE id IN (
                    SELECT id FROM retry_queue WHERE status = 'pending' AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
                )
                RETURNING *
                """,
                limit,
            )
        return [_job(row) for row in rows]

    async def succeeded(self, job: RetryJob) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute(
                "UPDATE retry_queue SET status = 'succeeded', last_error = NULL, updated_at = now() WHERE id = $1",
                job.id,
            )

    async def failed(self, job: RetryJob, error: str) -> JobStatus:
        """Back off for another attempt, or give up (`dead`) once the attempts are used."""
        status: JobStatus = "dead" if job.attempts >= job.max_attempts else "pending"
        async with self._pool.acquire() as connection:
            await connection.execute(
                """
                UPDATE retry_queue
                SET status = $2, last_error = $3, updated_at = now(),
                    next_attempt_at = now() + make_interval(secs => $4)
                WHERE id = $1
                """,
                job.id,
                status,
                error,
                backoff_seconds(job.attempts),
            )
        return status

    async def jobs(self, statuses: tuple[JobStatus, ...] = ("pending", "running", "dead")) -> list[RetryJob]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                "SELECT * FROM retry_queue WHERE status = ANY($1::text[]) ORDER BY next_attempt_at, id",
                list(statuses),
            )
        return [_job(row) for row in rows]


def _job(row: asyncpg.Record) -> RetryJob:
    payload = row["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    return RetryJob(
        row["id"],
        row["job_kind"],
        row["job_key"],
        payload,
        row["status"],
        row["attempts"],
        row["max_attempts"],
        row["next_attempt_at"],
        row["last_error"],
    )
