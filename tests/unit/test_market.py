"""Pairs and intervals as BingX names them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.market import INTERVALS, interval_duration, is_valid_pair


@pytest.mark.parametrize(
    ("interval", "duration"),
    [
        ("1m", timedelta(minutes=1)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
    ],
)
def test_fixed_intervals_have_durations(interval: str, duration: timedelta) -> None:
    assert interval_duration(interval) == duration  # type: ignore[arg-type]


def test_every_interval_but_the_month_has_a_duration() -> None:
    assert INTERVALS[-1] == "1M"
    durations = [interval_duration(interval) for interval in INTERVALS[:-1]]
    assert durations == sorted(durations)
    with pytest.raises(ValueError, match="calendar month"):
        interval_duration("1M")


@pytest.mark.parametrize("symbol", ["BTC-USDT", "1000PEPE-USDT", "ETH-USDC"])
def test_valid_pairs(symbol: str) -> None:
    assert is_valid_pair(symbol)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "btc-usdt", "BTC-", "-USDT", "BTC-USDT-SWAP", "BTC/USDT", ""])
def test_invalid_pairs(symbol: str) -> None:
    assert not is_valid_pair(symbol)
