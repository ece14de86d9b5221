"""Delivers alerts to a person: every alert at or above `alerts.min_severity`, once per configured channel,
with its trace id, paced by `alerts.max_per_minute` and retried with a doubling backoff.

The `alerts` table is the queue (`delivery = 'pending'`): an alert raised by any actor, or before a crash,
is delivered from its row. An alert the daemon kept in memory because the database was away is delivered
from memory, so a database outage does not silence the alerts about it; its row records what it reached
when it is written. A channel's backlog beyond what its pace allows goes out as one digest message. What
each alert reached is remembered here until its row says so, so a database that fails between a send and
its record does not make the alert go out twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from config.settings import AlertSettings
from daemon.alert_channels import SEVERITY_RANK, AlertMessage, Channel, DeliveryError
from daemon.alert_pacing import ChannelPace
from observability import get_logger
from observability.alert_outbox import AlertOutbox, PendingAlert
from storage.availability import database_unreachable, within
from storage.ops import Alert, Delivery, OpsStore

log = get_logger("tradingd.alerts")

POLL_SEC = 2.0
DATABASE_SEC = 5.0
"""Each read or record of the queue: a database that does not answer (frozen, not refused) must not hold
up the alerts kept in memory."""
DIGEST_SHOWN = 5


@dataclass
class _Candidate:
    message: AlertMessage
    delivered_to: set[str]
    kept: PendingAlert | None
    """The in-memory alert (not yet written), or None for a row."""
    attempts: int = 0
    error: str | None = None
    changed: bool = False
    final: Delivery | None = None
    """Settled without a send (`not_sent`, `undeliverable`)."""


@dataclass
class AlertDispatcher:
    settings: AlertSettings
    channels: Sequence[Channel]
    store: OpsStore
    outbox: Callable[[], AlertOutbox | None]
    clock: Callable[[], float] = time.monotonic
    paces: dict[str, ChannelPace] = field(default_factory=dict)
    reached: dict[uuid.UUID, set[str]] = field(default_factory=dict)
    """Channels each alert reached that its row does not record yet."""
    _database_away: bool = False

    def __post_init__(self) -> None:
        for channel in self.channels:
            self.paces[channel.name] = ChannelPace(self.settings.max_per_minute, self.settings.retry_max_sec)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`, then one last pass (bounded) for what the shutdown raised."""
        while not stop.is_set():
            wait = POLL_SEC
            try:
                wait = await self.deliver_once()
            except Exception:
                log.exception("alert_dispatch_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.2, min(POLL_SEC, wait)))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.send_timeout_sec + DATABASE_SEC):
                await self.deliver_once()

    async def deliver_once(self) -> float:
        """One pass over what is pending; the seconds until a channel with something left to send may send
        again (POLL_SEC when nothing is left)."""
        now = self.clock()
        candidates = await self._candidates()
        live = [c for c in candidates if self._settle_early(c)]
        backlog = []
        for channel in self.channels:
            await self._send_on(channel, [c for c in live if channel.name not in c.delivered_to], now)
            if any(channel.name not in c.delivered_to for c in live):
                backlog.append(self.paces[channel.name])
        for candidate in candidates:
            if candidate.changed:
                await self._record(candidate)
        return min((pace.next_chance(self.clock()) for pace in backlog), default=POLL_SEC)

    # ------------------------------------------------------------------------------------------ gathering

    async def _candidates(self) -> list[_Candidate]:
        found: dict[uuid.UUID, _Candidate] = {}
        outbox = self.outbox()
        for kept in list(outbox.pending) if outbox is not None else []:
            if not kept.not_sent:
                found[kept.uid] = _Candidate(_from_kept(kept), set(kept.delivered_to), kept)
        for row in await self._rows():
            if row.uid not in found:
                delivered = set(row.delivered_to) | self.reached.get(row.uid, set())
                found[row.uid] = _Candidate(_from_row(row), delivered, None, attempts=0)
        return list(found.values())

    async def _rows(self) -> list[Alert]:
        try:
            rows = await within(self.store.undelivered_alerts(), DATABASE_SEC, "the alert queue")
        except Exception as error:
            if not (database_unreachable(error) or isinstance(error, TimeoutError)):
                raise
            if not self._database_away:
                log.warning("alert_queue_unreadable", error=type(error).__name__)
            self._database_away = True
            return []
        self._database_away = False
        return rows

    def _settle_early(self, candidate: _Candidate) -> bool:
        """False when the candidate needs no send: below the threshold, too old, or delivered already."""
        message = candidate.message
        if SEVERITY_RANK.get(message.severity, 0) < SEVERITY_RANK[self.settings.min_severity]:
            self._mark(candidate, "not_sent")
            return False
        if datetime.now(UTC) - message.raised_at > timedelta(hours=self.settings.max_age_hours):
            log.error("alert_undeliverable", uid=message.uid, kind=message.kind, trace_id=message.trace_id)
            self._mark(candidate, "undeliverable")
            return False
        if all(channel.name in candidate.delivered_to for channel in self.channels):
            candidate.changed = True  # its row may not say so yet
            return False
        return True

    # ------------------------------------------------------------------------------------------ sending

    async def _send_on(self, channel: Channel, queue: list[_Candidate], now: float) -> None:
        pace = self.paces[channel.name]
        room = pace.available(now)
        if not queue or room == 0:
            return
        singles, digest = (queue, []) if len(queue) <= room else (queue[: room - 1], queue[room - 1 :])
        for candidate in singles:
            if not await self._send(channel, pace, candidate.message, [candidate]):
                return
        if digest:
            await self._send(channel, pace, _digest(digest), digest)

    async def _send(self, channel: Channel, pace: ChannelPace, message: AlertMessage, covers: list[_Candidate]) -> bool:
        try:
            async with asyncio.timeout(self.settings.send_timeout_sec):
                await channel.send(message)
        except (DeliveryError, TimeoutError) as error:
            retry_after = error.retry_after_sec if isinstance(error, DeliveryError) else None
            wait = pace.failed(self.clock(), retry_after)
            detail = str(error) or "no answer in time"
            log.warning(
                "alert_delivery_failed", channel=channel.name, kind=message.kind, error=detail, retry_in_sec=wait
            )
            for candidate in covers:
                candidate.attempts += 1
                candidate.error = f"{channel.name}: {detail}"
                candidate.changed = True
            return False
        pace.spent()
        pace.succeeded()
        log.info(
            "alert_delivered", channel=channel.name, kind=message.kind, trace_id=message.trace_id, alerts=len(covers)
        )
        for candidate in covers:
            candidate.delivered_to.add(channel.name)
            candidate.attempts += 1
            candidate.error = None
            candidate.changed = True
            uid = uuid.UUID(candidate.message.uid)
            self.reached.setdefault(uid, set()).add(channel.name)
            if candidate.kept is not None:
                candidate.kept.delivered_to.add(channel.name)
        return True

    # ------------------------------------------------------------------------------------------ recording

    def _mark(self, candidate: _Candidate, delivery: Delivery) -> None:
        candidate.changed = True
        if candidate.kept is not None:
            candidate.kept.not_sent = True  # written as settled; nothing more to send
        candidate.final = delivery

    async def _record(self, candidate: _Candidate) -> None:
        if candidate.kept is not None:
            return  # written with what it reached, when the database is back
        complete = all(channel.name in candidate.delivered_to for channel in self.channels)
        delivery: Delivery = candidate.final or ("delivered" if complete else "pending")
        uid = uuid.UUID(candidate.message.uid)
        try:
            recorded = self.store.record_delivery(
                uid, delivery, tuple(sorted(candidate.delivered_to)), candidate.attempts, candidate.error
            )
            await within(recorded, DATABASE_SEC, "the alert's delivery")
        except Exception as error:
            if not (database_unreachable(error) or isinstance(error, TimeoutError)):
                raise
            return  # `reached` remembers what it reached; recorded on a later pass
        if delivery != "pending":
            self.reached.pop(uid, None)


def _from_kept(kept: PendingAlert) -> AlertMessage:
    fields = kept.fields
    return AlertMessage(
        severity=kept.severity,
        kind=kept.kind,
        message=kept.message,
        trace_id=kept.trace_id,
        raised_at=kept.raised_at,
        uid=str(kept.uid),
        pair=fields.get("pair"),
        run_id=None if fields.get("run_id") is None else str(fields["run_id"]),
        details=dict(fields.get("details") or {}),
    )


def _from_row(row: Alert) -> AlertMessage:
    return AlertMessage(
        severity=row.severity,
        kind=row.kind,
        message=row.message,
        trace_id=row.trace_id or f"alert-{row.id}",
        raised_at=row.raised_at,
        uid=str(row.uid),
        pair=row.pair,
        run_id=None if row.run_id is None else str(row.run_id),
        details=dict(row.details),
    )


def _digest(covered: list[_Candidate]) -> AlertMessage:
    """One message for a backlog the pace cannot send one by one."""
    messages = [candidate.message for candidate in covered]
    severity = max((m.severity for m in messages), key=lambda s: SEVERITY_RANK.get(s, 0))
    kinds = Counter(m.kind for m in messages)
    first, last = messages[0].raised_at, messages[-1].raised_at
    text = (
        f"{len(messages)} alerts from {first:%H:%M:%S} to {last:%H:%M:%S} UTC: "
        + ", ".join(f"{kind} x{count}" for kind, count in kinds.most_common())
        + f". Newest: {messages[-1].message} (`tradingd ctl alerts` lists them)"
    )
    traces = [m.trace_id for m in messages]
    return AlertMessage(
        severity=severity,
        kind="alert_digest",
        message=text,
        trace_id=", ".join(traces[:DIGEST_SHOWN]) + (" ..." if len(traces) > DIGEST_SHOWN else ""),
        raised_at=last,
        uid=str(uuid.uuid4()),
        pair=None,
        details={"alerts": [m.uid for m in messages], "trace_ids": traces},
    )
