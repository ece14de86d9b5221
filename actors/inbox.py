"""An actor's inbox: messages handled one at a time, in the order they arrived, with market data
conflated under backpressure and everything else kept.

Ray starts the tasks one caller submits to an async actor in order, but their awaits interleave; an
inbox method only enqueues, and one task per actor handles the messages one at a time, in order.

Two kinds of message (`conflation_key` tells them apart):

- **Market data whose newest state supersedes the older**: a forming candle (`FormingCandle`, one key
  per pair and interval: the latest wins) and the feature actor's wake-up tick (it carries nothing).
  While one with the same key still waits (the handler is behind: backpressure), a newer one replaces
  it: the older is dropped and counted, and the newer takes its place at the back of the queue, so
  the handler never sees an older state after a newer one, nor anything out of order. At most one per
  key ever waits, so this part of the inbox is bounded by its keys.
- **Everything else is never dropped**: final candles (a final candle is never conflated, whatever its
  pair), market inputs, decisions, order plans, fills and position reports, operator operations and
  state changes (`rewind`). These are kept in arrival order without limit, and counted: their number
  is bounded by the candles (a few per final candle and pair), so a backlog beyond `capacity` means
  the actor has fallen behind the market; that is logged (`inbox_over_capacity`, once per episode),
  counted, and shown in the status, where the health check and the staleness guard see it. They do
  not block the sender: the feed's `on_candles` is not awaited (blocking would only move the queue
  into Ray's own, unbounded, task queue), and actors of a pair call each other (execution asks the
  account guard), where a sender blocked on a full inbox could deadlock the pair.

Every conflation is counted in the status (`conflated`, by kind) and, where the worker has a database
(`record_metrics_to`), written to `observability_metrics` as `inbox_conflated` (and
`inbox_over_capacity`) rows, at most every `METRICS_EVERY_SEC` and when the inbox stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.candles import Candle
from observability import get_logger

log = get_logger("tradingd.actor")

DEFAULT_CAPACITY = 1000
"""Messages that are never dropped, waiting, before the inbox counts itself over capacity."""
METRICS_EVERY_SEC = 30.0

MetricRecorder = Callable[..., Awaitable[None]]
"""`await record(metric, value, pair=..., labels=...)`, as `storage.ops.OpsStore.record_metric`."""
_recorder: MetricRecorder | None = None


def record_metrics_to(recorder: MetricRecorder | None) -> None:
    """Where this worker's inboxes write their counters (an actor's process has one database)."""
    global _recorder
    _recorder = recorder


@dataclass(frozen=True, slots=True)
class FormingCandle:
    """A candle still forming (BingX pushes it about once a second): only its latest state matters."""

    candle: Candle

    @property
    def conflation_key(self) -> Hashable:
        return ("forming", self.candle.pair, self.candle.interval)


def conflation_key(message: object) -> Hashable | None:
    """The key under which a message may be conflated with an older one still waiting, or None for a
    message that is never dropped (see the module docstring)."""
    key = getattr(message, "conflation_key", None)
    if key is not None:
        return key  # type: ignore[no-any-return]
    if isinstance(message, tuple) and len(message) == 2 and message[0] == "tick" and message[1] is None:
        return ("tick",)  # the feature actor's wake-up: one waiting is as good as many
    return None


def _kind(key: Hashable) -> str:
    return str(key[0]) if isinstance(key, tuple) and key else str(key)


class _Entry[T]:
    __slots__ = ("key", "live", "message")

    def __init__(self, message: T, key: Hashable | None) -> None:
        self.message = message
        self.key = key
        self.live = True


class Inbox[T]:
    """Messages handled one at a time, in the order they arrived, market data conflated (see the module
    docstring). A handler error is logged and, by default, fatal to the actor (`on_error`): its state may
    be half-changed, and the supervisor's restart from the checkpoint is the safe way on."""

    def __init__(
        self,
        name: str,
        handle: Callable[[T], Awaitable[None]],
        on_error: Callable[[BaseException], None],
        *,
        capacity: int = DEFAULT_CAPACITY,
        key: Callable[[object], Hashable | None] = conflation_key,
    ) -> None:
        if capacity < 1:
            raise ValueError("an inbox needs a capacity of at least 1")
        self.name = name
        self.capacity = capacity
        self._handle = handle
        self._on_error = on_error
        self._key = key
        self._entries: deque[_Entry[T]] = deque()
        self._latest: dict[Hashable, _Entry[T]] = {}
        self._waiting = 0
        self._unfinished = 0
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._handling = asyncio.Lock()
        """Held while a message is handled: `between_messages` waits for it."""
        self._task: asyncio.Task[None] | None = None
        self._metrics_task: asyncio.Task[None] | None = None
        self.handled = 0
        self.last_handled_at: float | None = None
        self.busy_since: float | None = None
        self.conflated: Counter[str] = Counter()
        """Messages dropped because a newer one with the same key replaced them, by kind."""
        self.high_water = 0
        self.over_capacity = 0
        """Episodes of more than `capacity` messages waiting."""
        self._over = False
        self._recorded: Counter[str] = Counter()
        self._recorded_over = 0

    def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run())
            self._metrics_task = loop.create_task(self._record_every(METRICS_EVERY_SEC))

    def put(self, message: T) -> None:
        """Enqueue; never blocks, never fails. A conflatable message replaces an older one of its key."""
        key = self._key(message)
        if key is not None:
            older = self._latest.get(key)
            if older is not None and older.live:
                older.live = False
                self._waiting -= 1
                self._unfinished -= 1
                self.conflated[_kind(key)] += 1
        entry = _Entry(message, key)
        if key is not None:
            self._latest[key] = entry
        self._entries.append(entry)
        self._waiting += 1
        self._unfinished += 1
        self._idle.clear()
        self._arrived.set()
        self.high_water = max(self.high_water, self._waiting)
        if self._waiting > self.capacity and not self._over:
            self._over = True
            self.over_capacity += 1
            log.warning("inbox_over_capacity", inbox=self.name, backlog=self._waiting, capacity=self.capacity)
        elif self._over and self._waiting <= self.capacity // 2:
            self._over = False

    @property
    def backlog(self) -> int:
        """Messages waiting (conflated ones not counted)."""
        return self._waiting

    async def drain(self, timeout_sec: float) -> bool:
        """Wait until every message so far is handled; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_sec)
        except TimeoutError:
            return False
        return True

    async def between_messages(self, timeout_sec: float) -> bool:
        """Wait until the message being handled now, if any, is done (those still waiting are not waited
        for): what it sends on has been sent. False on timeout."""
        try:
            await asyncio.wait_for(self._handling.acquire(), timeout_sec)
        except TimeoutError:
            return False
        self._handling.release()
        return True

    async def stop(self) -> None:
        for task in (self._metrics_task, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.record_metrics(), 5.0)
        self._task = self._metrics_task = None

    def status(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "handled": self.handled,
            "busy_sec": None if self.busy_since is None else round(time.monotonic() - self.busy_since, 3),
            "conflated": sum(self.conflated.values()),
            "conflated_by_kind": dict(self.conflated),
            "high_water": self.high_water,
            "capacity": self.capacity,
            "over_capacity": self.over_capacity,
        }

    async def record_metrics(self, recorder: MetricRecorder | None = None) -> None:
        """Write what was conflated (and the over-capacity episodes) since the last time, when anything was."""
        record = recorder or _recorder
        if record is None:
            return
        new = self.conflated - self._recorded
        labels: Mapping[str, Any] = {"inbox": self.name, "pid": os.getpid()}
        for kind, count in sorted(new.items()):
            await record("inbox_conflated", float(count), labels={**labels, "kind": kind})
            self._recorded[kind] += count
        if self.over_capacity > self._recorded_over:
            episodes = self.over_capacity - self._recorded_over
            await record("inbox_over_capacity", float(episodes), labels={**labels, "high_water": self.high_water})
            self._recorded_over = self.over_capacity
        if new:
            log.info("inbox_conflated", inbox=self.name, since_last=dict(new), total=sum(self.conflated.values()))

    async def _record_every(self, period_sec: float) -> None:
        while True:
            await asyncio.sleep(period_sec)
            try:
                await self.record_metrics()
            except Exception as error:  # counters stay in the status; the next pass tries again
                log.warning("inbox_metrics_failed", inbox=self.name, error=f"{type(error).__name__}: {error}")

    async def _next(self) -> _Entry[T]:
        while True:
            while self._entries:
                entry = self._entries.popleft()
                if not entry.live:
                    continue
                if entry.key is not None and self._latest.get(entry.key) is entry:
                    del self._latest[entry.key]
                self._waiting -= 1
                return entry
            self._arrived.clear()
            await self._arrived.wait()

    async def _run(self) -> None:
        while True:
            entry = await self._next()
            await self._handling.acquire()
            self.busy_since = time.monotonic()
            try:
                await self._handle(entry.message)
            except asyncio.CancelledError:
                raise
            except BaseException as error:  # a failed message must not be silently skipped
                log.exception("actor_message_failed", inbox=self.name)
                self._on_error(error)
            finally:
                self._handling.release()
                self.busy_since = None
                self.handled += 1
                self.last_handled_at = time.time()
                self._unfinished -= 1
                if self._unfinished == 0:
                    self._idle.set()
