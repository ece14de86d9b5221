"""Screening a batch of candles before it is stored: nothing invalid is written, and every
rejection is logged with its reason. Ordering and duplicates are repaired (sorted, last wins) and
reported as `candles_unsorted` / `candles_duplicated` warnings."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from domain.candles import Candle, candle_problem
from domain.market import Interval
from exchange.bingx.wire import KlineBatch, order_and_dedupe

log = structlog.get_logger("tradingd.feed")


@dataclass(frozen=True)
class Screened:
    accepted: list[Candle]
    rejected: int


def screen(batch: KlineBatch, pair: str, interval: Interval, source: str) -> Screened:
    for row in batch.rejected:
        log.warning(
            "candle_rejected", pair=pair, interval=interval, source=source, reason=row.reason, row=str(row.raw)[:200]
        )
    if batch.unsorted:
        log.warning("candles_unsorted", pair=pair, interval=interval, source=source)
    if batch.duplicates:
        log.warning("candles_duplicated", pair=pair, interval=interval, source=source, count=batch.duplicates)
    accepted: list[Candle] = []
    rejected = len(batch.rejected)
    for candle in batch.candles:
        problem = _problem(candle, pair, interval)
        if problem is None:
            accepted.append(candle)
            continue
        rejected += 1
        log.warning(
            "candle_rejected",
            pair=pair,
            interval=interval,
            source=source,
            reason=problem,
            open_time_ms=candle.open_time_ms,
        )
    return Screened(accepted, rejected)


def screen_candles(candles: list[Candle], pair: str, interval: Interval, source: str) -> Screened:
    return screen(order_and_dedupe(candles), pair, interval, source)


def _problem(candle: Candle, pair: str, interval: Interval) -> str | None:
    if candle.pair != pair or candle.interval != interval:
        return f"belongs to {candle.pair} {candle.interval}, not {pair} {interval}"
    return candle_problem(candle)
