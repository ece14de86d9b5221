"""`operator_desired_states`: what the operator wants each pair of a run (and its account) to be.

The supervisor owns it: a command writes the desired state here first, then the actors are brought to
it. A pair without a row of its own follows the account's row (`ACCOUNT`); with neither, the risk
guard's own checkpoint stands (a run from before this table)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from domain.trading_state import TRADING_STATES, TradingState

ACCOUNT = "*"
"""The scope of the run's account-wide desired state (a command without a pair)."""


@dataclass(frozen=True)
class DesiredState:
    trading_state: TradingState
    reason: str | None = None
    """Why it is paused (None when ACTIVE)."""
    updated_at: datetime | None = None
    updated_by: str | None = None

    def __post_init__(self) -> None:
        if self.trading_state not in TRADING_STATES:
            raise ValueError(f"unknown trading state {self.trading_state!r}")
        if (self.trading_state == "ACTIVE") != (self.reason is None):
            raise ValueError("a paused desired state carries its reason, an ACTIVE one none")

    def to_json(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading_state,
            "reason": self.reason,
            "since": None if self.updated_at is None else self.updated_at.isoformat(),
            "by": self.updated_by,
        }


class DesiredStateStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def load(self, run_id: uuid.UUID) -> dict[str, DesiredState]:
        """Every scope's desired state for the run (pairs by name, the account under `ACCOUNT`)."""
        rows = await self._pool.fetch(
            "SELECT scope, trading_state, reason, updated_at, updated_by FROM operator_desired_states "
            "WHERE run_id = $1",
            run_id,
        )
        return {
            row["scope"]: DesiredState(row["trading_state"], row["reason"], row["updated_at"], row["updated_by"])
            for row in rows
        }

    async def save(
        self, run_id: uuid.UUID, states: Mapping[str, DesiredState], updated_by: str
    ) -> dict[str, DesiredState]:
        """Write the scopes' desired states in one transaction; what was stored (with its time)."""
        stored: dict[str, DesiredState] = {}
        async with self._pool.acquire() as connection, connection.transaction():
            for scope, state in states.items():
                row = await connection.fetchrow(
                    """
                    INSERT INTO operator_desired_states AS d (run_id, scope, trading_state, reason, updated_by)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (run_id, scope) DO UPDATE
                        SET trading_state = $3, reason = $4, updated_by = $5, updated_at = now()
                    RETURNING updated_at
                    """,
                    run_id,
                    scope,
                    state.trading_state,
                    state.reason,
                    updated_by,
                )
                assert row is not None
                stored[scope] = DesiredState(state.trading_state, state.reason, row["updated_at"], updated_by)
        return stored
