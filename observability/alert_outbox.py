"""Alerts that outlive a database outage (`observability.kept_writes`): an alert that cannot be written is
kept, bounded, and written in order when the database is back, with the time it was raised (not the
time it was written). Recovery must never wait on the database: raising an alert never raises.

Every alert gets a `uid` and a trace id when it is raised (its own, if the caller has none: a decision's
alert carries the decision's), and `alert_raised` is logged with both, so the message an operator
receives leads to the log lines around it. A kept alert can be delivered to a person (a webhook,
Telegram) before its row exists: what it reached is written with it (`delivered_to`)."""

from __future__ import annotations

import dataclasses
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from observability.kept_writes import KeptWrites
from observability.logs import get_logger

log = get_logger("tradingd.alerts")
Writer = Callable[..., Awaitable[Any]]
"""`OpsStore.raise_alert`: (severity, kind, message, **fields) -> the alert's id."""


@dataclass(slots=True)
class PendingAlert:
    severity: str
    kind: str
    message: str
    fields: dict[str, Any]
    raised_at: datetime
    uid: uuid.UUID = field(default_factory=uuid.uuid4)
    delivered_to: set[str] = field(default_factory=set)
    """Channels it was delivered to while it waited (written with it)."""
    not_sent: bool = False
    """Below the delivery threshold, or given up: written as not to be delivered."""
    offered: bool = False
    """Handed to the daemon already (`AlertOutbox.offer`)."""

    @property
    def trace_id(self) -> str:
        return str(self.fields["trace_id"])


@dataclass
class AlertOutbox:
    write: Writer
    capacity: int = 1000
    transient: Callable[[BaseException], bool] | None = None
    """Which write errors mean the database is away (the alert is kept); None: every error."""
    kept: KeptWrites[PendingAlert] = field(init=False)
    _known: deque[uuid.UUID] = field(default_factory=lambda: deque(maxlen=10_000))
    """Alerts adopted from actors (`adopt`), newest last: one offered twice is not kept twice."""

    def __post_init__(self) -> None:
        self.kept = KeptWrites(self._write, "alert", self.capacity)
        if self.transient is not None:
            self.kept.transient = self.transient

    @property
    def pending(self) -> deque[PendingAlert]:
        return self.kept.pending

    @property
    def dropped(self) -> int:
        return self.kept.dropped

    async def raise_alert(self, severity: str, kind: str, message: str, **fields: Any) -> bool:
        """Write the alert (after any kept earlier); False when it was kept for later instead."""
        if not fields.get("trace_id"):
            fields["trace_id"] = uuid.uuid4().hex
        alert = PendingAlert(severity, kind, message, fields, datetime.now(UTC))
        log.info("alert_raised", severity=severity, kind=kind, uid=str(alert.uid), trace_id=alert.trace_id)
        return await self.kept.submit(alert, kind=kind)

    async def flush(self) -> bool:
        """Write what is kept, oldest first; True when nothing is left (False while another write runs)."""
        return await self.kept.flush()

    def offer(self) -> list[PendingAlert]:
        """Copies of the kept alerts not offered before: an actor's health check hands them to the daemon,
        whose dispatcher can deliver them while the database is away (`adopt`). Each stays kept here too
        and is written by whichever process reaches the database first: the uid makes it one row."""
        offered = [alert for alert in self.pending if not alert.offered]
        for alert in offered:
            alert.offered = True
        return [dataclasses.replace(alert, delivered_to=set()) for alert in offered]

    def adopt(self, alerts: list[PendingAlert]) -> int:
        """Keep alerts another process raised and could not write (`offer`), unless known already; the
        number newly kept."""
        adopted = 0
        for alert in alerts:
            if alert.uid in self._known or any(kept.uid == alert.uid for kept in self.pending):
                continue
            self._known.append(alert.uid)
            self.kept.keep(alert)
            adopted += 1
        return adopted

    async def _write(self, alert: PendingAlert) -> None:
        await self.write(
            alert.severity,
            alert.kind,
            alert.message,
            **alert.fields,
            raised_at=alert.raised_at,
            uid=alert.uid,
            delivery="not_sent" if alert.not_sent else "pending",
            delivered_to=tuple(sorted(alert.delivered_to)),
        )
