"""Run the feed's due jobs from the retry queue (gap heals and backfills that failed temporarily)."""

from __future__ import annotations

import structlog

from domain.errors import VenueError
from domain.market import parse_interval
from exchange.bingx.rest import BingXRest
from market_data.backfill import backfill
from market_data.gap_monitor import JOB_KIND as HEAL_GAP
from market_data.healing import heal_range
from storage.candles import CandleStore
from storage.retry_queue import RetryJob, RetryQueue

BACKFILL = "backfill"

log = structlog.get_logger("tradingd.feed")


async def run_due_jobs(queue: RetryQueue, rest: BingXRest, store: CandleStore, limit: int = 10) -> int:
    """Run up to `limit` due jobs; return how many succeeded."""
    succeeded = 0
    for job in await queue.claim_due(limit):
        try:
            await _run(job, rest, store)
        except (VenueError, KeyError, ValueError) as error:
            status = await queue.failed(job, str(error))
            log.warning(
                "retry_job_failed",
                job_id=job.id,
                kind=job.kind,
                key=job.key,
                attempts=job.attempts,
                status=status,
                error=str(error),
            )
            continue
        await queue.succeeded(job)
        succeeded += 1
        log.info("retry_job_succeeded", job_id=job.id, kind=job.kind, key=job.key, attempts=job.attempts)
    return succeeded


async def _run(job: RetryJob, rest: BingXRest, store: CandleStore) -> None:
    payload = job.payload
    interval = parse_interval(str(payload["interval"]))
    if job.kind == HEAL_GAP:
        await heal_range(rest, store, str(payload["pair"]), interval, int(payload["start_ms"]), int(payload["end_ms"]))
    elif job.kind == BACKFILL:
        max_batches = payload.get("max_batches")
        await backfill(
            rest,
            store,
            str(payload["pair"]),
            interval,
            max_batches=int(max_batches) if max_batches is not None else None,
        )
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")
