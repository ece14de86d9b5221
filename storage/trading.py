"""Runs, decisions, orders, trades and actor checkpoints: what the daemon's actors write.

Execution records a whole decision in one transaction (`TradingJournal.commit`): the fills it caused
at this candle's open, the decision with its provenance snapshot, the order intents, the trades, and
the execution actor's checkpoint. The decision's primary key (run, pair, interval, candle) makes the
commit idempotent: a decision already recorded is refused as a whole, so no candle is decided twice
and no order intent is written twice, whatever a restart re-sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from domain.candles import ms_to_datetime
from domain.orders import OrderState

RunStatus = Literal["starting", "running", "paused", "stopped", "failed"]
Mode = Literal["paper", "live"]


class RunConflictError(ValueError):
    """Another run is active: one run trades at a time."""


class FencedError(RuntimeError):
    """A newer instance of this actor has claimed its checkpoint: this one must stop writing."""


WORKING_STATES = ("intent", "submitted", "accepted", "partially_filled", "cancel_requested", "unknown")
HANDOVER_ROLE = "handover"
STOPPED_BY_RUN = "run_stopped"
"""The reason recorded on the working orders and trades a stopped run cancels."""


def execution_key(run_id: uuid.UUID, pair: str) -> str:
    """The execution actor's checkpoint key (`actors.run_context.PairContext.actor_key`)."""
    return f"execution:{run_id}:{pair}"


def handover_key(pair: str) -> str:
    """Where a stopped run leaves a pair's position (its execution checkpoint) for the next run on the pair."""
    return f"{HANDOVER_ROLE}:{pair}"


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


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    actor_key: str
    role: str
    pair: str | None
    state_version: int
    sequence: int
    state: Mapping[str, Any]
    fence: int | None = None
    """The writer's fencing token (see `CheckpointStore.claim`); None writes unconditionally."""


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


# ---------------------------------------------------------------------------------------------- the journal


@dataclass(frozen=True)
class DecisionRow:
    run_id: uuid.UUID
    pair: str
    interval: str
    candle_open_ms: int
    sequence: int
    trace_id: str
    action: Literal["long", "short", "flat", "hold"]
    target_position: Decimal
    confidence: float | None
    forced_hold_reason: str | None
    gates: Mapping[str, Any]
    policy: str
    risk_reason: str | None
    trading_state: str
    order_count: int
    latency_ms: float
    agent_version_id: uuid.UUID | None = None
    model_artifact_id: uuid.UUID | None = None
    feature_set_version_id: uuid.UUID | None = None
    dataset_version_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SnapshotRow:
    first_open_ms: int
    last_open_ms: int
    candle_count: int
    candles_hash: str
    features: Mapping[str, float | None]
    features_hash: str
    integrity: Mapping[str, Any]
    quality: Mapping[str, Any]


@dataclass(frozen=True)
class TradeRow:
    id: uuid.UUID
    run_id: uuid.UUID
    pair: str
    mode: Mode
    side: Literal["long", "short"]
    status: Literal["open", "closing", "closed", "cancelled"]
    quantity: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    fees: Decimal
    realized_pnl: Decimal | None
    close_reason: str | None
    opened_at_ms: int
    closed_at_ms: int | None


@dataclass(frozen=True)
class ExecutionRow:
    id: uuid.UUID
    run_id: uuid.UUID
    trade_id: uuid.UUID
    trace_id: str
    client_order_id: str
    pair: str
    mode: Mode
    side: Literal["BUY", "SELL"]
    reduce_only: bool
    quantity: Decimal
    reason: str


@dataclass(frozen=True)
class ExecutionUpdate:
    """One step of an order's state machine, with what it changed."""

    id: uuid.UUID
    before: OrderState
    after: OrderState
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    filled_quantity: Decimal | None = None
    avg_fill_price: Decimal | None = None
    fee: Decimal | None = None
    exchange_order_id: str | None = None


@dataclass(frozen=True)
class MetricRow:
    metric: str
    value: float
    pair: str | None = None
    run_id: uuid.UUID | None = None
    trace_id: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Commit:
    """Everything one decision (or one operator action) changes, written together or not at all."""

    decision: DecisionRow | None = None
    snapshot: SnapshotRow | None = None
    trades: Sequence[TradeRow] = ()
    new_executions: Sequence[ExecutionRow] = ()
    updates: Sequence[ExecutionUpdate] = ()
    checkpoint: Checkpoint | None = None
    metrics: Sequence[MetricRow] = ()


class _AlreadyDecided(Exception):
    pass


@dataclass(frozen=True)
class Adopted:
    """A position taken over from a stopped run."""

    pair: str
    from_run: uuid.UUID
    position: str
    trades: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "from_run": str(self.from_run),
            "position": self.position,
            "trades": list(self.trades),
        }


@dataclass(frozen=True)
class WorkingExecution:
    id: uuid.UUID
    client_order_id: str
    state: OrderState
    pair: str
    side: str
    quantity: Decimal
    filled_quantity: Decimal


class TradingJournal:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._checkpoints = CheckpointStore(pool)

    async def commit(self, commit: Commit) -> bool:
        """Write `commit` in one transaction. False when its decision was recorded before (nothing is
        written then)."""
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                await self._write(connection, commit)
        except _AlreadyDecided:
            return False
        return True

    async def _write(self, connection: asyncpg.Connection, commit: Commit) -> None:
        if commit.decision is not None:
            d = commit.decision
            inserted = await connection.fetchval(
                """
                INSERT INTO trade_decisions (run_id, pair, interval, candle_open_time, sequence, trace_id, action,
                    target_position, confidence, forced_hold_reason, gates, agent_version_id, model_artifact_id,
                    feature_set_version_id, dataset_version_id, latency_ms, policy, risk_reason, trading_state,
                    order_count)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
                ON CONFLICT DO NOTHING
                RETURNING 1
                """,
                d.run_id,
                d.pair,
                d.interval,
                ms_to_datetime(d.candle_open_ms),
                d.sequence,
                d.trace_id,
                d.action,
                d.target_position,
                d.confidence,
                d.forced_hold_reason,
                dict(d.gates),
                d.agent_version_id,
                d.model_artifact_id,
                d.feature_set_version_id,
                d.dataset_version_id,
                d.latency_ms,
                d.policy,
                d.risk_reason,
                d.trading_state,
                d.order_count,
            )
            if inserted is None:
                raise _AlreadyDecided
            if commit.snapshot is not None:
                s = commit.snapshot
                await connection.execute(
                    """
                    INSERT INTO market_input_snapshots (run_id, pair, interval, candle_open_time, trace_id,
                        first_candle_time, last_candle_time, candle_count, candles_hash, features, features_hash,
                        feature_set_version_id, dataset_version_id, model_artifact_id, integrity, quality)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                    """,
                    d.run_id,
                    d.pair,
                    d.interval,
                    ms_to_datetime(d.candle_open_ms),
                    d.trace_id,
                    ms_to_datetime(s.first_open_ms),
                    ms_to_datetime(s.last_open_ms),
                    s.candle_count,
                    s.candles_hash,
                    dict(s.features),
                    s.features_hash,
                    d.feature_set_version_id,
                    d.dataset_version_id,
                    d.model_artifact_id,
                    dict(s.integrity),
                    dict(s.quality),
                )
        if commit.trades:
            await connection.executemany(
                """
                INSERT INTO trades AS t (id, run_id, pair, mode, side, status, quantity, entry_price, exit_price, fees,
                    realized_pnl, close_reason, opened_at, closed_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, quantity = excluded.quantity,
                    entry_price = excluded.entry_price, exit_price = excluded.exit_price, fees = excluded.fees,
                    realized_pnl = excluded.realized_pnl, close_reason = excluded.close_reason,
                    closed_at = excluded.closed_at, updated_at = now()
                """,
                [
                    (
                        t.id,
                        t.run_id,
                        t.pair,
                        t.mode,
                        t.side,
                        t.status,
                        t.quantity,
                        t.entry_price,
                        t.exit_price,
                        t.fees,
                        t.realized_pnl,
                        t.close_reason,
                        ms_to_datetime(t.opened_at_ms),
                        None if t.closed_at_ms is None else ms_to_datetime(t.closed_at_ms),
                    )
                    for t in commit.trades
                ],
            )
        for e in commit.new_executions:
            await connection.execute(
                """
                INSERT INTO trade_executions (id, run_id, trade_id, decision_trace_id, client_order_id, pair, mode,
                    side, order_type, reduce_only, quantity, state)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'MARKET', $9, $10, 'intent')
                """,
                e.id,
                e.run_id,
                e.trade_id,
                e.trace_id,
                e.client_order_id,
                e.pair,
                e.mode,
                e.side,
                e.reduce_only,
                e.quantity,
            )
            await connection.execute(
                "INSERT INTO trade_state_events (execution_id, from_state, to_state, reason) "
                "VALUES ($1, NULL, 'intent', $2)",
                e.id,
                e.reason,
            )
        for u in commit.updates:
            updated = await connection.fetchval(
                """
                UPDATE trade_executions SET state = $3,
                    filled_quantity = COALESCE($4, filled_quantity), avg_fill_price = COALESCE($5, avg_fill_price),
                    fee = COALESCE($6, fee), exchange_order_id = COALESCE($7, exchange_order_id),
                    submit_attempts = submit_attempts + CASE WHEN $3 = 'submitted' THEN 1 ELSE 0 END,
                    updated_at = now()
                WHERE id = $1 AND state = $2
                RETURNING 1
                """,
                u.id,
                u.before,
                u.after,
                u.filled_quantity,
                u.avg_fill_price,
                u.fee,
                u.exchange_order_id,
            )
            if updated is None:
                raise RuntimeError(f"order {u.id} is not in state {u.before}: refusing {u.before} -> {u.after}")
            await connection.execute(
                "INSERT INTO trade_state_events (execution_id, from_state, to_state, reason, evidence) "
                "VALUES ($1, $2, $3, $4, $5)",
                u.id,
                u.before,
                u.after,
                u.reason,
                dict(u.evidence),
            )
        if commit.checkpoint is not None:
            await self._checkpoints.save(commit.checkpoint, connection)
        if commit.metrics:
            await connection.executemany(
                "INSERT INTO observability_metrics (metric, value, pair, run_id, trace_id, labels) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                [(m.metric, m.value, m.pair, m.run_id, m.trace_id, dict(m.labels)) for m in commit.metrics],
            )

    async def adopt(
        self,
        run_id: uuid.UUID,
        pair: str,
        checkpoint: Callable[[Mapping[str, Any]], Checkpoint],
    ) -> Adopted | None:
        """Take over the position a stopped run handed over on `pair` (`RunStore.stop(keep=True)`), in one
        transaction: its open trades and their orders move to this run, `checkpoint(handed-over state)`
        becomes this run's execution checkpoint, and the hand-over is gone. None when there is none."""
        async with self._pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT state FROM actor_checkpoints WHERE actor_key = $1 FOR UPDATE", handover_key(pair)
            )
            if row is None:
                return None
            handover = row["state"]
            trades = [uuid.UUID(t) for t in handover["trades"]]
            await connection.execute(
                "UPDATE trades SET run_id = $1, updated_at = now() WHERE id = ANY($2)", run_id, trades
            )
            await connection.execute(
                "UPDATE trade_executions SET run_id = $1, updated_at = now() WHERE trade_id = ANY($2)", run_id, trades
            )
            written = checkpoint(handover["checkpoint"])
            await self._checkpoints.save(written, connection)
            await connection.execute("DELETE FROM actor_checkpoints WHERE actor_key = $1", handover_key(pair))
            adopted = Adopted(pair, uuid.UUID(handover["from_run"]), handover["position"], tuple(handover["trades"]))
            await connection.execute(
                "INSERT INTO ops_audit_events (actor, command, target, params, outcome, detail) "
                "VALUES ('execution', 'position_adopted', $1, $2, 'accepted', $3)",
                pair,
                {"run_id": str(run_id), **adopted.to_json()},
                f"run {run_id} adopted {pair} {adopted.position} from run {adopted.from_run}",
            )
        return adopted

    async def last_decided(self, run_id: uuid.UUID, pair: str, interval: str) -> datetime | None:
        value: datetime | None = await self._pool.fetchval(
            "SELECT max(candle_open_time) FROM trade_decisions WHERE run_id = $1 AND pair = $2 AND interval = $3",
            run_id,
            pair,
            interval,
        )
        return value

    async def orders_traced(self, trace_id: str) -> int:
        """How many orders were recorded under `trace_id` (an operator's closes of one trade share one)."""
        count: int = await self._pool.fetchval(
            "SELECT count(*) FROM trade_executions WHERE decision_trace_id = $1", trace_id
        )
        return count

    async def unfinished(self, run_id: uuid.UUID, pair: str) -> list[WorkingExecution]:
        """Orders of the run and pair not in a final state, oldest first."""
        rows = await self._pool.fetch(
            """
            SELECT id, client_order_id, state, pair, side, quantity, filled_quantity FROM trade_executions
            WHERE run_id = $1 AND pair = $2
              AND state IN ('intent', 'submitted', 'accepted', 'partially_filled', 'cancel_requested', 'unknown')
            ORDER BY created_at, client_order_id
            """,
            run_id,
            pair,
        )
        return [WorkingExecution(**dict(row)) for row in rows]
