"""The feed actor's Ray shell: one pair's market data (every configured interval).

`ready()` warms up first: the last `history_bars` final candles of each interval are made sure of in
the store (fetched over REST where missing), so the feature actor can open its pipeline. A warm-up the
venue cannot serve now (rate limited, down) is put off when candles of the interval are stored already:
the stream's catch-up on connecting fills from the newest stored candle, and the pair is back on what it
has (never trading on candles it lacks). With nothing stored it raises, and the supervisor waits for
the venue (`daemon.supervisor.waiting_on`). Then the
feed runs (websocket, REST catch-up and hole healing, gap monitor, retries) and passes every candle
it stores as final on to the feature actor, once the venue's rate of each funding time the candles hold
is stored (`market_data.funding`: execution pays funding with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from typing import Any

from actors.shell import ActorShell, WorkerEnv, record_metric
from actors.transport import FeaturesHandle, Peers
from domain.candles import Candle, interval_ms
from domain.errors import TemporaryVenueError
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from market_data.funding import FundingCollector
from market_data.healing import heal_range
from market_data.live import FeedTopic
from market_data.runner import FeedRunner, FeedSchedule
from observability import get_logger
from storage.candles import CandleStore
from storage.funding_rates import FundingRateStore
from storage.retry_queue import RetryQueue
from storage.source_status import SourceStatusStore

log = get_logger("tradingd.feed")
LAG_METRIC_EVERY_SEC = 60.0


@dataclass(frozen=True)
class FeedSource:
    rest_url: str
    ws_url: str
    intervals: tuple[Interval, ...]
    history_bars: int
    schedule: FeedSchedule
    recv_window_ms: int = 5000


class FeedActor(ActorShell):
    def __init__(self, env: WorkerEnv, pair: str, source: FeedSource) -> None:
        super().__init__(env)
        self.pair = pair
        self.source = source
        self.features: FeaturesHandle | None = None
        self.rest: BingXRest | None = None
        self.runner: FeedRunner | None = None
        self.task: asyncio.Task[None] | None = None
        self.forwarded = 0
        self.warmed: dict[str, int] = {}
        self.metrics: asyncio.Task[None] | None = None
        self.funding: FundingCollector | None = None
        self.funding_warm_up: asyncio.Task[int] | None = None

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.features = peers.get("features", FeaturesHandle)
        if self.runner is None:
            self.database = await self.env.open_database()
            store = CandleStore.of(self.database)
            self.rest = BingXRest(self.source.rest_url, recv_window_ms=self.source.recv_window_ms)
            for interval in self.source.intervals:
                self.warmed[interval] = await self._warm_up_at_start(store, interval)
            self.funding = FundingCollector(self.rest, FundingRateStore(self.database.pool), self.pair)
            newest = await store.span(self.pair, self.source.intervals[0])
            if newest is not None:  # beside the feed, not before it: a slow venue delays no start
                self.funding_warm_up = asyncio.get_running_loop().create_task(self.funding.warm_up(newest[1]))
            self.runner = FeedRunner(
                self.rest,
                self.source.ws_url,
                store,
                SourceStatusStore(self.database.pool),
                RetryQueue(self.database.pool),
                [FeedTopic(self.pair, interval) for interval in self.source.intervals],
                self.source.schedule,
                on_final=self._forward,
            )
            self.task = asyncio.get_running_loop().create_task(self._run(self.runner))
            self.metrics = asyncio.get_running_loop().create_task(self._record_lag(self.runner))
            log.info("actor_ready", role="feed", pair=self.pair, warmed=self.warmed)
        return {"pid": os.getpid(), "warmed": self.warmed}

    def ping(self) -> dict[str, Any]:
        self._flush_kept_soon()
        alive = self.task is not None and not self.task.done()
        return {"pid": os.getpid(), "running": alive}

    def status(self) -> dict[str, Any]:
        topics = {} if self.runner is None else self.runner.topic_status()
        lag = None if self.runner is None else self.runner.ingestion_lag_sec()
        return {"topics": topics, "forwarded": self.forwarded, "ingestion_lag_sec": lag}

    async def backfill(self, interval: Interval, bars: int) -> int:
        """The operator's `backfill`: make sure of the last `bars` candles of an interval now."""
        assert self.database is not None
        return await self._warm_up(CandleStore.of(self.database), interval, bars)

    async def stop_tasks(self) -> None:
        if self.funding_warm_up is not None:
            self.funding_warm_up.cancel()
        if self.metrics is not None:
            self.metrics.cancel()
        if self.runner is not None:
            await self.runner.stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.rest is not None:
            await self.rest.close()

    async def _warm_up_at_start(self, store: CandleStore, interval: Interval) -> int:
        try:
            return await self._warm_up(store, interval)
        except TemporaryVenueError as error:
            if await store.span(self.pair, interval) is None:
                raise
            log.warning("feed_warm_up_deferred", pair=self.pair, interval=interval, error=str(error))
            return 0

    async def _warm_up(self, store: CandleStore, interval: Interval, bars: int | None = None) -> int:
        assert self.rest is not None
        newest = (await self.rest.klines(self.pair, interval, limit=1)).candles
        if not newest:
            return 0
        end = newest[-1].open_time_ms  # still forming: never stored here
        start = end - (bars or self.source.history_bars) * interval_ms(interval)
        healed = await heal_range(self.rest, store, self.pair, interval, start, end)
        return len(healed.stored)

    async def _forward(self, candles: list[Candle]) -> None:
        if self.funding is not None:  # the rates of the funding times they hold, before their plans need them
            await self.funding.on_final(candles)
        if self.features is not None:
            self.features.candles(candles)
            self.forwarded += len(candles)

    async def _record_lag(self, runner: FeedRunner) -> None:
        """`ingestion_lag_sec` in observability_metrics, once a minute (kept through a database outage)."""
        while True:
            await asyncio.sleep(LAG_METRIC_EVERY_SEC)
            lag = runner.ingestion_lag_sec()
            if lag is not None:
                await record_metric("ingestion_lag_sec", lag, pair=self.pair)

    async def _run(self, runner: FeedRunner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("feed_failed", pair=self.pair)
            os._exit(70)  # the supervisor restarts the feed
