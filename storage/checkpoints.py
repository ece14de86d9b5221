"""Actor checkpoints (`actor_checkpoints`): one row per actor key, its state document and version, and
a fencing token so that only the newest instance of an actor writes. Every role saves its state
through `ActorState`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from storage.records import Checkpoint


class FencedError(RuntimeError):
    """A newer instance of this actor has claimed its checkpoint: this one must stop writing."""


HANDOVER_ROLE = "handover"


def execution_key(run_id: uuid.UUID, pair: str) -> str:
    """The execution actor's checkpoint key (`trading.context.PairContext.actor_key`)."""
    return f"execution:{run_id}:{pair}"


def handover_key(pair: str) -> str:
    """Where a stopped run leaves a pair's position (its execution checkpoint) for the next run on the pair."""
    return f"{HANDOVER_ROLE}:{pair}"


class CheckpointStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, actor_key: str) -> Checkpoint | None:
        row = await self._pool.fetchrow(
            "SELECT actor_key, role, pair, state_version, sequence, state, fence FROM actor_checkpoints "
            "WHERE actor_key = $1",
            actor_key,
        )
        return None if row is None else Checkpoint(**dict(row))

    async def claim(self, actor_key: str, role: str, pair: str | None) -> int:
        """Take over a checkpoint key: its fencing token goes up by one, and writes carrying an older
        token are refused from now on."""
        fence: int = await self._pool.fetchval(
            """
            INSERT INTO actor_checkpoints (actor_key, role, pair, state_version, sequence, state, fence)
            VALUES ($1, $2, $3, 1, 0, '{}'::jsonb, 1)
            ON CONFLICT (actor_key) DO UPDATE SET fence = actor_checkpoints.fence + 1, updated_at = now()
            RETURNING fence
            """,
            actor_key,
            role,
            pair,
        )
        return fence

    async def save(self, checkpoint: Checkpoint, connection: asyncpg.Connection | None = None) -> None:
        """Upsert; with a fence, only while the stored token is still this writer's (else FencedError)."""
        query = """
            INSERT INTO actor_checkpoints AS c (actor_key, role, pair, state_version, sequence, state, fence,
                                               updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, COALESCE($7, 0), now())
            ON CONFLICT (actor_key) DO UPDATE SET role = excluded.role, pair = excluded.pair,
                state_version = excluded.state_version, sequence = excluded.sequence, state = excluded.state,
                updated_at = now()
            WHERE $7::bigint IS NULL OR c.fence = $7::bigint
            RETURNING 1
        """
        args = (
            checkpoint.actor_key,
            checkpoint.role,
            checkpoint.pair,
            checkpoint.state_version,
            checkpoint.sequence,
            dict(checkpoint.state),
            checkpoint.fence,
        )
        if connection is not None:
            written = await connection.fetchval(query, *args)
        else:
            written = await self._pool.fetchval(query, *args)
        if written is None:
            raise FencedError(f"{checkpoint.actor_key} was claimed by a newer instance (fence {checkpoint.fence})")


class ActorState:
    """The one way an actor saves and loads its state: a versioned JSON document under the actor's key.

    Every role's core exposes `to_json()` (the document) and `restore(document)`; its shell loads the
    document here at start and saves it here (or hands `checkpoint(...)` to a transaction that writes
    it with other rows, as execution does with its journal commit). A stored document of another
    version is refused, never half-read. `claim()` first makes this instance the only writer."""

    def __init__(self, store: CheckpointStore, actor_key: str, role: str, pair: str | None, version: int) -> None:
        self.store = store
        self.actor_key = actor_key
        self.role = role
        self.pair = pair
        self.version = version
        self.fence: int | None = None

    async def claim(self) -> int:
        """Fence off every older instance of this actor: their writes are refused from now on."""
        self.fence = await self.store.claim(self.actor_key, self.role, self.pair)
        return self.fence

    async def load(self) -> Checkpoint | None:
        """The saved document (None when nothing was saved yet); ValueError for another version."""
        saved = await self.store.load(self.actor_key)
        if saved is None or not saved.state:
            return None
        if saved.state_version != self.version:
            raise ValueError(
                f"{self.actor_key}: saved state version {saved.state_version} is not {self.version}; "
                "it cannot be restored"
            )
        return saved

    def checkpoint(self, state: Mapping[str, Any], sequence: int = 0) -> Checkpoint:
        return Checkpoint(self.actor_key, self.role, self.pair, self.version, max(sequence, 0), state, self.fence)

    async def save(self, state: Mapping[str, Any], sequence: int = 0) -> None:
        await self.store.save(self.checkpoint(state, sequence))
