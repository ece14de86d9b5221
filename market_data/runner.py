"""Everything the feed does for a set of pairs and intervals, until stopped: live ingestion, and on
their own schedules the backfill (when enabled), the gap monitor and the retry worker.

This is the feed actor's core: the CLI runs it today (`tradingd ingest`); the daemon's feed actor
will run the same object inside its Ray shell.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from domain.candles import Candle
from domain.errors import FatalVenueError, VenueError
from exchange.bingx.rest import BingXRest
from exchange.bingx.ws import MAX_CONNECTIONS, MAX_TOPICS_PER_CONNECTION, MarketDataStream
from market_data.backfill import backfill
from market_data.gap_monitor import heal_gaps
from market_data.live import FeedTopic, LiveIngestor
from market_data.retries import BACKFILL, run_due_jobs
from storage.candles import CandleStore
from storage.retry_queue import RetryQueue
from storage.source_status import SourceStatusStore

log = structlog.get_logger("tradingd.feed")


@dataclass(frozen=True)
class FeedSchedule:
    backfill_enabled: bool = False
    backfill_max_batches: int | None = None
    backfill_every_sec: float = 3600.0
    gap_monitor_every_sec: float | None = None
    """None disables the gap monitor."""
    retry_every_sec: float = 30.0


class FeedRunner:
    def __init__(
        self,
        rest: BingXRest,
        ws_url: str,
        store: CandleStore,
        status: SourceStatusStore,
        queue: RetryQueue,
        topics: list[FeedTopic],
        schedule: FeedSchedule,
        *,
        topics_per_connection: int = MAX_TOPICS_PER_CONNECTION,
        on_final: Callable[[list[Candle]], Awaitable[None]] | None = None,
    ) -> None:
        if not topics:
            raise ValueError("a feed needs at least one pair/interval topic")
        names = [topic.name for topic in topics]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise ValueError(f"topic {twice} is listed twice")
        if not 1 <= topics_per_connection <= MAX_TOPICS_PER_CONNECTION:
            raise ValueError(f"topics_per_connection must be 1..{MAX_TOPICS_PER_CONNECTION}")
        if len(topics) > topics_per_connection * MAX_CONNECTIONS:
            raise ValueError(
                f"{len(topics)} topics need more than {MAX_CONNECTIONS} websocket connections "
                f"({topics_per_connection} topics each), the most BingX allows per IP"
            )
        self.rest = rest
        self.store = store
        self.queue = queue
        self.topics = topics
        self.schedule = schedule
        # The venue allows 200 topics per connection, subscribed at 10 a second: one stream, and one
        # ingestor, per `topics_per_connection` (a smaller number subscribes a large feed sooner).
        self.live = [
            LiveIngestor(
                rest, store, MarketDataStream(ws_url, [t.name for t in chunk]), chunk, status=status, on_final=on_final
            )
            for chunk in (topics[i : i + topics_per_connection] for i in range(0, len(topics), topics_per_connection))
        ]
        self._backfilled: set[str] = set()
        self._unfillable_gaps: set[tuple[str, str, int, int]] = set()

    async def run(self) -> None:
        jobs: list[asyncio.Task[None]] = [asyncio.create_task(self._every(self.schedule.retry_every_sec, self._retry))]
        if self.schedule.backfill_enabled:
            jobs.append(asyncio.create_task(self._every(self.schedule.backfill_every_sec, self._backfill)))
        if self.schedule.gap_monitor_every_sec is not None:
            jobs.append(asyncio.create_task(self._every(self.schedule.gap_monitor_every_sec, self._gaps)))
        ingesting = [asyncio.create_task(ingestor.run()) for ingestor in self.live]
        try:
            # Everything runs until stopped; the first connection or job to fail (with a fatal venue error:
            # other errors are logged and retried) stops the rest and is raised.
            waiting: set[asyncio.Task[None]] = {*ingesting, *jobs}
            while not all(task.done() for task in ingesting):
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if not task.cancelled() and (error := task.exception()) is not None:
                        await self.stop()
                        await asyncio.gather(*ingesting, return_exceptions=True)
                        raise error
        finally:
            for task in ingesting:
                task.cancel()
            for task in ingesting:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await job

    async def stop(self) -> None:
        for ingestor in self.live:
            await ingestor.stop()

    def ingestion_lag_sec(self) -> float | None:
        """The latest time from a candle becoming final to its row being written (the slowest stream)."""
        lags = [ingestor.stats.last_lag_sec for ingestor in self.live if ingestor.stats.last_lag_sec is not None]
        return max(lags) if lags else None

    def topic_status(self) -> dict[str, dict[str, object]]:
        return {name: status for ingestor in self.live for name, status in ingestor.topic_status().items()}

    async def _every(self, period_sec: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except FatalVenueError:
                raise
            except VenueError as error:
                log.warning("feed_job_failed", job=getattr(action, "__name__", "job"), error=str(error))
            await asyncio.sleep(period_sec)

    async def _backfill(self) -> None:
        for topic in self.topics:
            if topic.name in self._backfilled:
                continue
            try:
                result = await backfill(
                    self.rest, self.store, topic.pair, topic.interval, max_batches=self.schedule.backfill_max_batches
                )
            except VenueError as error:
                await self.queue.enqueue(
                    BACKFILL,
                    topic.name,
                    {
                        "pair": topic.pair,
                        "interval": topic.interval,
                        "max_batches": self.schedule.backfill_max_batches,
                    },
                    str(error),
                )
                continue
            if result.reached_earliest:
                self._backfilled.add(topic.name)

    async def _gaps(self) -> None:
        for topic in self.topics:
            await heal_gaps(
                self.rest, self.store, topic.pair, topic.interval, self.queue, known_unfillable=self._unfillable_gaps
            )

    async def _retry(self) -> None:
        await run_due_jobs(self.queue, self.rest, self.store)
