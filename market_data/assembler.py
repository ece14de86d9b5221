"""Turn a stream of kline updates into final candles (pure; no I/O, no clock).

BingX pushes the forming candle about once a second with no "closed" flag. A candle is final when an
update for its successor arrives; its last update before that is its final state. A later candle that
skips open times reveals a hole (pushes lost in the stream) for the caller to heal over REST, and the
hole starts at the forming candle: pushes lost after its last update may have changed it. Updates
for a candle already finalised are late and ignored (the REST confirmation is authoritative).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.candles import Candle, interval_ms


@dataclass(frozen=True)
class Assembled:
    final: list[Candle] = field(default_factory=list)
    hole: tuple[int, int] | None = None
    """Open times [start, end) that no update covered, between the last final candle and this one."""
    late: bool = False


class CandleAssembler:
    def __init__(self, last_final_open_ms: int | None = None) -> None:
        self.forming: Candle | None = None
        self.last_final_open_ms = last_final_open_ms

    def update(self, candle: Candle) -> Assembled:
        step = interval_ms(candle.interval)
        if self.last_final_open_ms is not None and candle.open_time_ms <= self.last_final_open_ms:
            return Assembled(late=True)
        current = self.forming
        if current is None or candle.open_time_ms == current.open_time_ms:
            self.forming = candle
            hole = None
            if current is None and self.last_final_open_ms is not None:
                expected = self.last_final_open_ms + step
                hole = (expected, candle.open_time_ms) if candle.open_time_ms > expected else None
            return Assembled(hole=hole)
        if candle.open_time_ms < current.open_time_ms:
            return Assembled(late=True)
        self.forming = candle
        if candle.open_time_ms > current.open_time_ms + step:
            # Pushes were lost after `current`'s last update too, perhaps: its state is not known to be
            # final, so it is healed over REST with the candles that no update covered.
            return Assembled(hole=(current.open_time_ms, candle.open_time_ms))
        self.last_final_open_ms = current.open_time_ms
        return Assembled(final=[current])

    def confirmed(self, open_time_ms: int) -> tuple[int, int] | None:
        """A candle was stored as final by another path (REST): forget any older forming state. Returns
        the open times [start, end) between it and a forming candle that is further ahead: the stream
        moved on while the REST answer was under way, and nothing else would store them."""
        if self.last_final_open_ms is None or open_time_ms > self.last_final_open_ms:
            self.last_final_open_ms = open_time_ms
        forming = self.forming
        if forming is not None and forming.open_time_ms <= open_time_ms:
            self.forming = None
            return None
        if forming is not None:
            expected = self.last_final_open_ms + interval_ms(forming.interval)
            if forming.open_time_ms > expected:
                return expected, forming.open_time_ms
        return None
