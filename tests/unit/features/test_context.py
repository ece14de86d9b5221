"""Higher-interval context joins base candles only after its own candle has closed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from domain.candle_columns import CandleColumns
from features.batch import batch_features
from features.context import ContextAligner, align_context
from features.definitions import V1

HOUR = 3_600_000
MINUTE = 60_000
FOUR_HOURS = 4 * HOUR


def test_a_context_candle_is_used_only_once_closed_before_the_base_candle_opens() -> None:
    base = np.arange(0, 3 * HOUR, MINUTE, dtype=np.int64)
    context = np.array([0, HOUR, 2 * HOUR], dtype=np.int64)
    values = np.array([[10.0], [11.0], [12.0]])
    aligned = align_context(base, context, "1h", values, "1m")[:, 0]
    assert np.isnan(aligned[:60]).all()  # the first hour's candle closes at 1:00
    assert (aligned[60:120] == 10.0).all()  # from 1:00 the candle of 0:00-1:00 is known
    assert (aligned[120:] == 11.0).all()  # the 2:00-3:00 candle never closes within the base span


def test_live_alignment_equals_batch_alignment_on_real_candles(real_candles: Callable[[str], CandleColumns]) -> None:
    """1h candles with 4h context (the files overlap for a year)."""
    context = real_candles("BTCUSDT_4h")
    rows = batch_features(V1, context)
    base = real_candles("BTCUSDT_1h").open_time_ms
    assert base[0] == context.open_time_ms[0]
    batch = align_context(base, context.open_time_ms, "4h", rows, "1h")
    aligner = ContextAligner("4h", "1h", rows.shape[1])
    live = []
    arrived = 0
    for open_ms in base:
        # A context candle becomes final when the next one opens: feed those the live side has seen.
        while arrived < len(context) and context.open_time_ms[arrived] + FOUR_HOURS <= open_ms:
            aligner.add(int(context.open_time_ms[arrived]), rows[arrived])
            arrived += 1
        live.append(aligner.for_base(int(open_ms)))
    assert np.array_equal(np.array(live), batch, equal_nan=True)
    assert np.isnan(batch[:4]).all()
    assert not np.isnan(batch[-1]).all()
    # No look-ahead: no base candle sees a context candle that closed after it opened.
    used = np.searchsorted(context.open_time_ms + FOUR_HOURS, base, side="right") - 1
    assert (used >= 0).sum() > 8_000
    assert (context.open_time_ms[used[used >= 0]] + FOUR_HOURS <= base[used >= 0]).all()


def test_a_shorter_context_candle_is_used_once_closed_a_context_interval_before_the_base_candle_closes() -> None:
    base = np.arange(0, HOUR, 5 * MINUTE, dtype=np.int64)  # 5m candles
    context = np.arange(0, HOUR, MINUTE, dtype=np.int64)  # 1m candles
    values = np.arange(60, dtype=np.float64)[:, None]
    aligned = align_context(base, context, "1m", values, "5m")[:, 0]
    # The 5m candle of 0:00-0:05 sees the 1m candle of 0:03-0:04 (closed at 0:04), that of 0:05-0:10 the one of 0:08.
    assert aligned.tolist() == [3.0 + 5 * k for k in range(12)]
    aligner = ContextAligner("1m", "5m", 1, keep=8)
    for k in range(9):
        aligner.add(k * MINUTE, values[k])
    assert aligner.for_base(0)[0] == 3.0
    assert aligner.for_base(5 * MINUTE)[0] == 8.0
