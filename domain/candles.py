"""Candles: one OHLCV bar of a pair and interval, keyed by its open time.

Times are epoch milliseconds (UTC) as integers, the venue's own unit: exact, hashable and cheap,
where datetimes would cost a conversion per bar on every hot path. Convert at the edges.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.market import Interval, interval_duration


@dataclass(frozen=True, slots=True)
class Candle:
    pair: str
    interval: Interval
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float | None = None

    @property
    def open_time(self) -> datetime:
        return ms_to_datetime(self.open_time_ms)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ms(moment: datetime) -> int:
    """Exact integer arithmetic (float timestamps can be off by one millisecond)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times must carry a time zone (UTC)")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@functools.cache
def interval_ms(interval: Interval) -> int:
    return int(interval_duration(interval).total_seconds() * 1000)


def iso_minute(time_ms: int) -> str:
    """`2025-01-27 12:42` (UTC) for a time in milliseconds."""
    return datetime.fromtimestamp(int(time_ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
