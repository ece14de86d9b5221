"""The trading journal: what the execution stage writes, decisions, orders, trades and its checkpoint.

Execution records a whole decision in one transaction (`TradingJournal.commit`): the fills it caused
at this candle's open, the decision with its provenance snapshot, the order intents, the trades, and
the execution actor's checkpoint. The decision's primary key (run, pair, interval, candle) makes the
commit idempotent: a decision already recorded is refused as a whole, so no candle is decided twice
and no order intent is written twice, whatever a restart re-sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from domain.candles import ms_to_datetime
from domain.orders import OrderState
from storage.checkpoints import CheckpointStore, handover_key
from storage.records import Adopted, Checkpoint, Commit


class _AlreadyDecided(Exception):
    pass


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

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

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
                    realized_pnl, close_reason, opened_at, closed_at, origin, funding)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                ON CONFLICT (id) DO UPDATE SET status = excluded.status, quantity = excluded.quantity,
                    entry_price = excluded.entry_price, exit_price = excluded.exit_price, fees = excluded.fees,
                    realized_pnl = excluded.realized_pnl, close_reason = excluded.close_reason,
                    closed_at = excluded.closed_at, funding = excluded.funding, updated_at = now()
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
                        t.origin,
                        t.funding,
                    )
                    for t in commit.trades
                ],
            )
        for f in commit.funding:
            await connection.execute(
                """
                INSERT INTO funding_payments (run_id, pair, funding_time, trade_id, mode, quantity, mark, rate, payment)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                """,
                f.run_id,
                f.pair,
                ms_to_datetime(f.funding_time_ms),
                f.trade_id,
                f.mode,
                f.quantity,
                f.mark,
                f.rate,
                f.payment,
            )
            if f.trade_closed_before:
                await connection.execute(
                    "UPDATE trades SET funding = funding + $2, realized_pnl = realized_pnl - $2, updated_at = now() "
                    "WHERE id = $1",
                    f.trade_id,
                    f.payment,
                )
        for e in commit.new_executions:
            await connection.execute(
                """
                INSERT INTO trade_executions (id, run_id, trade_id, decision_trace_id, client_order_id, pair, mode,
                    side, order_type, reduce_only, quantity, stop_price, price, state)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'intent')
                """,
                e.id,
                e.run_id,
                e.trade_id,
                e.trace_id,
                e.client_order_id,
                e.pair,
                e.mode,
                e.side,
                e.order_type,
                e.reduce_only,
                e.quantity,
                e.stop_price,
                e.price,
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
