"""Context from another interval (5m or 1h features beside 1m candles; 1m features beside 5m, 15m or
1h decisions) without look-ahead.

A base candle sees the features of the latest context candle that closed by its cutoff
(`context_cutoff_ms`): a longer context candle, at or before the base candle's open time; a shorter one,
at or before the base candle's close less one context interval (a 5m decision at 10:05 sees the 1m
candle of 10:03-10:04). Either way the context candle it may use became final at least one interval
(the shorter of the two) before the base candle did, which removes a race live: when a base candle
becomes final its context is there already, so live and training pick the same context row. It costs
at most that one interval of freshness.
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from domain.candles import interval_ms
from domain.market import Interval

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def context_cutoff_ms[T: (int, Ints)](base_open_ms: T, base_interval: Interval, context_interval: Interval) -> T:
    """The latest close a context candle may have to be seen by the base candle opening at `base_open_ms`
    (a time or an array of them): the base open for a longer context, the base close less one context
    interval for a shorter one (the two agree when the intervals are equal)."""
    base, context = interval_ms(base_interval), interval_ms(context_interval)
    return base_open_ms + (base - min(base, context))


def align_context(
    base_open_ms: Ints,
    context_open_ms: Ints,
    context_interval: Interval,
    context_values: Floats,
    base_interval: Interval,
) -> Floats:
    """Rows of `context_values` (one per context candle, ascending) for each base candle of
    `base_interval`; NaN where no context candle had closed by its cutoff yet."""
    closes = context_open_ms + interval_ms(context_interval)
    cutoffs = context_cutoff_ms(base_open_ms, base_interval, context_interval)
    index = np.searchsorted(closes, cutoffs, side="right") - 1
    aligned = np.full((len(base_open_ms), context_values.shape[1]), np.nan)
    usable = index >= 0
    aligned[usable] = context_values[index[usable]]
    return aligned


class ContextAligner:
    """The live side of `align_context`: context rows arrive as their candles become final; a base
    candle asks for the row it may use."""

    def __init__(self, context_interval: Interval, base_interval: Interval, width: int, keep: int = 8) -> None:
        self._step = interval_ms(context_interval)
        self._interval = context_interval
        self._base = base_interval
        self._width = width
        self._keep = keep
        self._closes: list[int] = []
        self._rows: list[Floats] = []

    def add(self, context_open_ms: int, values: Floats) -> None:
        close = context_open_ms + self._step
        if self._closes and close <= self._closes[-1]:
            raise ValueError("context candles must arrive in order, each once")
        self._closes.append(close)
        self._rows.append(values)
        del self._closes[: -self._keep], self._rows[: -self._keep]

    def for_base(self, base_open_ms: int) -> Floats:
        index = bisect.bisect_right(self._closes, context_cutoff_ms(base_open_ms, self._base, self._interval)) - 1
        if index < 0:
            return np.full(self._width, np.nan)
        return self._rows[index]
