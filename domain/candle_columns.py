"""Candles of one pair and interval as columns (numpy arrays), for the bulk paths: a REST page of
1440 candles, a COPY into the store, a feature window. A `Candle` per row costs about 1.5 us to build
and as much again to check; a column operation costs that for the whole page.

The integrity rules live here, once: `problems` checks a whole batch, and `candle_problem` checks one
candle by checking a batch of one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from domain.candles import Candle, interval_ms
from domain.market import Interval

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

_REASONS = (
    "non-finite value",
    "invalid quote volume",
    "non-positive price",
    "negative volume",
    "high/low inconsistent with open/close",
    "not aligned",  # replaced by a message naming the open time
)
_UNALIGNED = len(_REASONS) - 1


@dataclass(frozen=True, eq=False)
class CandleColumns:
    """Rows in the order given (see `sorted_unique`). `quote_volume` is NaN where the source did not
    send one: the venue's klines carry none."""

    pair: str
    interval: Interval
    open_time_ms: Ints
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    quote_volume: Floats

    def __post_init__(self) -> None:
        size = len(self.open_time_ms)
        if any(len(column) != size for column in self._values()):
            raise ValueError("candle columns differ in length")

    def __len__(self) -> int:
        return len(self.open_time_ms)

    @classmethod
    def empty(cls, pair: str, interval: Interval) -> CandleColumns:
        nothing = np.empty(0, np.float64)
        return cls(pair, interval, np.empty(0, np.int64), nothing, nothing, nothing, nothing, nothing, nothing)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleColumns:
        """Columns of candles that all belong to one pair and interval."""
        if not candles:
            raise ValueError("no candles: use CandleColumns.empty(pair, interval)")
        pair, interval = candles[0].pair, candles[0].interval
        if any(c.pair != pair or c.interval != interval for c in candles):
            raise ValueError(f"candles of several pairs or intervals (first: {pair} {interval})")
        values = np.array(
            [
                (c.open, c.high, c.low, c.close, c.volume, np.nan if c.quote_volume is None else c.quote_volume)
                for c in candles
            ],
            np.float64,
        ).T.copy()  # one contiguous row per column
        times = np.array([c.open_time_ms for c in candles], np.int64)
        return cls(pair, interval, times, *values)

    @classmethod
    def concat(cls, parts: Sequence[CandleColumns]) -> CandleColumns:
        """The rows of several batches of one pair and interval, in the order given."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        if any(p.pair != first.pair or p.interval != first.interval for p in parts):
            raise ValueError(f"batches of several pairs or intervals (first: {first.pair} {first.interval})")
        if len(parts) == 1:
            return first
        return cls(
            first.pair,
            first.interval,
            np.concatenate([p.open_time_ms for p in parts]),
            np.concatenate([p.open for p in parts]),
            np.concatenate([p.high for p in parts]),
            np.concatenate([p.low for p in parts]),
            np.concatenate([p.close for p in parts]),
            np.concatenate([p.volume for p in parts]),
            np.concatenate([p.quote_volume for p in parts]),
        )

    def to_candles(self) -> list[Candle]:
        pair, interval = self.pair, self.interval
        return [
            Candle(pair, interval, t, o, h, low, c, v, None if q != q else q)  # q != q: NaN, not sent
            for t, o, h, low, c, v, q in zip(
                self.open_time_ms.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                self.quote_volume.tolist(),
                strict=True,
            )
        ]

    def take(self, rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> CandleColumns:
        """The rows selected by a boolean mask or an index array, in that order."""
        return CandleColumns(
            self.pair,
            self.interval,
            self.open_time_ms[rows],
            self.open[rows],
            self.high[rows],
            self.low[rows],
            self.close[rows],
            self.volume[rows],
            self.quote_volume[rows],
        )

    def is_sorted(self) -> bool:
        """Ascending open times (equal neighbours allowed)."""
        if len(self) < 2:
            return True
        return bool(np.all(self.open_time_ms[1:] >= self.open_time_ms[:-1]))

    def sorted_unique(self) -> CandleColumns:
        """Ascending by open time with one row per open time: of several, the last given (for a forming
        candle, the newest update)."""
        if len(self) < 2:
            return self
        order = np.argsort(self.open_time_ms, kind="stable")
        times = self.open_time_ms[order]
        last_of_each = np.append(times[1:] != times[:-1], True)
        if last_of_each.all() and np.array_equal(order, np.arange(len(self))):
            return self
        return self.take(order[last_of_each])

    def problems(self) -> list[tuple[int, str]]:
        """(row, reason) for every row that cannot be stored: non-finite or non-positive prices,
        negative volume, inconsistent high/low, an open time off the interval grid. The first rule a
        row breaks, in that order, is its reason."""
        if len(self) == 0:
            return []
        o, h, low, c, v, q = self.open, self.high, self.low, self.close, self.volume, self.quote_volume
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(low) & np.isfinite(c) & np.isfinite(v)
        if self.interval == "1M":  # calendar months are not a fixed number of milliseconds
            aligned = np.ones(len(self), np.bool_)
        else:
            aligned = self.open_time_ms % interval_ms(self.interval) == 0
        broken = (
            ~finite,
            np.isinf(q) | (q < 0),
            np.minimum(np.minimum(o, h), np.minimum(low, c)) <= 0,
            v < 0,
            (h < np.maximum(np.maximum(o, c), low)) | (low > np.minimum(o, c)),
            ~aligned,
        )
        codes = np.full(len(self), -1, np.int8)
        for code in range(len(broken) - 1, -1, -1):  # the first rule broken wins
            codes[broken[code]] = code
        bad = np.flatnonzero(codes >= 0)
        return [(int(row), self._reason(int(row), int(codes[row]))) for row in bad]

    def _reason(self, row: int, code: int) -> str:
        if code == _UNALIGNED:
            return f"open time {int(self.open_time_ms[row])} is not aligned to the {self.interval} grid"
        return _REASONS[code]

    def _values(self) -> tuple[npt.NDArray[np.generic], ...]:
        return (self.open, self.high, self.low, self.close, self.volume, self.quote_volume)


def candle_problem(candle: Candle) -> str | None:
    """Why a candle cannot be stored (see `CandleColumns.problems`), or None when it is sound."""
    found = CandleColumns.from_candles([candle]).problems()
    return found[0][1] if found else None
