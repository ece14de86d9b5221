"""A dataset build computes its features in chunks, to report progress between them: the same bits as
one run of the pipeline, context candles included."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from features.definitions import V1
from learning import datasets
from tests.unit.features.test_pipeline import open_pipeline


class Counter:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def advance(self, n: int = 1) -> None:
        self.steps.append(n)


def test_chunked_features_equal_one_run_to_the_last_bit(
    real_candles: Callable[[str], CandleColumns], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = V1.with_context(["4h"])
    base, context = real_candles("BTCUSDT_1h"), {"4h": real_candles("BTCUSDT_4h")}
    rows = base.take(np.arange(2_000, 3_000))
    whole, rest = open_pipeline(spec, base, context, 2_000)
    expected = whole.run(rows, rest)

    monkeypatch.setattr(datasets, "FEATURE_CHUNK", 97)  # chunks that end between 4h closes
    chunked, rest = open_pipeline(spec, base, context, 2_000)
    counter = Counter()
    got = datasets._run_features(chunked, rows, rest, counter)
    assert np.array_equal(got, expected)
    assert counter.steps == [97] * 10 + [30]
