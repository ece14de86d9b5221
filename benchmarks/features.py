"""Feature benchmark: the v2 engine's per-candle update next to recomputing the same window from scratch
with TA-Lib in the same run, and the dataset build rate for a month of 1m candles (from a full store, and
from an empty one that fetches everything from the simulator).

    uv run python -m benchmarks.features [--write]

Uses ../shared/data/candles (BTCUSDT 1m, January 2025) when present, else synthetic candles.
`--write` replaces the features section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from benchmarks.market_data import no_sleep, percentile, rows
from benchmarks.report import write_section
from benchmarks.venue import simulator_process
from domain.candle_columns import CandleColumns
from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import FileCandle, as_columns, load_candle_file
from features.batch import batch_features
from features.definitions import V2
from features.engine import FeatureEngine
from learning.datasets import build_dataset
from storage.candles import CandleStore
from storage.database import Database, StorageOptions
from storage.datasets import DatasetStore
from storage.migrator import migrate

START, END = "<!-- features-bench:start -->", "<!-- features-bench:end -->"
SHARED_MONTH = Path(__file__).resolve().parents[2] / "shared" / "data" / "candles" / "BINANCE_BTCUSDT_1m_2025-01.csv"
MINUTE = 60_000


def month() -> tuple[list[FileCandle], str]:
    if SHARED_MONTH.is_file():
        return load_candle_file(SHARED_MONTH), f"real candles ({SHARED_MONTH.name})"
    return rows(43_200), "synthetic candles (../shared/data absent)"


def update_latency(candles: CandleColumns, updates: int = 3_000) -> dict[str, float]:
    """Microseconds per candle: the engine's update, and a from-scratch batch over the warm-up window
    (what a stateless implementation would do per candle), on the same candles."""
    warm = V2.warmup_bars
    engine = FeatureEngine(V2, candles.take(np.arange(warm)))
    incremental, scratch = [], []
    for i in range(warm, warm + updates):
        args = (int(candles.open_time_ms[i]), candles.open[i], candles.high[i], candles.low[i], candles.close[i])
        began = time.perf_counter()
        engine.update(*args, float(candles.volume[i]))
        incremental.append(time.perf_counter() - began)
        window = candles.take(np.arange(i - warm + 1, i + 1))
        began = time.perf_counter()
        batch_features(V2, window)
        scratch.append(time.perf_counter() - began)
    return {
        "inc_p50": percentile(incremental, 0.5) * 1e6,
        "inc_p99": percentile(incremental, 0.99) * 1e6,
        "scratch_p50": percentile(scratch, 0.5) * 1e6,
        "scratch_p99": percentile(scratch, 0.99) * 1e6,
    }


async def dataset_rates(data: list[FileCandle]) -> dict[str, float]:
    """Candles/s of `dataset build` over the month after the warm-up: from a store that holds every
    candle, then from an empty store (everything fetched from the simulator, in its own process)."""
    first, last = data[V2.warmup_bars].open_time_ms, data[-1].open_time_ms  # the last candle stays forming
    span = len(data) - 1 - V2.warmup_bars
    with tempfile.TemporaryDirectory() as scratch:
        database = await Database.open(StorageOptions(url=None, data_dir=Path(scratch), pool_max_size=4))
        try:
            async with simulator_process(data, Path(scratch)) as rest_url:
                async with database.pool.acquire() as connection:
                    await migrate(connection)
                store, datasets = CandleStore.of(database), DatasetStore(database.pool)
                async with BingXRest(rest_url, sleep=no_sleep) as rest:
                    began = time.perf_counter()
                    fetched = await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1m", first, last)
                    from_venue = time.perf_counter() - began
                    async with database.pool.acquire() as connection:
                        await connection.execute("DELETE FROM dataset_versions")
                    began = time.perf_counter()
                    stored = await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1m", first, last)
                    from_store = time.perf_counter() - began
        finally:
            await database.close()
    assert fetched.rows == stored.rows == span
    assert fetched.content_hash == stored.content_hash
    assert stored.fetched_windows == 0
    return {"rows": span, "from_store": span / from_store, "from_venue": span / from_venue}


def markdown(source: str, latency: dict[str, float], rates: dict[str, float]) -> str:
    return "\n".join(
        [
            START,
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.features --write` on "
            f"{platform.machine()}, Python {platform.python_version()}, one thread, {source}.",
            "",
            "| what | figure | beside it, same run |",
            "| --- | --- | --- |",
            "| v2 feature update per candle (engine: TA-Lib stream handles and exact windows) "
            f"| p50 {latency['inc_p50']:.1f} us, p99 {latency['inc_p99']:.1f} us "
            f"| recomputing the same {V2.warmup_bars}-candle window from scratch with TA-Lib: "
            f"p50 {latency['scratch_p50']:.0f} us, p99 {latency['scratch_p99']:.0f} us "
            f"({latency['scratch_p50'] / latency['inc_p50']:.0f}x) |",
            f"| `dataset build`, {rates['rows']:,.0f} 1m candles (a month), v2, every candle already stored "
            f"| {rates['from_store']:,.0f} candles/s | |",
            f"| the same build from an empty store (all fetched from the simulator, in its own process) "
            f"| {rates['from_venue']:,.0f} candles/s | |",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    data, source = month()
    latency = update_latency(as_columns(data, "BTC-USDT", "1m"))
    rates = asyncio.run(dataset_rates(data))
    section = markdown(source, latency, rates)
    print(section)
    if args.write:
        write_section(START, END, section, heading="Features and datasets")


if __name__ == "__main__":
    main()
