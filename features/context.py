"""Higher-interval context (e.g. 5m or 1h features beside 1m candles) without look-ahead.

A base candle sees the features of the latest context candle that closed at or before the base
candle's open time. Requiring the close before the base candle even opened (rather than before it
closed) costs at most one base interval of freshness and removes a race live: when a base candle
becomes final, every context candle it may use became final at least one base interval earlier, so
live and training pick the same context row.
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from domain.candles import interval_ms
from domain.market import Interval

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def align_context(
    base_open_ms: Ints, context_open_ms: Ints, context_interval: Interval, context_values: Floats
) -> Floats:
    """Rows of `context_values` (one per context candle, ascending) for each base candle; NaN where no
    context candle had closed yet."""
    closes = context_open_ms + interval_ms(context_interval)
    index = np.searchsorted(closes, base_open_ms, side="right") - 1
    aligned = np.full((len(base_open_ms), context_values.shape[1]), np.nan)
    usable = index >= 0
    aligned[usable] = context_values[index[usable]]
    return aligned


class ContextAligner:
    """The live side of `align_context`: context rows arrive as their candles become final; a base
    candle asks for the row it may use."""

    def __init__(self, context_interval: Interval, width: int, keep: int = 8) -> None:
        self._step = interval_ms(context_interval)
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
        index = bisect.bisect_right(self._closes, base_open_ms) - 1
        if index < 0:
            return np.full(self._width, np.nan)
        return self._rows[index]
