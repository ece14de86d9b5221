"""Candle files: longer intervals aggregated from shorter ones, as the simulator serves them."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from exchange.sim.candle_file import FileCandle, aggregate, load_candle_file


def test_hourly_candles_aggregate_into_the_venues_own_4h_candles(shared_candles: Path) -> None:
    hourly = load_candle_file(shared_candles / "BINANCE_BTCUSDT_1h.csv")
    venue = {row.open_time_ms: row for row in load_candle_file(shared_candles / "BINANCE_BTCUSDT_4h.csv")}
    made = aggregate(hourly, "1h", "4h")
    assert len(made) > 2_000
    mismatched = []
    for row in made:
        theirs = venue[row.open_time_ms]
        same = (row.open, row.high, row.low, row.close) == (theirs.open, theirs.high, theirs.low, theirs.close)
        if not same or Decimal(row.volume) != Decimal(theirs.volume):
            mismatched.append(row.open_time_ms)
    assert mismatched == []


def test_incomplete_buckets_are_left_out_and_impossible_intervals_refused() -> None:
    minute = 60_000
    rows = [FileCandle(t * minute, "1", "2", "0.5", "1.5", "0.1") for t in (0, 1, 2, 3, 4, 5, 6, 7, 8, 10)]
    made = aggregate(rows, "1m", "5m")
    assert [(r.open_time_ms, r.volume) for r in made] == [(0, "0.5")]
    with pytest.raises(ValueError, match="cannot be made"):
        aggregate(rows, "5m", "3m")
    with pytest.raises(ValueError, match="cannot be made"):
        aggregate(rows, "5m", "5m")
