"""Candle columns: conversions, ordering with the last row winning, and the integrity rules."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from domain.candle_columns import CandleColumns, candle_problem
from domain.candles import Candle
from storage.copy_format import CANDLE_COPY_COLUMNS, candle_copy_payload

M = 60_000
T = 1_700_000_040_000


def c(offset: int, close: float = 1.5, quote: float | None = None, **changes: float) -> Candle:
    values = {"open": 1.0, "high": 2.0, "low": 0.5, "volume": 3.0} | changes
    return Candle(
        "BTC-USDT", "1m", T + offset, values["open"], values["high"], values["low"], close, values["volume"], quote
    )


def test_candles_round_trip_with_and_without_quote_volume() -> None:
    given = [c(0), c(M, quote=7.25), c(2 * M, close=1.75)]
    assert CandleColumns.from_candles(given).to_candles() == given


def test_sorted_unique_keeps_the_last_row_of_each_open_time() -> None:
    columns = CandleColumns.from_candles([c(2 * M), c(0, close=1.1), c(M), c(0, close=1.2), c(2 * M, close=1.9)])
    assert not columns.is_sorted()
    result = columns.sorted_unique().to_candles()
    assert [(x.open_time_ms - T, x.close) for x in result] == [(0, 1.2), (M, 1.5), (2 * M, 1.9)]
    clean = CandleColumns.from_candles([c(0), c(M)])
    assert clean.sorted_unique() is clean


def test_each_rule_names_its_reason_and_the_first_rule_broken_wins() -> None:
    rows = [
        c(0),
        c(M, open=float("nan")),
        c(2 * M, volume=float("inf"), low=-1.0),  # non-finite is checked before non-positive
        c(3 * M, quote=-2.0),
        c(4 * M, low=0.0),
        c(5 * M, volume=-1.0),
        c(6 * M, high=1.2),
        c(7 * M + 17),
        c(8 * M, quote=float("nan")),  # NaN quote volume: not sent, which is allowed
    ]
    problems = CandleColumns.from_candles(rows).problems()
    assert problems == [
        (1, "non-finite value"),
        (2, "non-finite value"),
        (3, "invalid quote volume"),
        (4, "non-positive price"),
        (5, "negative volume"),
        (6, "high/low inconsistent with open/close"),
        (7, f"open time {T + 7 * M + 17} is not aligned to the 1m grid"),
    ]
    assert [candle_problem(row) for row in rows] == [None, *(reason for _, reason in problems), None]


def test_monthly_candles_are_not_checked_against_a_fixed_grid() -> None:
    month = Candle("BTC-USDT", "1M", 1_706_745_600_000, 1.0, 2.0, 0.5, 1.5, 3.0)  # 2024-02-01
    assert candle_problem(month) is None


def test_mixed_series_and_ragged_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="several pairs"):
        CandleColumns.from_candles([c(0), Candle("ETH-USDT", "1m", T, 1.0, 2.0, 0.5, 1.5, 3.0)])
    one = np.ones(2)
    with pytest.raises(ValueError, match="differ in length"):
        CandleColumns("BTC-USDT", "1m", np.zeros(3, np.int64), one, one, one, one, one, one)
    with pytest.raises(ValueError, match="several pairs"):
        eth = CandleColumns.from_candles([Candle("ETH-USDT", "1m", T, 1.0, 2.0, 0.5, 1.5, 3.0)])
        CandleColumns.concat([CandleColumns.from_candles([c(0)]), eth])


def test_concat_and_take_keep_row_order() -> None:
    joined = CandleColumns.concat([CandleColumns.from_candles([c(M)]), CandleColumns.from_candles([c(0), c(2 * M)])])
    assert [x.open_time_ms - T for x in joined.to_candles()] == [M, 0, 2 * M]
    assert [x.open_time_ms - T for x in joined.take(np.array([2, 0])).to_candles()] == [2 * M, M]


def test_binary_copy_payload_layout() -> None:
    """Signature and header, one fixed-size row per candle (NULL quote volume as length -1), trailer."""
    columns = CandleColumns.from_candles([c(0, quote=4.5), c(M)])
    payload = candle_copy_payload(columns, "src")
    assert payload.startswith(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
    assert payload.endswith(b"\xff\xff")
    offset, rows = 19, []
    while offset < len(payload) - 2:
        (count,) = struct.unpack_from(">h", payload, offset)
        offset += 2
        fields: list[bytes | None] = []
        for _ in range(count):
            (size,) = struct.unpack_from(">i", payload, offset)
            offset += 4
            fields.append(None if size < 0 else payload[offset : offset + size])
            offset += max(size, 0)
        rows.append(fields)
    assert len(rows) == 2
    assert all(len(row) == len(CANDLE_COPY_COLUMNS) for row in rows)
    with_quote, without = rows
    assert with_quote[:2] == [b"BTC-USDT", b"1m"]
    assert struct.unpack(">q", with_quote[2] or b"")[0] == (T - 946_684_800_000) * 1000
    assert struct.unpack(">d", with_quote[8] or b"")[0] == 4.5
    assert without[8] is None
    assert struct.unpack(">d", without[6] or b"")[0] == 1.5
    assert without[9] == b"src"
