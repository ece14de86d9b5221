"""Trading pairs and candle intervals as BingX names them (see ../shared/bingx/API.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final, Literal, get_args

Interval = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
"""Every kline interval the BingX swap API accepts, REST and websocket alike."""

INTERVALS: Final[tuple[Interval, ...]] = get_args(Interval)

_FIXED_SECONDS: Final[dict[str, int]] = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

PAIR_PATTERN: Final[str] = r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$"
_PAIR_RE: Final[re.Pattern[str]] = re.compile(PAIR_PATTERN)


def interval_duration(interval: Interval) -> timedelta:
    """The fixed length of an interval. `1M` (calendar month) has none and raises ValueError."""
    if interval == "1M":
        raise ValueError("the 1M interval is a calendar month and has no fixed duration")
    return timedelta(seconds=int(interval[:-1]) * _FIXED_SECONDS[interval[-1]])


def is_valid_pair(symbol: str) -> bool:
    """True for BingX swap symbols: `BASE-QUOTE`, upper case, hyphen required (e.g. `BTC-USDT`)."""
    return _PAIR_RE.fullmatch(symbol) is not None


def parse_interval(text: str) -> Interval:
    """The interval named `text`, or ValueError."""
    for interval in INTERVALS:
        if interval == text:
            return interval
    raise ValueError(f"unknown interval {text!r}; expected one of {' '.join(INTERVALS)}")
