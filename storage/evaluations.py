"""Evaluation reports: a row is written `running` before an evaluation starts and completed (metrics,
baselines, folds, report file) or failed (the error) when it ends, so an interrupted evaluation is
visible as such rather than missing."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

EvaluationKind = Literal["backtest", "walk_forward"]


@dataclass(frozen=True)
class EvaluationReport:
    id: uuid.UUID
    agent_version_id: uuid.UUID | None
    policy: str
    dataset_version_id: uuid.UUID | None
    kind: str
    status: str
    parameters: Mapping[str, Any]
    metrics: Mapping[str, Any]
    baselines: Mapping[str, Any]
    folds: Sequence[Mapping[str, Any]]
    code_version: str | None
    report_uri: str | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None


class EvaluationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(
        self,
        *,
        agent_version_id: uuid.UUID | None,
        policy: str,
        dataset_version_id: uuid.UUID,
        kind: EvaluationKind,
        parameters: Mapping[str, Any],
        code_version: str,
    ) -> uuid.UUID:
        report_id: uuid.UUID = await self._pool.fetchval(
            """
            INSERT INTO evaluation_reports
                (agent_version_id, policy, dataset_version_id, kind, parameters, code_version)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6)
            RETURNING id
            """,
            agent_version_id,
            policy,
            dataset_version_id,
            kind,
            dict(parameters),
            code_version,
        )
        return report_id

    async def complete(
        self,
        report_id: uuid.UUID,
        *,
        metrics: Mapping[str, Any],
        baselines: Mapping[str, Any],
        folds: Sequence[Mapping[str, Any]],
        report_uri: str | None,
    ) -> None:
        """Record the results; an evaluated agent version moves from `trained` to `evaluated` in the
        same transaction (a promoted one stays promoted)."""
        async with self._pool.acquire() as connection, connection.transaction():
            agent_version_id = await connection.fetchval(
                """
                UPDATE evaluation_reports
                SET status = 'completed', metrics = $2::jsonb, baselines = $3::jsonb, folds = $4::jsonb,
                    report_uri = $5, completed_at = now()
                WHERE id = $1 AND status = 'running'
                RETURNING agent_version_id
                """,
                report_id,
                dict(metrics),
                dict(baselines),
                [dict(fold) for fold in folds],
                report_uri,
            )
            if agent_version_id is not None:
                await connection.execute(
                    "UPDATE agent_versions SET status = 'evaluated' WHERE id = $1 AND status = 'trained'",
                    agent_version_id,
                )

    async def fail(self, report_id: uuid.UUID, error: str) -> None:
        await self._pool.execute(
            "UPDATE evaluation_reports SET status = 'failed', error = $2, completed_at = now() "
            "WHERE id = $1 AND status = 'running'",
            report_id,
            error,
        )

    async def get(self, report_id: uuid.UUID) -> EvaluationReport | None:
        row = await self._pool.fetchrow(_REPORTS + " WHERE id = $1", report_id)
        return _report(row) if row is not None else None

    async def reports(self, agent_version_id: uuid.UUID | None = None, limit: int = 50) -> list[EvaluationReport]:
        rows = await self._pool.fetch(
            _REPORTS + " WHERE $1::uuid IS NULL OR agent_version_id = $1 ORDER BY created_at DESC LIMIT $2",
            agent_version_id,
            limit,
        )
        return [_report(row) for row in rows]

    async def latest_walk_forward(
        self,
        agent_version_id: uuid.UUID,
        *,
        dataset_version_id: uuid.UUID | None = None,
        folds: Mapping[str, Any] | None = None,
    ) -> EvaluationReport | None:
        """The newest walk-forward evaluation of the version that completed, or failed (promotion reads
        the latest and refuses a failed one); narrowed to a dataset and a fold layout when given."""
        row = await self._pool.fetchrow(
            _REPORTS
            + """
            WHERE agent_version_id = $1 AND kind = 'walk_forward' AND status IN ('completed', 'failed')
              AND ($2::uuid IS NULL OR dataset_version_id = $2)
              AND ($3::jsonb IS NULL OR parameters -> 'layout' = $3::jsonb)
            ORDER BY created_at DESC LIMIT 1
            """,
            agent_version_id,
            dataset_version_id,
            None if folds is None else dict(folds),
        )
        return _report(row) if row is not None else None


_REPORTS = """
    SELECT id, agent_version_id, policy, dataset_version_id, kind, status, parameters, metrics, baselines, folds,
           code_version, report_uri, error, created_at, completed_at
    FROM evaluation_reports
"""


def _report(row: asyncpg.Record) -> EvaluationReport:
    return EvaluationReport(
        id=row["id"],
        agent_version_id=row["agent_version_id"],
        policy=row["policy"],
        dataset_version_id=row["dataset_version_id"],
        kind=row["kind"],
        status=row["status"],
        parameters=row["parameters"],
        metrics=row["metrics"],
        baselines=row["baselines"],
        folds=row["folds"],
        code_version=row["code_version"],
        report_uri=row["report_uri"],
        error=row["error"],
        created_at=row["created_at"],
        completed_at=row["completed_at"],
    )
