"""Funding of a perpetual swap: at each funding time (every 8 hours on BingX: 00:00, 08:00 and 16:00 UTC)
a position pays `quantity x mark x rate` to the other side: a long pays a positive rate, a short receives
it, and the reverse for a negative rate.

In bar terms (training, backtests, their metrics), a funding time T is charged at the close of the bar
whose span `(open, open + interval]` holds T, on the position held through that bar (after the fills at
its open), marked at its close. On 1m bars T is the close of the bar that opens a minute before it. The
payment is rounded to 1e-8 USDT, as fees are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from domain.fills import FEE_QUANTUM

FUNDING_INTERVAL_MS = 8 * 3_600_000
BASE_RATE = Decimal("0.0001")
"""BingX's rate when the premium is nil (0.01% per 8 hours: its interest component). The offline preset
charges it at every funding time, for data that comes with no funding history of its own."""
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class FundingSchedule:
    """The funding rates of one pair over a span: each funding time and its rate, ascending."""

    times_ms: Ints
    rates: Floats
    source: str
    """Where the rates came from: `venue`, `file:NAME`, `preset:base_rate`, or `none`."""

    def __post_init__(self) -> None:
        if len(self.times_ms) != len(self.rates):
            raise ValueError("one rate per funding time")
        if len(self.times_ms) > 1 and not np.all(np.diff(self.times_ms) > 0):
            raise ValueError("funding times must be ascending and distinct")
        if not np.all(np.isfinite(self.rates)):
            raise ValueError("funding rates must be finite")

    def __len__(self) -> int:
        return len(self.times_ms)

    def per_bar(self, open_time_ms: Ints, interval_ms: int) -> Floats:
        """The rate charged at each bar's close (0 where no funding time falls within the bar)."""
        out = np.zeros(len(open_time_ms))
        if not len(self) or not len(open_time_ms):
            return out
        closes = open_time_ms + interval_ms
        bar = np.searchsorted(closes, self.times_ms, side="left")  # the first bar closing at or after T
        inside = bar < len(open_time_ms)
        inside[inside] &= open_time_ms[bar[inside]] < self.times_ms[inside]
        np.add.at(out, bar[inside], self.rates[inside])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "times_ms": [int(t) for t in self.times_ms],
            "rates": [repr(float(r)) for r in self.rates],
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> FundingSchedule:
        times, rates = document.get("times_ms"), document.get("rates")
        if not (isinstance(times, list) and isinstance(rates, list) and isinstance(document.get("source"), str)):
            raise ValueError("a funding schedule needs source, times_ms and rates")
        return cls(np.array(times, np.int64), np.array([float(r) for r in rates]), str(document["source"]))


NO_FUNDING = FundingSchedule(np.empty(0, np.int64), np.empty(0), "none")


def base_rate_schedule(start_ms: int, end_ms: int) -> FundingSchedule:
    """The offline preset: `BASE_RATE` at every funding time in `[start_ms, end_ms)`."""
    first = -(-start_ms // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
    times = np.arange(first, end_ms, FUNDING_INTERVAL_MS, dtype=np.int64)
    return FundingSchedule(times, np.full(len(times), float(BASE_RATE)), "preset:base_rate")


def funding_payment(quantity: Decimal, mark: Decimal, rate: float) -> Decimal:
    """What a position of signed `quantity` pays at `mark` (negative: it receives), to 1e-8 USDT."""
    if not quantity or not rate:
        return Decimal(0)
    return (quantity * mark * Decimal(repr(float(rate)))).quantize(FEE_QUANTUM)


def funding_times_within(open_ms: int, interval_ms: int) -> list[int]:
    """The funding times a candle's span `(open, open + interval]` holds (the rule of `per_bar`): those
    its close pays for, on the position held through it."""
    first = open_ms // FUNDING_INTERVAL_MS * FUNDING_INTERVAL_MS + FUNDING_INTERVAL_MS
    return list(range(first, open_ms + interval_ms + 1, FUNDING_INTERVAL_MS))
