"""The finality rule: a candle is final when a later one opens; holes and late updates are reported."""

from __future__ import annotations

from domain.candles import Candle
from market_data.assembler import CandleAssembler

M = 60_000
T = 1_700_000_040_000


def c(i: int, close: float = 1.0) -> Candle:
    return Candle("BTC-USDT", "1m", T + i * M, 1.0, 2.0, 0.5, close, 1.0)


def test_updates_of_the_forming_candle_replace_it_until_the_next_opens() -> None:
    assembler = CandleAssembler()
    assert assembler.update(c(0, 1.1)).final == []
    assert assembler.update(c(0, 1.2)).final == []
    result = assembler.update(c(1, 1.5))
    assert result.final == [c(0, 1.2)]
    assert result.hole is None
    assert assembler.forming == c(1, 1.5)
    assert assembler.last_final_open_ms == T


def test_a_skipped_open_time_is_a_hole_from_the_forming_candle_on() -> None:
    """The forming candle's last update is not known to be final when pushes were lost after it (issue
    16: a stalled stream that resumed stored a minute-old partial candle as final): it is healed too."""
    assembler = CandleAssembler()
    assembler.update(c(0))
    result = assembler.update(c(4))
    assert result.final == []
    assert result.hole == (T, T + 4 * M)
    assert assembler.forming == c(4)


def test_a_hole_after_a_restart_is_measured_from_the_last_stored_candle() -> None:
    assembler = CandleAssembler(last_final_open_ms=T)
    result = assembler.update(c(3))
    assert result.final == []
    assert result.hole == (T + M, T + 3 * M)


def test_late_updates_are_ignored() -> None:
    assembler = CandleAssembler()
    assembler.update(c(0))
    assembler.update(c(1))
    assert assembler.update(c(0, 9.0)).late
    assembler.update(c(2))
    assert assembler.update(c(1, 9.0)).late


def test_a_rest_confirmation_supersedes_the_forming_state() -> None:
    assembler = CandleAssembler()
    assembler.update(c(5))
    assembler.confirmed(T + 5 * M)
    assert assembler.forming is None
    assert assembler.update(c(5, 3.0)).late
    result = assembler.update(c(6))
    assert result.final == []
    assert result.hole is None


def test_a_rest_confirmation_behind_the_stream_reveals_the_candles_between() -> None:
    """The stream's first update was candle 3; a REST catch-up that left when candle 2 was still forming
    confirms only up to 1. Candle 2 is neither forming nor stored: it must be healed."""
    assembler = CandleAssembler()
    assembler.update(c(3))
    assert assembler.confirmed(T + M) == (T + 2 * M, T + 3 * M)
    assert assembler.forming == c(3)
    assert assembler.confirmed(T + 2 * M) is None  # caught up to just below the forming candle
    assert assembler.confirmed(T + 3 * M) is None  # at or past the forming one: it is dropped
    assert assembler.forming is None
