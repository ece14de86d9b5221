"""Runs (`agent_runs`): one active run at a time, what it holds per pair, and stopping it by the rule
for its positions (refused, kept for the next run on the pair, or flat with its working orders
cancelled).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from storage.checkpoints import HANDOVER_ROLE, execution_key, handover_key
from storage.records import Mode

RunStatus = Literal["starting", "running", "paused", "stopped", "failed"]


class RunConflictError(ValueError):
    """Another run is active: one run trades at a time."""


WORKING_STATES = ("intent", "submitted", "accepted", "partially_filled", "cancel_requested", "unknown")
STOPPED_BY_RUN = "run_stopped"
"""The reason recorded on the working orders and trades a stopped run cancels."""


@dataclass(frozen=True)
class Holding:
    """What a run holds on one pair, from its recorded executions and trades."""

    pair: str
    position: Decimal
    """Signed: the sum of the run's fills (positive long)."""
    working_orders: tuple[str, ...]
    """Client order ids not in a final state."""
    open_trades: tuple[uuid.UUID, ...]

    @property
    def is_open(self) -> bool:
        return self.position != 0

    def describe(self) -> str:
        side = "long" if self.position > 0 else "short"
        trades = ", ".join(str(t) for t in self.open_trades) or "-"
        return f"{self.pair} {side} {abs(self.position)} (trade {trades})"

    def to_json(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "position": str(self.position),
            "working_orders": list(self.working_orders),
            "open_trades": [str(t) for t in self.open_trades],
        }


@dataclass(frozen=True)
class Handover:
    """A position a stopped run left for the next run on its pair (`runs stop --keep`)."""

    pair: str
    from_run: uuid.UUID
    position: str
    trades: tuple[str, ...]
    reason: str | None
    stopped_at: str


class OpenPositionsError(RuntimeError):
    """A run holding positions is stopped only with a rule for them (flatten or keep)."""

    def __init__(self, run_id: uuid.UUID, holdings: Sequence[Holding]) -> None:
        self.run_id = run_id
        self.holdings = tuple(holdings)
        super().__init__(f"run {run_id} holds {'; '.join(h.describe() for h in self.holdings)}")


class RunNotActiveError(RuntimeError):
    """The run is not active (stopped or failed before), or does not exist."""


@dataclass(frozen=True)
class StoppedRun:
    run: Run
    holdings: tuple[Holding, ...]
    """What the run held when it stopped (pairs with a position, working orders or an open trade)."""
    kept: tuple[str, ...]
    """Pairs whose position was handed over to the next run on the pair."""
    cancelled_orders: tuple[str, ...]
    """Working orders of flat pairs, cancelled with the run."""

    def positions(self) -> dict[str, dict[str, Any]]:
        """Per pair, what happened to it: for the `run_stopped` event."""
        outcome: dict[str, dict[str, Any]] = {}
        for holding in self.holdings:
            if holding.pair in self.kept:
                done = "kept"
            elif holding.working_orders:
                done = "orders_cancelled"
            else:
                done = "flat"
            outcome[holding.pair] = {**holding.to_json(), "outcome": done}
        return outcome


@dataclass(frozen=True)
class Run:
    id: uuid.UUID
    agent_version_id: uuid.UUID | None
    baseline_policy: str | None
    mode: Mode
    status: RunStatus
    pairs: tuple[str, ...]
    interval: str
    feature_set: str
    decision_threshold: float
    risk_limit_set_id: uuid.UUID | None
    settings: Mapping[str, Any]
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None

    @property
    def policy(self) -> str:
        return f"agent:{self.agent_version_id}" if self.agent_version_id else f"baseline:{self.baseline_policy}"


@dataclass(frozen=True)
class PaperRecord:
    decisions: int
    days: float
    """The span of candles decided, in days (market time)."""
    breaker_trips: int


_RUN_COLUMNS = (
    "id, agent_version_id, baseline_policy, mode, status, pairs, interval, feature_set, decision_threshold, "
    "risk_limit_set_id, settings, started_at, stopped_at, stop_reason"
)


def _run(row: asyncpg.Record) -> Run:
    values = dict(row)
    values["pairs"] = tuple(values["pairs"])
    values["decision_threshold"] = float(values["decision_threshold"])
    return Run(**values)


class RunStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def active(self) -> Run | None:
        row = await self._pool.fetchrow(
            f"SELECT {_RUN_COLUMNS} FROM agent_runs WHERE status IN ('starting', 'running', 'paused')"
        )
        return None if row is None else _run(row)

    async def get(self, run_id: uuid.UUID) -> Run | None:
        row = await self._pool.fetchrow(f"SELECT {_RUN_COLUMNS} FROM agent_runs WHERE id = $1", run_id)
        return None if row is None else _run(row)

    async def runs(self, limit: int = 20) -> list[Run]:
        rows = await self._pool.fetch(f"SELECT {_RUN_COLUMNS} FROM agent_runs ORDER BY started_at DESC LIMIT $1", limit)
        return [_run(row) for row in rows]

    async def start(
        self,
        *,
        pairs: Sequence[str],
        interval: str,
        feature_set: str,
        decision_threshold: float,
        settings: Mapping[str, Any],
        mode: Mode = "paper",
        agent_version_id: uuid.UUID | None = None,
        baseline_policy: str | None = None,
        risk_limit_set_id: uuid.UUID | None = None,
    ) -> Run:
        try:
            row = await self._pool.fetchrow(
                f"""
                INSERT INTO agent_runs (agent_version_id, baseline_policy, mode, status, pairs, interval, feature_set,
                                        decision_threshold, risk_limit_set_id, settings)
                VALUES ($1, $2, $3, 'starting', $4, $5, $6, $7, $8, $9)
                RETURNING {_RUN_COLUMNS}
                """,
                agent_version_id,
                baseline_policy,
                mode,
                list(pairs),
                interval,
                feature_set,
                decision_threshold,
                risk_limit_set_id,
                dict(settings),
            )
        except asyncpg.UniqueViolationError:
            active = await self.active()
            raise RunConflictError(f"run {active.id if active else '?'} is active; stop it first") from None
        assert row is not None
        return _run(row)

    async def holdings(self, run_id: uuid.UUID, connection: asyncpg.Connection | None = None) -> list[Holding]:
        """Per pair the run has orders or trades on: its position (the sum of its fills), its working
        orders and its open trades; pairs with none of these are left out."""
        db: Any = connection if connection is not None else self._pool
        rows = await db.fetch(
            """
            SELECT pair,
                   coalesce(sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END), 0) AS position,
                   coalesce(array_agg(client_order_id ORDER BY created_at, client_order_id)
                            FILTER (WHERE state = ANY($2::text[])), '{}') AS working
            FROM trade_executions WHERE run_id = $1 GROUP BY pair
            """,
            run_id,
            list(WORKING_STATES),
        )
        trades = await db.fetch(
            "SELECT pair, id FROM trades WHERE run_id = $1 AND status IN ('open', 'closing') ORDER BY opened_at, id",
            run_id,
        )
        found: dict[str, Holding] = {}
        for row in rows:
            found[row["pair"]] = Holding(row["pair"], row["position"], tuple(row["working"]), ())
        for row in trades:
            held = found.get(row["pair"], Holding(row["pair"], Decimal(0), (), ()))
            found[row["pair"]] = Holding(held.pair, held.position, held.working_orders, (*held.open_trades, row["id"]))
        return [
            h for h in sorted(found.values(), key=lambda h: h.pair) if h.position or h.working_orders or h.open_trades
        ]

    async def handovers(self) -> list[Handover]:
        """Positions stopped runs left for the next run on their pair, not adopted yet."""
        rows = await self._pool.fetch(
            "SELECT pair, state FROM actor_checkpoints WHERE role = $1 ORDER BY pair", HANDOVER_ROLE
        )
        return [
            Handover(
                row["pair"],
                uuid.UUID(row["state"]["from_run"]),
                row["state"]["position"],
                tuple(row["state"]["trades"]),
                row["state"].get("reason"),
                row["state"]["stopped_at"],
            )
            for row in rows
        ]

    async def stop(self, run_id: uuid.UUID, reason: str, *, keep: bool = False) -> StoppedRun:
        """Stop an active run, in one transaction, by the rule for its positions:

        - a pair with a position: refused (`OpenPositionsError`, nothing changes) unless `keep`, which
          hands the pair's execution checkpoint (position, open trade, working orders) over to the next
          run on the pair (`TradingJournal.adopt`);
        - a flat pair's working orders (an opening order not filled yet) are cancelled, and their trades
          with them (reason `run_stopped`).

        Every execution checkpoint of the run is fenced, so an actor of the run still alive somewhere
        can write nothing more. Raises `RunNotActiveError` for a run that is not active."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(f"SELECT {_RUN_COLUMNS} FROM agent_runs WHERE id = $1 FOR UPDATE", run_id)
            if row is None:
                raise RunNotActiveError(f"no run {run_id}")
            run = _run(row)
            if run.status not in ("starting", "running", "paused"):
                raise RunNotActiveError(f"run {run_id} is {run.status} already")
            holdings = await self.holdings(run_id, connection)
            open_ = [h for h in holdings if h.is_open]
            if open_ and not keep:
                raise OpenPositionsError(run_id, open_)
            await connection.execute(
                "UPDATE actor_checkpoints SET fence = fence + 1, updated_at = now() WHERE actor_key = ANY($1::text[])",
                [execution_key(run_id, pair) for pair in run.pairs],
            )
            kept: list[str] = []
            cancelled: list[str] = []
            for holding in holdings:
                if holding.is_open:
                    await self._hand_over(connection, run, holding, reason)
                    kept.append(holding.pair)
                else:
                    cancelled.extend(await self._cancel_working(connection, run_id, holding.pair))
            await connection.execute(
                "UPDATE agent_runs SET status = 'stopped', stopped_at = now(), stop_reason = $2, updated_at = now() "
                "WHERE id = $1",
                run_id,
                reason,
            )
            stopped = await connection.fetchrow(f"SELECT {_RUN_COLUMNS} FROM agent_runs WHERE id = $1", run_id)
        assert stopped is not None
        return StoppedRun(_run(stopped), tuple(holdings), tuple(kept), tuple(cancelled))

    @staticmethod
    async def _hand_over(connection: asyncpg.Connection, run: Run, holding: Holding, reason: str) -> None:
        state = await connection.fetchval(
            "SELECT state FROM actor_checkpoints WHERE actor_key = $1", execution_key(run.id, holding.pair)
        )
        if not state or "book" not in state:
            raise RuntimeError(f"run {run.id} has no execution checkpoint for {holding.pair}: nothing to hand over")
        inserted = await connection.fetchval(
            """
            INSERT INTO actor_checkpoints (actor_key, role, pair, state_version, sequence, state, fence)
            VALUES ($1, $2, $3, 1, 0, $4, 0) ON CONFLICT (actor_key) DO NOTHING RETURNING 1
            """,
            handover_key(holding.pair),
            HANDOVER_ROLE,
            holding.pair,
            {
                "from_run": str(run.id),
                "reason": reason,
                "position": str(holding.position),
                "trades": [str(t) for t in holding.open_trades],
                "stopped_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "checkpoint": dict(state),
            },
        )
        if inserted is None:
            raise RuntimeError(f"a position on {holding.pair} handed over by an earlier run waits for adoption already")

    @staticmethod
    async def _cancel_working(connection: asyncpg.Connection, run_id: uuid.UUID, pair: str) -> list[str]:
        rows = await connection.fetch(
            """
            WITH doomed AS (
                SELECT id, state FROM trade_executions
                WHERE run_id = $1 AND pair = $2 AND state = ANY($3::text[]) FOR UPDATE
            )
            UPDATE trade_executions e SET state = 'cancelled', updated_at = now() FROM doomed
            WHERE e.id = doomed.id
            RETURNING e.id, e.client_order_id, doomed.state AS before
            """,
            run_id,
            pair,
            list(WORKING_STATES),
        )
        await connection.executemany(
            "INSERT INTO trade_state_events (execution_id, from_state, to_state, reason) "
            "VALUES ($1, $2, 'cancelled', $3)",
            [(row["id"], row["before"], STOPPED_BY_RUN) for row in rows],
        )
        await connection.execute(
            """
            UPDATE trades SET status = 'cancelled', close_reason = $3, closed_at = now(), updated_at = now()
            WHERE run_id = $1 AND pair = $2 AND status IN ('open', 'closing')
            """,
            run_id,
            pair,
            STOPPED_BY_RUN,
        )
        return sorted(row["client_order_id"] for row in rows)

    async def set_mode(self, run_id: uuid.UUID, mode: Mode, reason: str) -> None:
        """Switch a run between paper and live; each switch is kept in its settings (`mode_changes`)."""
        await self._pool.execute(
            """
            UPDATE agent_runs SET mode = $2, updated_at = now(),
                settings = settings || jsonb_build_object('mode_changes',
                    coalesce(settings->'mode_changes', '[]'::jsonb)
                    || jsonb_build_array(jsonb_build_object('mode', $2::text, 'at', now(), 'reason', $3::text)))
            WHERE id = $1
            """,
            run_id,
            mode,
            reason,
        )

    async def paper_record(self, run_id: uuid.UUID) -> PaperRecord:
        """What a run did on paper: its decisions, the span they cover, and the circuit breaker's trips
        (`account_halted` alerts for it) since the run started."""
        row = await self._pool.fetchrow(
            """
            SELECT (SELECT count(*) FROM trade_decisions d WHERE d.run_id = r.id) AS decisions,
                   (SELECT min(candle_open_time) FROM trade_decisions d WHERE d.run_id = r.id) AS first,
                   (SELECT max(candle_open_time) FROM trade_decisions d WHERE d.run_id = r.id) AS last,
                   (SELECT count(*) FROM alerts a WHERE a.kind = 'account_halted' AND a.raised_at >= r.started_at
                        AND a.details->>'reason' = 'circuit_breaker') AS breaker_trips
            FROM agent_runs r WHERE r.id = $1
            """,
            run_id,
        )
        if row is None:
            raise KeyError(f"no run {run_id}")
        span = 0.0 if row["first"] is None else (row["last"] - row["first"]).total_seconds() / 86_400
        return PaperRecord(int(row["decisions"]), span, int(row["breaker_trips"]))

    async def set_status(self, run_id: uuid.UUID, status: RunStatus, reason: str | None = None) -> None:
        await self._pool.execute(
            """
            UPDATE agent_runs SET status = $2, updated_at = now(),
                paused_at = CASE WHEN $2 = 'paused' THEN now() ELSE paused_at END,
                stopped_at = CASE WHEN $2 IN ('stopped', 'failed') THEN now() ELSE stopped_at END,
                stop_reason = CASE WHEN $2 IN ('stopped', 'failed') THEN $3 ELSE stop_reason END
            WHERE id = $1
            """,
            run_id,
            status,
            reason,
        )
