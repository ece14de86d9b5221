"""Live ingestion: final candles from the websocket, healed and backed up over REST.

- Websocket updates go through the assembler: a candle is stored when the next one opens.
- A skipped open time (pushes lost) is healed over REST for exactly the missing range.
- After every (re)connection, each topic catches up over REST from its last stored candle to the
  newest candle the venue shows (exclusive: the newest may still be forming). A restart of the whole
  process is the same path: the last stored candle is read at start.
- A topic that has not produced a final candle for `poll_after_sec` (websocket down, or a quiet
  stream that cannot close a candle by itself) catches up the same way: that is the REST polling
  fallback, at the smallest interval's cadence.
- A hole or catch-up the venue cannot serve for now (429, 5xx, a timeout) is tried again after a
  backoff (1 s doubling to 30 s, never sooner than the venue's Retry-After), until it is served.
REST work runs in its own task, so the websocket keeps answering heartbeats meanwhile. All writes are
idempotent; a candle reached by two paths is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from domain.candles import Candle, interval_ms
from domain.errors import TemporaryVenueError, VenueError
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from exchange.bingx.ws import KlineUpdate, MarketDataStream, StreamConnected, kline_topic
from market_data.assembler import CandleAssembler
from market_data.healing import heal_range, poll_latest
from market_data.screening import screen
from storage.candles import CandleStore
from storage.source_status import SourceState, SourceStatus, SourceStatusStore

SOURCE = "bingx"
STREAM_SOURCE = "bingx-ws"
REST_RETRY_MAX_SEC = 30.0

log = structlog.get_logger("tradingd.feed")


@dataclass(frozen=True)
class FeedTopic:
    pair: str
    interval: Interval

    @property
    def name(self) -> str:
        return kline_topic(self.pair, self.interval)


@dataclass
class _TopicState:
    topic: FeedTopic
    assembler: CandleAssembler
    last_final_at: float
    last_event_at: float | None = None
    status_written: tuple[SourceState, float] | None = None


@dataclass
class FeedStats:
    finals_from_stream: int = 0
    candles_from_rest: int = 0
    holes_healed: int = 0
    catch_ups: int = 0
    rejected: int = 0
    late_updates: int = 0
    rest_failures: int = 0
    last_lag_sec: float | None = None
    """Time from a candle becoming final (its successor's first update) to its row being written."""


class LiveIngestor:
    def __init__(
        self,
        rest: BingXRest,
        store: CandleStore,
        stream: MarketDataStream,
        topics: list[FeedTopic],
        *,
        status: SourceStatusStore | None = None,
        poll_after_sec: float | None = None,
        check_every_sec: float = 1.0,
        stale_after_sec: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_final: Callable[[list[Candle]], Awaitable[None]] | None = None,
    ) -> None:
        """`on_final` is told of every candle stored as final, whichever path stored it (stream, hole
        healing, catch-up): the daemon's feed actor passes them on to the feature actor."""
        names = {topic.name for topic in topics}
        if names != set(stream.topics):
            raise ValueError("the stream must carry exactly the feed's topics")
        self.rest = rest
        self.store = store
        self.stream = stream
        self.topics = topics
        self.status = status
        smallest = min(interval_ms(topic.interval) for topic in topics) / 1000
        self.poll_after_sec = poll_after_sec if poll_after_sec is not None else 1.5 * smallest
        self.stale_after_sec = stale_after_sec if stale_after_sec is not None else 2 * smallest
        self.check_every_sec = check_every_sec
        self._monotonic = monotonic
        self._on_final = on_final
        self._states: dict[str, _TopicState] = {}
        self._work: asyncio.Queue[tuple[str, FeedTopic, int, int]] = asyncio.Queue()
        self._catch_up_pending: set[str] = set()
        self._rest_failures: dict[tuple[str, str, int, int], int] = {}
        """REST jobs that failed for now, by (kind, topic, start, end): how often in a row."""
        self._stopped = asyncio.Event()
        self.stats = FeedStats()

    async def run(self) -> None:
        """Ingest until `stop()` (or a fatal venue error, which is raised)."""
        now = self._monotonic()
        for topic in self.topics:
            span = await self.store.span(topic.pair, topic.interval)
            self._states[topic.name] = _TopicState(topic, CandleAssembler(span[1] if span else None), now)
        workers = [
            asyncio.create_task(self._consume()),
            asyncio.create_task(self._rest_worker()),
            asyncio.create_task(self._watch()),
        ]
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            done, _ = await asyncio.wait([*workers, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task is stopped or task.cancelled() else task.exception()
                if error is not None:
                    raise error
        finally:
            await self.stream.close()
            for task in (*workers, stopped):
                task.cancel()
            for task in (*workers, stopped):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop(self) -> None:
        self._stopped.set()
        await self.stream.close()

    def topic_status(self) -> dict[str, dict[str, object]]:
        """Per topic: the newest final candle, seconds since the stream last spoke, and the last status."""
        now = self._monotonic()
        return {
            name: {
                "last_final_open_ms": state.assembler.last_final_open_ms,
                "silent_sec": None if state.last_event_at is None else round(now - state.last_event_at, 3),
                "since_final_sec": round(now - state.last_final_at, 3),
                "connected": self.stream.is_connected(),
            }
            for name, state in self._states.items()
        }

    async def drain(self) -> None:
        """Wait until queued REST work is done (for tests and orderly shutdown)."""
        await self._work.join()

    # ---------------------------------------------------------------- websocket

    async def _consume(self) -> None:
        async for event in self.stream.events():
            if isinstance(event, StreamConnected):
                if event.connection > 1:
                    log.warning(
                        "stream_reconnected",
                        source=SOURCE,
                        connection=event.connection,
                        last_heard_ms=event.last_heard_ms,
                    )
                for state in self._states.values():
                    self._request_catch_up(state.topic)
                continue
            await self._on_update(event)
        self._stopped.set()

    async def _on_update(self, event: KlineUpdate) -> None:
        state = self._states.get(event.topic)
        if state is None:
            return
        topic = state.topic
        now = self._monotonic()
        state.last_event_at = now
        screened = screen(event.batch, topic.pair, topic.interval, STREAM_SOURCE)
        self.stats.rejected += screened.rejected
        finals: list[Candle] = []
        for candle in screened.candles:
            assembled = state.assembler.update(candle)
            finals.extend(assembled.final)
            self.stats.late_updates += assembled.late
            if assembled.hole is not None:
                log.warning(
                    "stream_hole",
                    pair=topic.pair,
                    interval=topic.interval,
                    start_ms=assembled.hole[0],
                    end_ms=assembled.hole[1],
                )
                self._work.put_nowait(("hole", topic, *assembled.hole))
        if finals:
            await self.store.write(finals, STREAM_SOURCE)
            await self._tell(finals)
            self.stats.finals_from_stream += len(finals)
            stored_at = self._monotonic()
            self.stats.last_lag_sec = stored_at - now
            state.last_final_at = stored_at
            await self._record(state, "ok", lag=stored_at - now)

    # ---------------------------------------------------------------- REST

    def _request_catch_up(self, topic: FeedTopic) -> None:
        if topic.name not in self._catch_up_pending:
            self._catch_up_pending.add(topic.name)
            self._work.put_nowait(("catch_up", topic, 0, 0))

    async def _rest_worker(self) -> None:
        while True:
            kind, topic, start, end = await self._work.get()
            try:
                if kind == "hole":
                    healed = await heal_range(self.rest, self.store, topic.pair, topic.interval, start, end)
                    await self._tell(healed.stored)
                    self.stats.holes_healed += len(healed.stored)
                    self.stats.candles_from_rest += len(healed.stored)
                else:
                    self._catch_up_pending.discard(topic.name)
                    await self._catch_up(topic)
            except VenueError as error:
                self.stats.rest_failures += 1
                retry_in = self._retry_later(kind, topic, start, end, error)
                log.warning(
                    "feed_rest_failed",
                    pair=topic.pair,
                    interval=topic.interval,
                    job=kind,
                    error=str(error),
                    retry_in_sec=retry_in,
                )
                await self._record(self._states[topic.name], "stale", error=str(error))
            else:
                self._rest_failures.pop((kind, topic.name, start, end), None)
            finally:
                self._work.task_done()

    def _retry_later(self, kind: str, topic: FeedTopic, start: int, end: int, error: VenueError) -> float | None:
        """A hole or catch-up the venue could not serve for now is tried again after a backoff (the
        venue's Retry-After at least), so a REST storm leaves no hole behind; None when it is not retried
        (a refusal that asking again cannot change)."""
        if not isinstance(error, TemporaryVenueError) or self._stopped.is_set():
            return None
        key = (kind, topic.name, start, end)
        failures = self._rest_failures[key] = self._rest_failures.get(key, 0) + 1
        delay = max(getattr(error, "retry_after_sec", 0.0), min(REST_RETRY_MAX_SEC, 2.0 ** (failures - 1)))
        if kind == "hole":
            asyncio.get_running_loop().call_later(delay, self._work.put_nowait, (kind, topic, start, end))
        else:
            asyncio.get_running_loop().call_later(delay, self._request_catch_up, topic)
        return delay

    async def _catch_up(self, topic: FeedTopic) -> None:
        state = self._states[topic.name]
        last = state.assembler.last_final_open_ms
        if last is None:
            stored, _newest = await poll_latest(self.rest, self.store, topic.pair, topic.interval)
        else:
            newest = (await self.rest.klines(topic.pair, topic.interval, limit=1)).candles
            if not newest:
                return
            step = interval_ms(topic.interval)
            stored = []
            if newest[-1].open_time_ms > last + step:
                healed = await heal_range(
                    self.rest, self.store, topic.pair, topic.interval, last + step, newest[-1].open_time_ms
                )
                stored = healed.stored
        self.stats.catch_ups += 1
        state.last_final_at = self._monotonic()
        await self._tell(stored)
        if stored:
            self.stats.candles_from_rest += len(stored)
            hole = state.assembler.confirmed(stored[-1].open_time_ms)
            log.info("feed_caught_up", pair=topic.pair, interval=topic.interval, candles=len(stored))
            if hole is not None:
                log.warning("stream_hole", pair=topic.pair, interval=topic.interval, start_ms=hole[0], end_ms=hole[1])
                self._work.put_nowait(("hole", topic, *hole))
        await self._record(state, "ok")

    async def _tell(self, candles: list[Candle]) -> None:
        if candles and self._on_final is not None:
            await self._on_final(candles)

    # ---------------------------------------------------------------- watchdog

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_every_sec)
            now = self._monotonic()
            for state in self._states.values():
                if now - state.last_final_at > self.poll_after_sec:
                    self._request_catch_up(state.topic)
                heard = state.last_event_at
                if not self.stream.is_connected():
                    await self._record(state, "down")
                elif heard is None or now - heard > self.stale_after_sec:
                    await self._record(state, "stale")

    async def _record(
        self, state: _TopicState, status: SourceState, *, lag: float | None = None, error: str | None = None
    ) -> None:
        """Write the topic's status when it changes, and at most every 5 s otherwise."""
        if self.status is None:
            return
        now = self._monotonic()
        previous = state.status_written
        if previous is not None and previous[0] == status and now - previous[1] < 5 and error is None:
            return
        state.status_written = (status, now)
        wall = datetime.now(UTC)
        await self.status.record(
            SourceStatus(
                SOURCE,
                state.topic.pair,
                state.topic.interval,
                status,
                wall if state.last_event_at is not None else None,
                wall if status == "ok" else None,
                lag,
                error,
            )
        )
