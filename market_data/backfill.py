"""Backfill: walk back from the newest closed candle (or from the earliest stored one, to resume)
to the earliest candle the venue has, or stop after `max_batches` batches (windows that returned
candles; an empty window and its probe do not count, and each probe moves the walk strictly back).

Each window asks for exactly one page by both `startTime` and `endTime` (the venue documents neither
the order of results nor whether `endTime` is inclusive, so the window is built to be right either
way). An empty window is either the beginning of the venue's history or a hole in it; a one-candle
probe below the window tells which, and the walk jumps over a hole. The newest candle of a window
anchored at "now" may still be forming, so it is never stored by a backfill: the live feed and the
gap monitor store it once the next candle has opened.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import structlog

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from exchange.bingx.wire import KlineBatch
from market_data.screening import screen
from observability.progress import Reporter, quiet
from storage.candles import CandleStore

PAGE = 1440
SOURCE = "bingx-rest"

log = structlog.get_logger("tradingd.feed")


@dataclass(frozen=True)
class BackfillResult:
    batches: int
    written: int
    rejected: int
    reached_earliest: bool
    earliest_ms: int | None


async def backfill(
    rest: BingXRest,
    store: CandleStore,
    pair: str,
    interval: Interval,
    *,
    max_batches: int | None = None,
    page: int = PAGE,
    progress: Reporter = quiet,
) -> BackfillResult:
    """`progress`: told of each batch (out of `max_batches`, or of an unknown total)."""
    if max_batches is not None and max_batches < 1:
        raise ValueError("max_batches must be at least 1")
    step = interval_ms(interval)
    span = await store.span(pair, interval)
    if span is not None:
        cursor, anchored_at_now = span[0], False
    else:
        now = await rest.server_time_ms()
        cursor, anchored_at_now = now - now % step + step, True
    batches = written = rejected = 0
    reached_earliest = False

    async def window(end: int) -> KlineBatch:
        return await rest.klines(pair, interval, start_ms=end - page * step, end_ms=end - 1, limit=page)

    # The stages overlap: the next window is fetched (and decoded) while the current one is screened and
    # earlier ones are written. A prefetch is used when the walk goes where it was aimed (a full page)
    # and discarded otherwise.
    prefetch: tuple[int, asyncio.Task[KlineBatch]] | None = None
    writer = _PageWriter(store, pair, interval)
    with progress(f"backfill {pair} {interval}", max_batches, "batch") as tracker:
        try:
            while max_batches is None or batches < max_batches:
                start = cursor - page * step
                if prefetch is not None and prefetch[0] == cursor:
                    result = await prefetch[1]
                else:
                    _discard(prefetch)
                    result = await window(cursor)
                prefetch = None
                screened = screen(result, pair, interval, SOURCE)
                rejected += screened.rejected
                accepted = screened.accepted
                candles = accepted.take((accepted.open_time_ms >= start) & (accepted.open_time_ms < cursor))
                if anchored_at_now and len(candles):
                    candles = candles.take(np.arange(len(candles) - 1))  # the newest may still be forming
                    anchored_at_now = False
                if len(candles):
                    batches += 1
                    cursor = max(int(candles.open_time_ms[0]), start)
                    if max_batches is None or batches < max_batches:
                        prefetch = (cursor, asyncio.create_task(window(cursor)))
                    await writer.add(batches, candles)
                    tracker.advance()
                    continue
                probe = await rest.klines(pair, interval, end_ms=start - 1, limit=1)
                before = probe.columns.open_time_ms[probe.columns.open_time_ms < start]
                if not len(before):
                    reached_earliest = True
                    break
                cursor = int(before[-1]) + step
                log.info(
                    "backfill_hole_skipped", pair=pair, interval=interval, hole_end_ms=start, resume_below_ms=cursor
                )
        finally:
            _discard(prefetch)
            written = await writer.finish()  # pages already screened are stored even if the walk failed
    final_span = await store.span(pair, interval)
    log.info(
        "backfill_finished",
        pair=pair,
        interval=interval,
        batches=batches,
        written=written,
        rejected=rejected,
        reached_earliest=reached_earliest,
    )
    return BackfillResult(batches, written, rejected, reached_earliest, final_span[0] if final_span else None)


class _PageWriter:
    """Stores pages in walk order, one write at a time, without holding the walk up: pages that arrive
    while a write is in flight go out together in the next one (fewer, larger COPY statements when
    the database is the slower stage). What is stored always reaches down contiguously from the top,
    so a resume starts below it."""

    MAX_PENDING_ROWS = 8 * PAGE

    def __init__(self, store: CandleStore, pair: str, interval: Interval) -> None:
        self._store, self._pair, self._interval = store, pair, interval
        self._pending: list[tuple[int, CandleColumns]] = []
        self._writing: asyncio.Task[int] | None = None
        self._written = 0

    async def add(self, number: int, candles: CandleColumns) -> None:
        self._pending.append((number, candles))
        in_flight = self._writing is not None and not self._writing.done()
        if in_flight and sum(len(c) for _, c in self._pending) < self.MAX_PENDING_ROWS:
            return
        await self._settle()
        self._start()

    async def finish(self) -> int:
        await self._settle()
        self._start()
        await self._settle()
        return self._written

    def _start(self) -> None:
        if self._pending:
            pages, self._pending = self._pending, []
            self._writing = asyncio.create_task(self._write(pages))

    async def _settle(self) -> None:
        if self._writing is not None:
            task, self._writing = self._writing, None
            self._written += await task

    async def _write(self, pages: list[tuple[int, CandleColumns]]) -> int:
        candles = CandleColumns.concat([c for _, c in pages])
        outcome = await self._store.write_new(candles, SOURCE)  # below everything stored so far
        log.info(
            "backfill_batch",
            pair=self._pair,
            interval=self._interval,
            batches=[number for number, _ in pages],
            candles=len(candles),
            first_open_ms=int(candles.open_time_ms.min()),
        )
        return outcome.inserted + outcome.updated


def _discard(prefetch: tuple[int, asyncio.Task[KlineBatch]] | None) -> None:
    """Drop an unused prefetch: cancel it if still running; if it already failed, retrieve the error so
    it is not reported as unhandled (the walk fetches that window again if it needs it)."""
    if prefetch is None:
        return
    task = prefetch[1]
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
