"""Operations: the audit trail of operator commands (`ops_audit_events`), alerts (`alerts`), and the
trades an operator names by id."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

Severity = Literal["info", "warning", "critical"]
Delivery = Literal["pending", "delivered", "not_sent", "undeliverable"]


@dataclass(frozen=True)
class OpenTrade:
    """A trade of a run whose position (or opening order) is still open: what `ctl status` lists."""

    id: uuid.UUID
    pair: str
    side: Literal["long", "short"]
    status: Literal["open", "closing"]
    quantity: Decimal
    """The position's size (before the first fill: the opening order's quantity)."""
    entry_price: Decimal | None
    """None until the opening order fills."""
    fees: Decimal
    opened_at: datetime


@dataclass(frozen=True)
class Alert:
    """A row of `alerts`: what `ctl alerts` lists and what the dispatcher delivers."""

    id: int
    uid: uuid.UUID
    raised_at: datetime
    severity: Severity
    kind: str
    pair: str | None
    run_id: uuid.UUID | None
    message: str
    trace_id: str | None
    details: Mapping[str, Any]
    delivery: Delivery
    delivered_to: tuple[str, ...]
    delivery_attempts: int


_ALERT_COLUMNS = (
    "id, uid, raised_at, severity, kind, pair, run_id, message, trace_id, details, delivery, delivered_to,"
    " delivery_attempts"
)


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(**{**dict(row), "delivered_to": tuple(row["delivered_to"])})


@dataclass(frozen=True)
class AuditEvent:
    """One operator command's outcome, as `OpsStore.audit` writes it: made when the command ran, so an
    event kept through a database outage is written with that time and written once (`uid`)."""

    command: str
    params: Mapping[str, Any]
    outcome: Literal["accepted", "rejected", "failed"]
    detail: str | None
    actor: str
    target: str | None = None
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    uid: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class MetricSample:
    """One `observability_metrics` row, made when it was measured (so one kept through an outage keeps
    its time)."""

    metric: str
    value: float
    pair: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class OpsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def audit(
        self,
        command: str,
        params: Mapping[str, Any],
        outcome: Literal["accepted", "rejected", "failed"],
        detail: str | None,
        *,
        actor: str,
        target: str | None = None,
        occurred_at: datetime | None = None,
        uid: uuid.UUID | None = None,
    ) -> int:
        """`occurred_at`: when the command ran, if before now (an event kept through a database outage);
        a `uid` written already is not written twice (an insert whose answer was lost, tried again)."""
        audit_id: int = await self._pool.fetchval(
            "INSERT INTO ops_audit_events (actor, command, target, params, outcome, detail, occurred_at, uid) "
            "VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), coalesce($8, gen_random_uuid())) "
            "ON CONFLICT (uid) DO UPDATE SET uid = EXCLUDED.uid RETURNING id",
            actor,
            command,
            target,
            dict(params),
            outcome,
            detail,
            occurred_at,
            uid,
        )
        return audit_id

    async def write_audit(self, event: AuditEvent) -> int:
        return await self.audit(
            event.command,
            event.params,
            event.outcome,
            event.detail,
            actor=event.actor,
            target=event.target,
            occurred_at=event.occurred_at,
            uid=event.uid,
        )

    async def raise_alert(
        self,
        severity: Severity,
        kind: str,
        message: str,
        *,
        pair: str | None = None,
        run_id: uuid.UUID | None = None,
        trace_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        raised_at: datetime | None = None,
        uid: uuid.UUID | None = None,
        delivery: Delivery = "pending",
        delivered_to: tuple[str, ...] = (),
    ) -> int:
        """`raised_at`: when it was raised, if before now (an alert kept through a database outage);
        `uid`, `delivery` and `delivered_to`: what was delivered of it while it waited for its row. A uid
        written already is not written twice (an insert whose answer was lost, tried again, or an actor's
        alert the daemon adopted, written by both): the second write adds the channels it reached."""
        alert_id: int = await self._pool.fetchval(
            "INSERT INTO alerts (severity, kind, pair, run_id, message, trace_id, details, raised_at, uid, delivery,"
            " delivered_to, delivered_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), coalesce($9, gen_random_uuid()), $10, $11,"
            " CASE WHEN $10 = 'delivered' THEN now() END) "
            "ON CONFLICT (uid) DO UPDATE SET"
            " delivered_to = ARRAY(SELECT DISTINCT unnest(alerts.delivered_to || EXCLUDED.delivered_to) ORDER BY 1),"
            " delivery = CASE WHEN alerts.delivery = 'pending' THEN EXCLUDED.delivery ELSE alerts.delivery END"
            " RETURNING id",
            severity,
            kind,
            pair,
            run_id,
            message,
            trace_id,
            dict(details or {}),
            raised_at,
            uid,
            delivery,
            list(delivered_to),
        )
        return alert_id

    async def undelivered_alerts(self, limit: int = 200) -> list[Alert]:
        """The oldest alerts still `pending` delivery."""
        rows = await self._pool.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE delivery = 'pending' ORDER BY id LIMIT $1", limit
        )
        return [_alert(row) for row in rows]

    async def record_delivery(
        self, uid: uuid.UUID, delivery: Delivery, delivered_to: tuple[str, ...], attempts: int, error: str | None
    ) -> None:
        """One alert's delivery state after a pass: the channels it reached and the attempts it took."""
        await self._pool.execute(
            "UPDATE alerts SET delivery = $2, delivered_to = $3, delivery_attempts = delivery_attempts + $4,"
            " delivery_error = $5, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END WHERE uid = $1",
            uid,
            delivery,
            list(delivered_to),
            attempts,
            error,
        )

    async def alerts(self, limit: int = 50) -> list[Alert]:
        rows = await self._pool.fetch(
            f"SELECT {_ALERT_COLUMNS} FROM alerts ORDER BY raised_at DESC, id DESC LIMIT $1", limit
        )
        return [_alert(row) for row in rows]

    async def trade_pair(self, trade_id: uuid.UUID) -> tuple[uuid.UUID, str, str] | None:
        """(run, pair, status) of a trade."""
        row = await self._pool.fetchrow("SELECT run_id, pair, status FROM trades WHERE id = $1", trade_id)
        return None if row is None else (row["run_id"], row["pair"], row["status"])

    async def open_trades(self, run_id: uuid.UUID) -> list[OpenTrade]:
        """The run's trades still open or closing, oldest first."""
        rows = await self._pool.fetch(
            "SELECT id, pair, side, status, quantity, entry_price, fees, opened_at FROM trades "
            "WHERE run_id = $1 AND status IN ('open', 'closing') ORDER BY opened_at, pair, id",
            run_id,
        )
        return [OpenTrade(**dict(row)) for row in rows]

    async def record_metric(
        self,
        metric: str,
        value: float,
        *,
        pair: str | None = None,
        labels: Mapping[str, Any] | None = None,
        recorded_at: datetime | None = None,
    ) -> None:
        """`recorded_at`: when it was measured, if before now (a row kept through a database outage)."""
        await self._pool.execute(
            "INSERT INTO observability_metrics (metric, value, pair, labels, recorded_at)"
            " VALUES ($1, $2, $3, $4, coalesce($5, now()))",
            metric,
            value,
            pair,
            dict(labels or {}),
            recorded_at,
        )

    async def write_metric(self, sample: MetricSample) -> None:
        await self.record_metric(
            sample.metric, sample.value, pair=sample.pair, labels=sample.labels, recorded_at=sample.recorded_at
        )
