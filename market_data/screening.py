"""Screening a batch of candles before it is stored: nothing invalid is written, and every
rejection is logged with its reason. Ordering and duplicates are repaired (sorted, last wins) and
reported as `candles_unsorted` / `candles_duplicated` warnings."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import structlog

from domain.candle_columns import CandleColumns
from domain.candles import Candle
from domain.market import Interval
from exchange.bingx.wire import KlineBatch, order_and_dedupe

log = structlog.get_logger("tradingd.feed")


@dataclass(frozen=True, eq=False)
class Screened:
    accepted: CandleColumns
    rejected: int

    @functools.cached_property
    def candles(self) -> list[Candle]:
        return self.accepted.to_candles()


def screen(batch: KlineBatch, pair: str, interval: Interval, source: str) -> Screened:
    for unparsed in batch.rejected:
        log.warning(
            "candle_rejected",
            pair=pair,
            interval=interval,
            source=source,
            reason=unparsed.reason,
            row=str(unparsed.raw)[:200],
        )
    if batch.unsorted:
        log.warning("candles_unsorted", pair=pair, interval=interval, source=source)
    if batch.duplicates:
        log.warning("candles_duplicated", pair=pair, interval=interval, source=source, count=batch.duplicates)
    columns = batch.columns
    rejected = len(batch.rejected)
    if len(columns) and (columns.pair != pair or columns.interval != interval):
        log.warning(
            "candle_rejected",
            pair=pair,
            interval=interval,
            source=source,
            reason=f"belongs to {columns.pair} {columns.interval}, not {pair} {interval}",
            count=len(columns),
        )
        return Screened(CandleColumns.empty(pair, interval), rejected + len(columns))
    problems = columns.problems()
    if not problems:
        return Screened(columns, rejected)
    keep = np.ones(len(columns), np.bool_)
    for row, reason in problems:
        keep[row] = False
        log.warning(
            "candle_rejected",
            pair=pair,
            interval=interval,
            source=source,
            reason=reason,
            open_time_ms=int(columns.open_time_ms[row]),
        )
    return Screened(columns.take(keep), rejected + len(problems))


def screen_candles(candles: list[Candle], pair: str, interval: Interval, source: str) -> Screened:
    """Screen candles that did not come from the wire parser (the same rules, the same logs); rows
    of another pair or interval are rejected one by one."""
    own = [c for c in candles if c.pair == pair and c.interval == interval]
    for candle in candles:
        if candle.pair != pair or candle.interval != interval:
            log.warning(
                "candle_rejected",
                pair=pair,
                interval=interval,
                source=source,
                reason=f"belongs to {candle.pair} {candle.interval}, not {pair} {interval}",
                open_time_ms=candle.open_time_ms,
            )
    columns = CandleColumns.from_candles(own) if own else CandleColumns.empty(pair, interval)
    screened = screen(order_and_dedupe(columns), pair, interval, source)
    return Screened(screened.accepted, screened.rejected + len(candles) - len(own))
