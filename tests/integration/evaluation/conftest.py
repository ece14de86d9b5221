"""What the backtest agreement tests share: 4,000 real 1m candles and their v2 features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from features.batch import batch_features
from features.definitions import V2


@pytest.fixture(scope="module")
def span(real_candles: Callable[[str], CandleColumns]) -> tuple[CandleColumns, np.ndarray]:
    candles = real_candles("BTCUSDT_1m")
    features = batch_features(V2, candles)
    rows = np.arange(2_000, 6_000)
    return candles.take(rows), features[rows]
