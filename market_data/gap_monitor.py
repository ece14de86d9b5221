"""The gap monitor: find missing candles between the earliest and the latest stored candle of each
topic and heal them over REST. A gap the venue cannot fill (a hole in its own history) is reported
and left alone: with a `known_unfillable` set (the feed runner keeps one for its lifetime) it is asked
for once per process, not on every run. A gap that fails to heal for a temporary reason goes to the
retry queue."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from domain.candles import interval_ms
from domain.errors import TemporaryVenueError
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from market_data.healing import heal_range
from storage.candles import CandleStore
from storage.retry_queue import RetryQueue

log = structlog.get_logger("tradingd.feed")
JOB_KIND = "heal_gap"


@dataclass(frozen=True)
class GapReport:
    gaps: int
    missing: int
    healed: int
    unfillable: int
    queued: int
    skipped: int = 0
    """Gaps already known to be unfillable, not asked for again."""


async def heal_gaps(
    rest: BingXRest,
    store: CandleStore,
    pair: str,
    interval: Interval,
    retry: RetryQueue | None = None,
    known_unfillable: set[tuple[str, str, int, int]] | None = None,
) -> GapReport:
    span = await store.span(pair, interval)
    if span is None:
        return GapReport(0, 0, 0, 0, 0)
    step = interval_ms(interval)
    found = await store.gaps(pair, interval, span[0], span[1] + step)
    known = known_unfillable if known_unfillable is not None else set()
    gaps = [gap for gap in found if (pair, interval, gap.start_ms, gap.end_ms) not in known]
    healed = unfillable = queued = 0
    for gap in gaps:
        try:
            result = await heal_range(rest, store, pair, interval, gap.start_ms, gap.end_ms)
        except TemporaryVenueError as error:
            if retry is not None:
                await retry.enqueue(
                    JOB_KIND,
                    f"{pair}/{interval}/{gap.start_ms}",
                    {
                        "pair": pair,
                        "interval": interval,
                        "start_ms": gap.start_ms,
                        "end_ms": gap.end_ms,
                    },
                    str(error),
                )
                queued += 1
            log.warning(
                "gap_heal_failed",
                pair=pair,
                interval=interval,
                start_ms=gap.start_ms,
                end_ms=gap.end_ms,
                error=str(error),
                queued=retry is not None,
            )
            continue
        healed += len(result.stored)
        if not result.stored:  # nothing came back: the venue has none of it
            known.add((pair, interval, gap.start_ms, gap.end_ms))
        if len(result.stored) < gap.missing:
            unfillable += gap.missing - len(result.stored)
            log.warning(
                "gap_unfillable",
                pair=pair,
                interval=interval,
                start_ms=gap.start_ms,
                end_ms=gap.end_ms,
                missing=gap.missing - len(result.stored),
            )
    report = GapReport(len(gaps), sum(g.missing for g in gaps), healed, unfillable, queued, len(found) - len(gaps))
    if gaps:
        log.info("gaps_checked", pair=pair, interval=interval, **report.__dict__)
    return report
