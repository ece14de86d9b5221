from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from domain.market import parse_interval
from exchange.sim.candle_file import load_candle_file


def columns_from_file(path: Path, pair: str) -> CandleColumns:
    rows = load_candle_file(path)
    size = len(rows)
    return CandleColumns(
        pair,
        parse_interval(path.stem.rsplit("_", 1)[-1]),
        np.array([r.open_time_ms for r in rows], np.int64),
        np.array([float(r.open) for r in rows]),
        np.array([float(r.high) for r in rows]),
        np.array([float(r.low) for r in rows]),
        np.array([float(r.close) for r in rows]),
        np.array([float(r.volume) for r in rows]),
        np.full(size, np.nan),
    )


@pytest.fixture(scope="session")
def real_candles(shared_candles: Path) -> Callable[[str], CandleColumns]:
    """`real_candles("BTCUSDT_1m")`: a file of ../shared/data/candles as columns."""
    cache: dict[str, CandleColumns] = {}

    def load(name: str) -> CandleColumns:
        if name not in cache:
            symbol = name.split("_", 1)[0]
            cache[name] = columns_from_file(shared_candles / f"BINANCE_{name}.csv", f"{symbol[:-4]}-{symbol[-4:]}")
        return cache[name]

    return load
