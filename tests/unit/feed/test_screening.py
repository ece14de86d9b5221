"""Screening a batch: invalid rows are rejected with their reason, order and duplicates repaired."""

from __future__ import annotations

from structlog.testing import capture_logs

from domain.candles import Candle
from market_data.screening import screen_candles

M = 60_000
T = 1_700_000_040_000


def c(offset_ms: int, close: float = 1.5, **changes: float) -> Candle:
    values = {"open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 3.0} | changes
    return Candle(
        "BTC-USDT",
        "1m",
        T + offset_ms,
        values["open"],
        values["high"],
        values["low"],
        values["close"],
        values["volume"],
    )


def test_every_kind_of_bad_row_is_rejected_with_its_reason() -> None:
    batch = [
        c(3 * M),
        c(0),
        c(M, open=float("nan")),
        c(2 * M, high=float("inf")),
        c(4 * M + 17),  # off the 1m grid
        c(5 * M, volume=-1.0),
        c(6 * M, low=0.0),
        c(7 * M, high=1.2, close=1.5),
        c(0, close=1.7),  # a duplicate of the second row: the last one wins
        Candle("ETH-USDT", "1m", T + 8 * M, 1.0, 2.0, 0.5, 1.5, 3.0),
    ]
    with capture_logs() as logs:
        screened = screen_candles(batch, "BTC-USDT", "1m", "test")
    assert [candle.open_time_ms for candle in screened.candles] == [T, T + 3 * M]
    assert screened.candles[0].close == 1.7
    assert screened.rejected == 7
    reasons = {entry.get("open_time_ms"): entry.get("reason") for entry in logs if entry["event"] == "candle_rejected"}
    assert reasons == {
        T + M: "non-finite value",
        T + 2 * M: "non-finite value",
        T + 4 * M + 17: f"open time {T + 4 * M + 17} is not aligned to the 1m grid",
        T + 5 * M: "negative volume",
        T + 6 * M: "non-positive price",
        T + 7 * M: "high/low inconsistent with open/close",
        T + 8 * M: "belongs to ETH-USDT 1m, not BTC-USDT 1m",
    }
    events = [entry["event"] for entry in logs]
    assert "candles_unsorted" in events
    assert {
        "event": "candles_duplicated",
        "log_level": "warning",
        "pair": "BTC-USDT",
        "interval": "1m",
        "source": "test",
        "count": 1,
    } in logs


def test_a_clean_batch_passes_silently() -> None:
    with capture_logs() as logs:
        screened = screen_candles([c(0), c(M), c(2 * M)], "BTC-USDT", "1m", "test")
    assert len(screened.accepted) == 3
    assert screened.rejected == 0
    assert logs == []
