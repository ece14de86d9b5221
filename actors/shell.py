"""What every actor's Ray shell shares: setting up its worker process (logging, its own small pool on
the daemon's database), an ordered, bounded inbox (`actors.inbox`: market data conflated under
backpressure, everything else kept, conflations counted), and the calls every actor answers
(`ActorShell`: `ping`, `drain`, `close`; `ready` is each role's own). Peers are reached through
`actors.transport`'s handles.

Ray starts the tasks one caller submits to an async actor in order, but their awaits interleave; an
inbox method only enqueues, and one task per actor handles the messages one at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.inbox import Inbox, record_metrics_to
from observability import active_format, configure_logging, get_logger
from observability.alert_outbox import AlertOutbox
from observability.forwarding import DatagramLines
from observability.kept_writes import KeptWrites
from storage.availability import database_unreachable
from storage.database import Database, StorageOptions
from storage.ops import MetricSample, OpsStore

log = get_logger("tradingd.actor")
__all__ = ["EXIT_FAILED_MESSAGE", "Inbox", "WorkerEnv", "fatal"]


@dataclass(frozen=True)
class WorkerEnv:
    """Passed to every actor: where the database is, where logs go, in which format. The DSN may hold a
    password: it is registered with the log redactor like the other secrets."""

    dsn: str
    log_socket: str | None
    log_level: str
    secrets: tuple[str, ...]
    log_format: str = field(default_factory=active_format)
    """The format the daemon renders its own lines in (`json` or `console`, its `auto` resolved when it
    built this): the lines it forwards from the workers share its stream, so they share its format."""

    def configure_logging(self) -> None:
        stream = DatagramLines(Path(self.log_socket)) if self.log_socket else None
        fmt = "console" if self.log_format == "console" else "json"
        # Ray is imported in a worker before this runs: its logger is adopted here (one format, no noise).
        configure_logging(self.log_level, fmt, secrets=(*self.secrets, self.dsn), stream=stream)  # type: ignore[arg-type]

    async def open_database(self, max_size: int = 1) -> Database:
        options = StorageOptions(
            url=self.dsn, data_dir=Path(tempfile.gettempdir()), pool_min_size=1, pool_max_size=max_size
        )
        database = await Database.open(options)
        global _worker_metrics
        _worker_metrics = KeptWrites(
            OpsStore(database.pool).write_metric, "metric", METRICS_KEPT, transient=database_unreachable
        )
        record_metrics_to(record_metric)  # the worker's inbox counters
        return database


METRICS_KEPT = 1000
"""Metric rows a worker keeps through a database outage (the feed's lag is one a minute: about 16 h)."""
_worker_metrics: KeptWrites[MetricSample] | None = None
"""This worker's metric rows (one database per worker process: `WorkerEnv.open_database`)."""


async def record_metric(
    metric: str, value: float, *, pair: str | None = None, labels: Mapping[str, Any] | None = None
) -> None:
    """Write a metric row through the worker's database, or keep it (with its time) while the database is
    away: written at a later health check. Never raises; without a database, nothing is recorded."""
    if _worker_metrics is not None:
        await _worker_metrics.submit(MetricSample(metric, value, pair, dict(labels or {})), metric=metric)


class ActorShell:
    """The common part of the five actors and the account guard: the worker's logging is set up when it
    is built; `ping` answers the supervisor's health check (with the inbox's figures), `drain` waits for
    what is in the inbox, `close` stops the role's own tasks (`stop_tasks`), the inbox and the pool."""

    def __init__(self, env: WorkerEnv) -> None:
        env.configure_logging()
        self.env = env
        self.database: Database | None = None
        self.inbox: Inbox[Any] | None = None
        self._alerts: AlertOutbox | None = None
        self._flushing: asyncio.Task[bool] | None = None

    def ping(self) -> dict[str, Any]:
        """The health check's answer, with copies of alerts kept since the last (`kept_alerts`): the
        daemon delivers them while the database is away, instead of after it returns."""
        self._flush_kept_soon()
        answer: dict[str, Any] = {"pid": os.getpid(), **({} if self.inbox is None else self.inbox.status())}
        offered = [] if self._alerts is None else self._alerts.offer()
        if offered:
            answer["kept_alerts"] = offered
        return answer

    async def raise_alert(self, severity: str, kind: str, message: str, **fields: Any) -> None:
        """Write an alert, or keep it (bounded) while the database is away: a guard that halts must not
        fail on the alert that says so. What is kept is written on a later health check."""
        if self.database is None:
            return
        if self._alerts is None:
            self._alerts = AlertOutbox(OpsStore(self.database.pool).raise_alert, transient=database_unreachable)
        await self._alerts.raise_alert(severity, kind, message, **fields)

    def _flush_kept_soon(self) -> None:
        """What this worker kept (alerts, metric rows), written in the background: the health check
        answers at once, whatever the database does."""
        flushes = [kept.flush for kept in (self._alerts, _worker_metrics) if kept is not None and kept.pending]
        if not flushes:
            return
        if self._flushing is not None and not self._flushing.done():
            return

        async def flush() -> bool:
            return all([await each() for each in flushes])

        with contextlib.suppress(RuntimeError):  # no running loop: the next ping tries again
            self._flushing = asyncio.get_running_loop().create_task(flush())

    async def drain(self, timeout_sec: float) -> bool:
        return True if self.inbox is None else await self.inbox.drain(timeout_sec)

    async def stop_tasks(self) -> None:
        """The role's own background tasks, stopped first on `close`."""

    async def close(self) -> None:
        await self.stop_tasks()
        if self.inbox is not None:
            await self.inbox.stop()
        if self.database is not None:
            await self.database.close()
            self.database = None


EXIT_FAILED_MESSAGE = 70


def fatal(error: BaseException) -> None:
    """End the worker after a message failed: the supervisor restarts the actor from its checkpoint, and
    the feature actor re-sends what was not recorded."""
    log.critical("actor_exiting", error=f"{type(error).__name__}: {error}", pid=os.getpid())
    os._exit(EXIT_FAILED_MESSAGE)
