"""Where a replay's clock starts: never before what the store already holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from daemon.run_setup import RunSetupError, replay_series, replay_start
from domain.candles import Candle
from storage.candles import CandleStore, write_candles
from storage.database import Database

MINUTE = 60_000
T0 = 1_746_547_200_000  # 2025-05-06 16:00 UTC
ROWS = 1_500
START_BARS = 1_200


def candle_file(path: Path, pair: str, rows: int = ROWS) -> None:
    lines = ["open_time_ms,open,high,low,close,volume"]
    for i in range(rows):
        price = 100 + (i % 7)
        lines.append(f"{T0 + i * MINUTE},{price},{price + 1},{price - 1},{price + 0.5},{10 + i % 3}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    for pair in ("BTC-USDT", "ETH-USDT"):
        candle_file(tmp_path / f"{pair}.csv", pair)
    path = tmp_path / "replay.toml"
    path.write_text(
        f"""
env = "development"
[market_data]
source = "replay"
pairs = ["BTC-USDT", "ETH-USDT"]
intervals = ["1m"]
[replay]
candles = ["BTC-USDT:1m:BTC-USDT.csv", "ETH-USDT:1m:ETH-USDT.csv"]
start_bars = {START_BARS}
[storage]
data_dir = "{tmp_path / "data"}"
"""
    )
    return path


async def store(database: Database, pair: str, bars: range) -> None:
    async with database.pool.acquire() as connection:
        candles = [Candle(pair, "1m", T0 + i * MINUTE, 100.0, 101.0, 99.0, 100.5, 10.0) for i in bars]
        await write_candles(connection, candles, "file:imported")


async def test_an_empty_store_starts_the_replay_start_bars_into_the_files(database: Database, config: Path) -> None:
    settings = load_settings(config)
    start = await replay_start(settings, replay_series(settings, config), None, database)
    assert start.start_ms == T0 + START_BARS * MINUTE
    assert start.stored_until_ms is None


async def test_a_new_replay_starts_after_the_newest_stored_candle_of_its_pairs(
    database: Database, config: Path
) -> None:
    await store(database, "BTC-USDT", range(1_250))  # a stopped run's candles, say
    await store(database, "ETH-USDT", range(1_300))
    settings = load_settings(config)
    start = await replay_start(settings, replay_series(settings, config), None, database)
    assert start.stored_until_ms == T0 + 1_299 * MINUTE
    assert start.start_ms == T0 + 1_300 * MINUTE


async def test_stored_candles_before_start_bars_change_nothing(database: Database, config: Path) -> None:
    await store(database, "BTC-USDT", range(1_000))
    settings = load_settings(config)
    start = await replay_start(settings, replay_series(settings, config), None, database)
    assert start.start_ms == T0 + START_BARS * MINUTE
    assert start.stored_until_ms is None


async def test_a_store_holding_the_files_to_their_end_is_refused_saying_what_to_do(
    database: Database, config: Path
) -> None:
    await store(database, "ETH-USDT", range(ROWS))  # `candles import` of the whole file
    settings = load_settings(config)
    with pytest.raises(RunSetupError) as refused:
        await replay_start(settings, replay_series(settings, config), None, database)
    message = str(refused.value)
    assert "up to 2025-05-07T16:59:00+00:00, the end of replay.candles" in message
    assert "storage.data_dir" in message
    assert "tradingd db reset --table candles --yes" in message
    assert await CandleStore.of(database).span("ETH-USDT", "1m") == (T0, T0 + (ROWS - 1) * MINUTE)


async def test_a_store_holding_one_pairs_file_to_its_end_is_refused_though_another_file_is_longer(
    database: Database, config: Path, tmp_path: Path
) -> None:
    candle_file(tmp_path / "ETH-USDT.csv", "ETH-USDT", rows=ROWS + 3)  # ends 3 minutes after BTC's
    await store(database, "BTC-USDT", range(ROWS))
    settings = load_settings(config)
    with pytest.raises(RunSetupError, match=r"the end of replay\.candles"):
        await replay_start(settings, replay_series(settings, config), None, database)
