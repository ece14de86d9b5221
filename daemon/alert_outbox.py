"""Alerts that outlive a database outage: an alert that cannot be written is kept (up to `capacity`, the
oldest dropped first and counted) and written, in order, before the next one or at the next `flush`.
Recovery must never wait on the database: raising an alert never raises."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from observability import get_logger

log = get_logger("tradingd.alerts")
Writer = Callable[..., Awaitable[Any]]
"""`OpsStore.raise_alert`: (severity, kind, message, **fields) -> the alert's id."""


@dataclass(frozen=True, slots=True)
class PendingAlert:
    severity: str
    kind: str
    message: str
    fields: dict[str, Any]


@dataclass
class AlertOutbox:
    write: Writer
    capacity: int = 1000
    pending: deque[PendingAlert] = field(default_factory=deque)
    dropped: int = 0

    async def raise_alert(self, severity: str, kind: str, message: str, **fields: Any) -> bool:
        """Write the alert (after any kept earlier); False when it was kept for later instead."""
        self._keep(PendingAlert(severity, kind, message, fields))
        return await self.flush()

    async def flush(self) -> bool:
        """Write what is kept, oldest first; True when nothing is left."""
        while self.pending:
            alert = self.pending[0]
            try:
                await self.write(alert.severity, alert.kind, alert.message, **alert.fields)
            except Exception as error:  # the database is away: keep it, say so once per attempt
                log.warning("alert_kept", kind=alert.kind, kept=len(self.pending), error=type(error).__name__)
                return False
            self.pending.popleft()
        return True

    def _keep(self, alert: PendingAlert) -> None:
        if len(self.pending) >= self.capacity:
            self.pending.popleft()
            self.dropped += 1
            log.error("alert_dropped", dropped=self.dropped, capacity=self.capacity)
        self.pending.append(alert)
