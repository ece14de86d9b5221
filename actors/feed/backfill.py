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

import structlog

from actors.feed.screening import screen
from domain.candles import interval_ms
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from exchange.bingx.wire import KlineBatch
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
) -> BackfillResult:
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

    # The next window is fetched while the current one is written; it is used when the walk goes where
    # it was aimed (a full page), and discarded otherwise.
    prefetch: tuple[int, asyncio.Task[KlineBatch]] | None = None
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
            candles = [c for c in screened.accepted if start <= c.open_time_ms < cursor]
            if anchored_at_now and candles:
                candles = candles[:-1]  # possibly still forming
                anchored_at_now = False
            if candles:
                batches += 1
                cursor = candles[0].open_time_ms if candles[0].open_time_ms > start else start
                if max_batches is None or batches < max_batches:
                    prefetch = (cursor, asyncio.create_task(window(cursor)))
                outcome = await store.write_new(candles, SOURCE)  # below everything stored so far
                written += outcome.inserted + outcome.updated
                log.info(
                    "backfill_batch",
                    pair=pair,
                    interval=interval,
                    batch=batches,
                    candles=len(candles),
                    first_open_ms=candles[0].open_time_ms,
                )
                continue
            probe = await rest.klines(pair, interval, end_ms=start - 1, limit=1)
            before = [c for c in probe.candles if c.open_time_ms < start]
            if not before:
                reached_earliest = True
                break
            log.info(
                "backfill_hole_skipped",
                pair=pair,
                interval=interval,
                hole_end_ms=start,
                resume_below_ms=before[-1].open_time_ms + step,
            )
            cursor = before[-1].open_time_ms + step
    finally:
        _discard(prefetch)
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
