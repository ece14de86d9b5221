"""Replay of candle files at simulated time.

`ReplayClock` maps wall time to simulated time: real time (speed 1), N times real time, or manual
(tests advance it). `ReplaySeries` answers what the venue would show at a simulated instant: the
closed candles before it and the forming one, whose values move towards the file's and equal the
file's text exactly during the candle's last simulated second.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from domain.candles import interval_ms
from domain.market import Interval
from exchange.sim.candle_file import FileCandle


class ReplayClock:
    """Simulated epoch-ms time. `speed=None` is manual: only `advance`/`set` move it."""

    def __init__(
        self, start_ms: int, speed: float | None = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for a manual clock)")
        self._start_ms = start_ms
        self._speed = speed
        self._monotonic = monotonic
        self._wall_start = monotonic()
        self._manual_ms = start_ms

    @property
    def manual(self) -> bool:
        return self._speed is None

    def now_ms(self) -> int:
        if self._speed is None:
            return self._manual_ms
        return self._start_ms + int((self._monotonic() - self._wall_start) * 1000 * self._speed)

    def set(self, ms: int) -> None:
        if self._speed is not None:
            raise RuntimeError("only a manual clock can be set")
        if ms < self._manual_ms:
            raise ValueError("simulated time does not go backwards")
        self._manual_ms = ms

    def advance(self, ms: int) -> None:
        self.set(self._manual_ms + ms)


@dataclass(frozen=True, slots=True)
class KlineView:
    """A candle as the venue shows it at some instant (text values, like the wire)."""

    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    final: bool

    def wire_json(self) -> bytes:
        """The kline object of a REST page: text values, `time` the open time."""
        return msgspec.json.encode(
            {
                "open": self.open,
                "close": self.close,
                "high": self.high,
                "low": self.low,
                "volume": self.volume,
                "time": self.open_time_ms,
            }
        )


class ReplaySeries:
    def __init__(self, pair: str, interval: Interval, rows: list[FileCandle]) -> None:
        self.pair = pair
        self.interval = interval
        self.rows = rows
        self.times = [row.open_time_ms for row in rows]
        self.step_ms = interval_ms(interval)
        self._final_json: dict[int, bytes] = {}

    @property
    def first_ms(self) -> int:
        return self.times[0]

    @property
    def last_ms(self) -> int:
        return self.times[-1]

    def view(self, index: int, now_ms: int) -> KlineView | None:
        """Row `index` as seen at `now_ms`: None before it opens, forming while open, final after."""
        row = self.rows[index]
        if now_ms < row.open_time_ms:
            return None
        progress = self._progress(index, now_ms)
        if progress >= 1:
            return KlineView(row.open_time_ms, row.open, row.high, row.low, row.close, row.volume, True)
        return _forming(row, progress)

    def kline_json(self, index: int, now_ms: int) -> bytes:
        """`view(index, now_ms).wire_json()` for a row that has opened; a final row's JSON is kept,
        so a page of 1440 closed candles costs a join, not 1440 encodings (the simulator must not
        be what a client benchmark measures)."""
        final = self._progress(index, now_ms) >= 1
        if final and index in self._final_json:
            return self._final_json[index]
        view = self.view(index, now_ms)
        if view is None:
            raise ValueError(f"row {index} has not opened at {now_ms}")
        encoded = view.wire_json()
        if final:
            self._final_json[index] = encoded
        return encoded

    def _progress(self, index: int, now_ms: int) -> float:
        """How far row `index` has formed at `now_ms`: 1 or more once its last second has begun (final)."""
        return (now_ms - self.rows[index].open_time_ms + 1000) / self.step_ms

    def visible_range(self, now_ms: int) -> tuple[int, int]:
        """Indexes [start, stop) of the rows that have opened by `now_ms`."""
        return 0, bisect.bisect_right(self.times, now_ms)

    def index_at_or_after(self, ms: int) -> int:
        return bisect.bisect_left(self.times, ms)


def _forming(row: FileCandle, progress: float) -> KlineView:
    """A deterministic path from the open to the file's values; rounded like the file's prices."""
    places = max(_places(row.open), _places(row.close), _places(row.high), _places(row.low))
    o, h, low, c = (Decimal(row.open), Decimal(row.high), Decimal(row.low), Decimal(row.close))
    p = Decimal(str(round(progress, 6)))
    close = o + (c - o) * p
    high = max(o, close) + (h - max(o, c)) * p
    low_now = min(o, close) - (min(o, c) - low) * p
    volume = Decimal(row.volume) * p
    quantum = Decimal(1).scaleb(-places)
    return KlineView(
        row.open_time_ms,
        row.open,
        _text(high.quantize(quantum)),
        _text(low_now.quantize(quantum)),
        _text(close.quantize(quantum)),
        _text(volume.quantize(Decimal(1).scaleb(-max(_places(row.volume), 3)))),
        False,
    )


def _places(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value != 0 else "0"
