"""Higher-interval candles made from lower-interval ones, for context tests on a single real file."""

from __future__ import annotations

import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.market import Interval


def resample(candles: CandleColumns, interval: Interval) -> CandleColumns:
    """Aggregate onto the grid of `interval`: first open, highest high, lowest low, last close, summed
    volume. Only complete buckets are kept (a bucket missing a candle would not be the venue's candle)."""
    step = interval_ms(interval)
    per_bucket = step // interval_ms(candles.interval)
    bucket = candles.open_time_ms // step
    starts = np.flatnonzero(np.r_[True, np.diff(bucket) != 0])
    sizes = np.diff(np.r_[starts, len(candles)])
    complete = starts[sizes == per_bucket]
    last = complete + per_bucket - 1
    return CandleColumns(
        candles.pair,
        interval,
        bucket[complete] * step,
        candles.open[complete],
        np.maximum.reduceat(candles.high, starts)[sizes == per_bucket],
        np.minimum.reduceat(candles.low, starts)[sizes == per_bucket],
        candles.close[last],
        np.add.reduceat(candles.volume, starts)[sizes == per_bucket],
        np.full(len(complete), np.nan),
    )
