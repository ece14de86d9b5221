"""Agent configurations, agent versions with their lineage, and model artifacts.

Artifacts live in the database (`db://model_artifacts/<id>`, the bytes in the row) or as files under
the data directory (`file://...`); either way the row holds the SHA-256 the loader verifies.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg

ArtifactStore = Literal["database", "file"]


class AgentExistsError(ValueError):
    """An agent configuration of that name exists; configurations are immutable once versions refer to them."""


@dataclass(frozen=True)
class StoredAgent:
    id: uuid.UUID
    name: str
    algorithm: str
    feature_set: str
    decision_threshold: float
    sections: Mapping[str, Any]
    """hyperparameters, environment, reward, promotion_gates, search: the JSON documents as stored."""
    created_at: datetime


@dataclass(frozen=True)
class AgentVersion:
    id: uuid.UUID
    agent_id: uuid.UUID
    agent: str
    version: int
    status: str
    dataset_version_id: uuid.UUID | None
    feature_set_version_id: uuid.UUID | None
    feature_set: str | None
    parent_version_id: uuid.UUID | None
    training_metrics: Mapping[str, Any]
    code_version: str | None
    checkpoint_path: str | None
    iterations_done: int
    promoted_at: datetime | None
    created_at: datetime
    artifact_id: uuid.UUID | None
    artifact_uri: str | None
    artifact_checksum: str | None

    def to_json(self) -> dict[str, Any]:
        """The version with its lineage, as commands print it and evaluations record it."""
        return {
            "agent": self.agent,
            "version": self.version,
            "id": str(self.id),
            "status": self.status,
            "dataset_id": _text(self.dataset_version_id),
            "feature_set": self.feature_set,
            "parent_version_id": _text(self.parent_version_id),
            "artifact_uri": self.artifact_uri,
            "artifact_checksum": self.artifact_checksum,
            "iterations_done": self.iterations_done,
            "code_version": self.code_version,
            "promoted_at": None if self.promoted_at is None else self.promoted_at.isoformat(),
            "created_at": self.created_at.isoformat(),
            "training_metrics": dict(self.training_metrics),
        }


@dataclass(frozen=True)
class StoredArtifact:
    id: uuid.UUID
    agent_version_id: uuid.UUID
    uri: str
    format: str
    checksum: str
    feature_schema_hash: str
    content: bytes


class AgentStore:
    def __init__(self, pool: asyncpg.Pool, artifact_dir: Path | None = None) -> None:
        self._pool = pool
        self._artifact_dir = artifact_dir

    async def create(
        self, name: str, algorithm: str, feature_set: str, decision_threshold: float, sections: Mapping[str, Any]
    ) -> uuid.UUID:
        async with self._pool.acquire() as connection:
            created: uuid.UUID | None = await connection.fetchval(
                """
                INSERT INTO agent_configurations
                    (name, algorithm, feature_set, decision_threshold, hyperparameters, environment, reward,
                     promotion_gates, search)
                VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8::jsonb, $9::jsonb)
                ON CONFLICT (name) DO NOTHING
                RETURNING id
                """,
                name,
                algorithm,
                feature_set,
                decision_threshold,
                *(sections[key] for key in ("hyperparameters", "environment", "reward", "promotion_gates")),
                sections.get("search", {}),
            )
        if created is None:
            raise AgentExistsError(f"an agent configuration named {name!r} exists")
        return created

    async def get(self, name: str) -> StoredAgent | None:
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(_AGENTS + " WHERE name = $1", name)
        return _agent(row) if row is not None else None

    async def agents(self) -> list[StoredAgent]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(_AGENTS + " ORDER BY name")
        return [_agent(row) for row in rows]

    async def training_version(self, agent_id: uuid.UUID, dataset_id: uuid.UUID) -> AgentVersion | None:
        """The unfinished training of this agent on this dataset, if one was interrupted."""
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                VERSIONS_QUERY
                + " WHERE v.agent_configuration_id = $1 AND v.dataset_version_id = $2 AND v.status = 'training'",
                agent_id,
                dataset_id,
            )
        return version_of(row) if row is not None else None

    async def start_version(
        self, agent_id: uuid.UUID, dataset_id: uuid.UUID, feature_set_version_id: uuid.UUID, code_version: str
    ) -> AgentVersion:
        """A new version in status `training`, numbered after the agent's last one."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT 1 FROM agent_configurations WHERE id = $1 FOR UPDATE", agent_id)
            version_id: uuid.UUID = await connection.fetchval(
                """
                INSERT INTO agent_versions
                    (agent_configuration_id, version, status, dataset_version_id, feature_set_version_id,
                     code_version)
                SELECT $1, COALESCE(max(version), 0) + 1, 'training', $2, $3, $4
                FROM agent_versions WHERE agent_configuration_id = $1
                RETURNING id
                """,
                agent_id,
                dataset_id,
                feature_set_version_id,
                code_version,
            )
        found = await self.version(version_id)
        assert found is not None
        return found

    async def record_progress(
        self, version_id: uuid.UUID, iterations_done: int, checkpoint_path: str | None, metrics: Mapping[str, Any]
    ) -> None:
        async with self._pool.acquire() as connection:
            await connection.execute(
                "UPDATE agent_versions SET iterations_done = $2, checkpoint_path = $3, training_metrics = $4::jsonb "
                "WHERE id = $1 AND status = 'training'",
                version_id,
                iterations_done,
                checkpoint_path,
                metrics,
            )

    async def finish_version(
        self,
        version_id: uuid.UUID,
        metrics: Mapping[str, Any],
        *,
        content: bytes,
        artifact_format: str,
        checksum: str,
        feature_schema_hash: str,
        normalization: Mapping[str, Any],
        metadata: Mapping[str, Any],
        store: ArtifactStore,
    ) -> uuid.UUID:
        """Record the artifact and mark the version trained, in one transaction (a file is written
        first, so a row never points at a file that is not there)."""
        artifact_id = uuid.uuid4()
        if store == "file":
            if self._artifact_dir is None:
                raise ValueError("file artifacts need an artifact directory")
            self._artifact_dir.mkdir(parents=True, exist_ok=True)
            path = self._artifact_dir / f"{artifact_id}.policy"
            path.write_bytes(content)
            uri, stored = path.resolve().as_uri(), None
        else:
            uri, stored = f"db://model_artifacts/{artifact_id}", content
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                """
                INSERT INTO model_artifacts
                    (id, agent_version_id, uri, content, format, checksum_sha256, size_bytes, feature_schema_hash,
                     normalization, metadata)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)
                """,
                artifact_id,
                version_id,
                uri,
                stored,
                artifact_format,
                checksum,
                len(content),
                feature_schema_hash,
                normalization,
                metadata,
            )
            updated = await connection.execute(
                "UPDATE agent_versions SET status = 'trained', training_metrics = $2::jsonb "
                "WHERE id = $1 AND status = 'training'",
                version_id,
                metrics,
            )
            if updated != "UPDATE 1":
                raise ValueError(f"agent version {version_id} is not training")
        return artifact_id

    async def version(self, version_id: uuid.UUID) -> AgentVersion | None:
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(VERSIONS_QUERY + " WHERE v.id = $1", version_id)
        return version_of(row) if row is not None else None

    async def versions(self, agent: str | None = None) -> list[AgentVersion]:
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(
                VERSIONS_QUERY + " WHERE $1::text IS NULL OR a.name = $1 ORDER BY a.name, v.version", agent
            )
        return [version_of(row) for row in rows]

    async def artifact_normalization(self, artifact_id: uuid.UUID) -> dict[str, object] | None:
        """The normalisation statistics stored with an artifact (the quality gate's reference)."""
        value = await self._pool.fetchval("SELECT normalization FROM model_artifacts WHERE id = $1", artifact_id)
        return dict(value) if value else None

    async def artifact(self, version_id: uuid.UUID) -> StoredArtifact | None:
        """The newest artifact of a version, its bytes read from the row or the file."""
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(
                "SELECT id, agent_version_id, uri, content, format, checksum_sha256, feature_schema_hash "
                "FROM model_artifacts WHERE agent_version_id = $1 ORDER BY created_at DESC LIMIT 1",
                version_id,
            )
        if row is None:
            return None
        uri: str = row["uri"]
        content = bytes(row["content"]) if row["content"] is not None else _read_file_uri(uri)
        return StoredArtifact(
            row["id"],
            row["agent_version_id"],
            uri,
            row["format"],
            row["checksum_sha256"],
            row["feature_schema_hash"],
            content,
        )


def _read_file_uri(uri: str) -> bytes:
    if not uri.startswith("file://"):
        raise ValueError(f"artifact URI {uri} has no content in the database and is not a file")
    path = Path(uri.removeprefix("file://"))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"the artifact file {path} is missing") from None


_AGENTS = """
    SELECT id, name, algorithm, feature_set, decision_threshold, hyperparameters, environment, reward,
           promotion_gates, search, created_at
    FROM agent_configurations
"""

VERSIONS_QUERY = """
    SELECT v.id, v.agent_configuration_id, a.name AS agent, v.version, v.status, v.dataset_version_id,
           v.feature_set_version_id, f.name AS feature_set, v.parent_version_id, v.training_metrics,
           v.code_version, v.checkpoint_path, v.iterations_done, v.promoted_at, v.created_at,
           m.id AS artifact_id, m.uri AS artifact_uri, m.checksum_sha256 AS artifact_checksum
    FROM agent_versions v
    JOIN agent_configurations a ON a.id = v.agent_configuration_id
    LEFT JOIN feature_set_versions f ON f.id = v.feature_set_version_id
    LEFT JOIN LATERAL (
        SELECT id, uri, checksum_sha256 FROM model_artifacts WHERE agent_version_id = v.id
        ORDER BY created_at DESC LIMIT 1
    ) m ON true
"""


def _agent(row: asyncpg.Record) -> StoredAgent:
    return StoredAgent(
        row["id"],
        row["name"],
        row["algorithm"],
        row["feature_set"],
        float(row["decision_threshold"]),
        {key: row[key] for key in ("hyperparameters", "environment", "reward", "promotion_gates", "search")},
        row["created_at"],
    )


def version_of(row: asyncpg.Record) -> AgentVersion:
    return AgentVersion(
        id=row["id"],
        agent_id=row["agent_configuration_id"],
        agent=row["agent"],
        version=row["version"],
        status=row["status"],
        dataset_version_id=row["dataset_version_id"],
        feature_set_version_id=row["feature_set_version_id"],
        feature_set=row["feature_set"],
        parent_version_id=row["parent_version_id"],
        training_metrics=row["training_metrics"],
        code_version=row["code_version"],
        checkpoint_path=row["checkpoint_path"],
        iterations_done=row["iterations_done"],
        promoted_at=row["promoted_at"],
        created_at=row["created_at"],
        artifact_id=row["artifact_id"],
        artifact_uri=row["artifact_uri"],
        artifact_checksum=row["artifact_checksum"],
    )


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
