"""Which agent version is the champion of a pair and interval, and how it became so.

The champion is the version in status `promoted` whose training dataset is of that pair and interval.
Promotions and rollbacks of one scope are serialised by a transaction-scoped advisory lock, so two
operators cannot leave two champions; every change is recorded in `agent_promotions`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from storage.agents import VERSIONS_QUERY, AgentVersion, version_of

PROMOTABLE = ("trained", "evaluated", "retired")


class PromotionError(ValueError):
    """The version cannot be promoted, or there is nothing to roll back to."""


@dataclass(frozen=True)
class Promotion:
    id: uuid.UUID
    pair: str
    interval: str
    action: str
    agent_version_id: uuid.UUID
    previous_version_id: uuid.UUID | None
    evaluation_report_id: uuid.UUID | None
    gates: Sequence[Mapping[str, Any]]
    created_at: datetime


_CHAMPION = (
    VERSIONS_QUERY
    + """
    JOIN dataset_versions d ON d.id = v.dataset_version_id
    WHERE v.status = 'promoted' AND d.pair = $1 AND d.interval = $2
    """
)


class PromotionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def champion(self, pair: str, interval: str) -> AgentVersion | None:
        row = await self._pool.fetchrow(_CHAMPION, pair, interval)
        return version_of(row) if row is not None else None

    async def scopes(self) -> list[tuple[str, str]]:
        """The (pair, interval) scopes that have a champion."""
        rows = await self._pool.fetch(
            """
            SELECT DISTINCT d.pair, d.interval FROM agent_versions v
            JOIN dataset_versions d ON d.id = v.dataset_version_id
            WHERE v.status = 'promoted' ORDER BY d.pair, d.interval
            """
        )
        return [(row["pair"], row["interval"]) for row in rows]

    async def promote(
        self,
        version: AgentVersion,
        pair: str,
        interval: str,
        *,
        evaluation_report_id: uuid.UUID,
        gates: Sequence[Mapping[str, Any]],
        operator: str | None = None,
    ) -> AgentVersion | None:
        """Make `version` the champion; returns the champion it replaced (now `evaluated`)."""
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock(connection, pair, interval)
            current_row = await connection.fetchrow(_CHAMPION, pair, interval)
            current = version_of(current_row) if current_row is not None else None
            if current is not None and current.id == version.id:
                raise PromotionError(f"{version.agent} v{version.version} is already the champion of {pair} {interval}")
            if current is not None:
                await connection.execute("UPDATE agent_versions SET status = 'evaluated' WHERE id = $1", current.id)
            updated = await connection.execute(
                "UPDATE agent_versions SET status = 'promoted', promoted_at = now() "
                "WHERE id = $1 AND status = ANY($2::text[])",
                version.id,
                list(PROMOTABLE),
            )
            if updated != "UPDATE 1":
                raise PromotionError(f"{version.agent} v{version.version} is {version.status}; it cannot be promoted")
            await _record(
                connection,
                pair,
                interval,
                "promote",
                version.id,
                None if current is None else current.id,
                evaluation_report_id,
                gates,
                operator,
            )
        return current

    async def rollback(
        self, pair: str, interval: str, operator: str | None = None
    ) -> tuple[AgentVersion, AgentVersion]:
        """Return the scope to the version the champion's promotion replaced; the champion is retired.
        Returns (retired, restored)."""
        async with self._pool.acquire() as connection, connection.transaction():
            await _lock(connection, pair, interval)
            current_row = await connection.fetchrow(_CHAMPION, pair, interval)
            if current_row is None:
                raise PromotionError(f"{pair} {interval} has no promoted version to roll back")
            current = version_of(current_row)
            previous_id = await connection.fetchval(
                """
                SELECT previous_version_id FROM agent_promotions
                WHERE pair = $1 AND interval = $2 AND action = 'promote' AND agent_version_id = $3
                ORDER BY created_at DESC LIMIT 1
                """,
                pair,
                interval,
                current.id,
            )
            if previous_id is None:
                raise PromotionError(
                    f"{current.agent} v{current.version} was the first version promoted for {pair} {interval}: "
                    "there is no earlier one to return to"
                )
            await connection.execute("UPDATE agent_versions SET status = 'retired' WHERE id = $1", current.id)
            await connection.execute(
                "UPDATE agent_versions SET status = 'promoted', promoted_at = now() WHERE id = $1", previous_id
            )
            await _record(connection, pair, interval, "rollback", previous_id, current.id, None, (), operator)
            restored_row = await connection.fetchrow(VERSIONS_QUERY + " WHERE v.id = $1", previous_id)
        return current, version_of(restored_row)

    async def history(self, pair: str, interval: str) -> list[Promotion]:
        rows = await self._pool.fetch(
            "SELECT id, pair, interval, action, agent_version_id, previous_version_id, evaluation_report_id, gates, "
            "created_at FROM agent_promotions WHERE pair = $1 AND interval = $2 ORDER BY created_at DESC",
            pair,
            interval,
        )
        return [
            Promotion(
                row["id"],
                row["pair"],
                row["interval"],
                row["action"],
                row["agent_version_id"],
                row["previous_version_id"],
                row["evaluation_report_id"],
                row["gates"],
                row["created_at"],
            )
            for row in rows
        ]


async def _lock(connection: asyncpg.Connection, pair: str, interval: str) -> None:
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('promotion:' || $1 || ':' || $2))", pair, interval)


async def _record(
    connection: asyncpg.Connection,
    pair: str,
    interval: str,
    action: str,
    version_id: uuid.UUID,
    previous_id: uuid.UUID | None,
    report_id: uuid.UUID | None,
    gates: Sequence[Mapping[str, Any]],
    operator: str | None,
) -> None:
    await connection.execute(
        """
        INSERT INTO agent_promotions
            (pair, interval, action, agent_version_id, previous_version_id, evaluation_report_id, gates, operator)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
        """,
        pair,
        interval,
        action,
        version_id,
        previous_id,
        report_id,
        [dict(gate) for gate in gates],
        operator,
    )
