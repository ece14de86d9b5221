"""Alerts that outlive a database outage: an alert that cannot be written is kept (up to `capacity`, the
oldest dropped first and counted) and written, in order, before the next one or at the next `flush`,
with the time it was raised (not the time it was written). Recovery must never wait on the database:
raising an alert never raises. Each alert kept is logged once (`alert_kept`), and the kept alerts
written when the database is back once (`alerts_written`), however often a flush is tried meanwhile.

Every alert gets a `uid` and a trace id when it is raised (its own, if the caller has none: a decision's
alert carries the decision's), and `alert_raised` is logged with both, so the message an operator
receives leads to the log lines around it. A kept alert can be delivered to a person (a webhook,
Telegram) before its row exists: what it reached is written with it (`delivered_to`)."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

    @property
    def trace_id(self) -> str:
        return str(self.fields["trace_id"])


@dataclass
class AlertOutbox:
    write: Writer
    capacity: int = 1000
    pending: deque[PendingAlert] = field(default_factory=deque)
    dropped: int = 0
    _failing: bool = False
    """The last write failed: the next that succeeds writes what was kept (and says so)."""
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One writer at a time. A write given up on (a frozen database: `storage.availability.within`) goes on
    in the background holding it; meanwhile an alert is kept, never waited for."""

    async def raise_alert(self, severity: str, kind: str, message: str, **fields: Any) -> bool:
        """Write the alert (after any kept earlier); False when it was kept for later instead."""
        if not fields.get("trace_id"):
            fields["trace_id"] = uuid.uuid4().hex
        alert = PendingAlert(severity, kind, message, fields, datetime.now(UTC))
        log.info("alert_raised", severity=severity, kind=kind, uid=str(alert.uid), trace_id=alert.trace_id)
        self._keep(alert)
        if self._writing.locked():
            log.warning("alert_kept", kind=kind, kept=len(self.pending), error="a write is under way")
            return False
        error = await self._write_pending()
        if error is not None:
            log.warning("alert_kept", kind=kind, kept=len(self.pending), error=type(error).__name__)
        return error is None

    async def flush(self) -> bool:
        """Write what is kept, oldest first; True when nothing is left (False while another write runs)."""
        if self._writing.locked():
            return False
        return await self._write_pending() is None

    async def _write_pending(self) -> Exception | None:
        async with self._writing:
            return await self._write_all()

    async def _write_all(self) -> Exception | None:
        written = 0
        while self.pending:
            alert = self.pending[0]
            delivered = tuple(sorted(alert.delivered_to))
            try:
                await self.write(
                    alert.severity,
                    alert.kind,
                    alert.message,
                    **alert.fields,
                    raised_at=alert.raised_at,
                    uid=alert.uid,
                    delivery="not_sent" if alert.not_sent else "pending",
                    delivered_to=delivered,
                )
            except Exception as error:  # the database is away: keep it
                self._failing = True
                return error
            if self.pending and self.pending[0] is alert:  # not dropped from a full outbox meanwhile
                self.pending.popleft()
            written += 1
        if self._failing:
            log.info("alerts_written", written=written)
            self._failing = False
        return None

    def _keep(self, alert: PendingAlert) -> None:
        if len(self.pending) >= self.capacity:
            self.pending.popleft()
            self.dropped += 1
            log.error("alert_dropped", dropped=self.dropped, capacity=self.capacity)
        self.pending.append(alert)
