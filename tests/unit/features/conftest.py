from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from domain.candle_columns import CandleColumns
from domain.market import parse_interval
from exchange.sim.candle_file import as_columns, load_candle_file


@pytest.fixture(scope="session")
def real_candles(shared_candles: Path) -> Callable[[str], CandleColumns]:
    """`real_candles("BTCUSDT_1m")`: a file of ../shared/data/candles as columns."""
    cache: dict[str, CandleColumns] = {}

    def load(name: str) -> CandleColumns:
        if name not in cache:
            symbol = name.split("_", 1)[0]
            interval = parse_interval(name.rsplit("_", 1)[-1])
            rows = load_candle_file(shared_candles / f"BINANCE_{name}.csv")
            cache[name] = as_columns(rows, f"{symbol[:-4]}-{symbol[-4:]}", interval)
        return cache[name]

    return load
