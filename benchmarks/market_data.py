"""Market-data benchmark: backfill throughput next to the raw COPY rate of the same database in the
same run, websocket frame decode rate, and the time from a candle's close in the simulator to its
row in the database (p50/p99).

    uv run python -m benchmarks.market_data [--days N] [--candles N] [--write]

`--write` replaces the market-data section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import write_section
from benchmarks.venue import simulator_process
from exchange.bingx.rest import BingXRest
from exchange.bingx.wire import decode_frame, parse_kline_push
from exchange.bingx.ws import MarketDataStream
from exchange.sim.candle_file import FileCandle, as_columns
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from market_data.backfill import PAGE, backfill
from market_data.live import FeedTopic, LiveIngestor
from storage.candles import CandleStore
from storage.copy_format import CANDLE_COPY_COLUMNS, candle_copy_payload
from storage.database import Database, StorageOptions
from storage.migrator import migrate

START, END = "<!-- market-data-bench:start -->", "<!-- market-data-bench:end -->"
MINUTE = 60_000
T0 = 1_735_689_600_000  # 2025-01-01T00:00Z


def rows(count: int, start: int = T0) -> list[FileCandle]:
    return [
        FileCandle(
            start + i * MINUTE,
            f"{94000 + (i * 7) % 900}.5",
            f"{94010 + (i * 7) % 900}.1",
            f"{93990 + (i * 7) % 900}.7",
            f"{94003 + (i * 7) % 900}.2",
            f"{(i * 13) % 97}.125",
        )
        for i in range(count)
    ]


async def no_sleep(_seconds: float) -> None:
    return None


async def warm_simulator(rest: BingXRest, data: list[FileCandle]) -> None:
    """Read every page once, unmeasured: the simulator keeps each closed candle's JSON after its first
    request, as a venue serves its history from cache. The measured backfill then costs the simulator
    a join per page, and the figure is about our client and database."""
    for start in range(0, len(data), PAGE):
        await rest.klines("BTC-USDT", "1m", start_ms=data[start].open_time_ms, limit=PAGE)


async def backfill_vs_copy(days: int) -> dict[str, float]:
    """The simulator runs in its own process (`tradingd sim`), as the venue is remote: its CPU is not
    ours. COPY is measured on the same database in the same run."""
    data = rows(days * 1440 + 1)
    with tempfile.TemporaryDirectory() as scratch:
        database = await Database.open(StorageOptions(url=None, data_dir=Path(scratch), pool_max_size=2))
        try:
            async with simulator_process(data, Path(scratch)) as rest_url:
                async with database.pool.acquire() as connection:
                    await migrate(connection)
                    payload = memoryview(candle_copy_payload(as_columns(data[:-1], "BTC-USDT", "1m"), "bench"))
                    began = time.perf_counter()
                    await connection.copy_to_table(
                        "candles", source=payload, columns=CANDLE_COPY_COLUMNS, format="binary"
                    )
                    copy_rate = (len(data) - 1) / (time.perf_counter() - began)
                    await connection.execute("TRUNCATE candles")
                async with BingXRest(rest_url, sleep=no_sleep) as rest:
                    await warm_simulator(rest, data)
                store = CandleStore.of(database)
                async with BingXRest(rest_url, sleep=no_sleep) as rest:
                    began = time.perf_counter()
                    result = await backfill(rest, store, "BTC-USDT", "1m")
                    elapsed = time.perf_counter() - began
        finally:
            await database.close()
    assert result.reached_earliest
    assert result.written == len(data) - 1
    return {"copy_rows_s": copy_rate, "backfill_rows_s": result.written / elapsed, "rows": result.written}


def decode_rate(frames: int = 50_000) -> float:
    payload = gzip.compress(
        json.dumps(
            {
                "code": 0,
                "dataType": "BTC-USDT@kline_1m",
                "s": "BTC-USDT",
                "data": [
                    {"c": "43561.3", "o": "43557.5", "h": "43563.0", "l": "43553.0", "v": "13.8908", "T": 1703300820000}
                ],
            },
            separators=(",", ":"),
        ).encode()
    )
    began = time.perf_counter()
    for _ in range(frames):
        parse_kline_push(json.loads(decode_frame(payload)), "1m")
    return frames / (time.perf_counter() - began)


async def close_to_database_latency(candles: int, speed: float) -> list[float]:
    """Replay at `speed` times real time; for each candle, the time from the simulator step that
    opened the next candle (the close) to the row's `ingested_at` in the database."""
    data = rows(candles + 2)
    closes: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        database = await Database.open(StorageOptions(url=None, data_dir=Path(scratch), pool_max_size=4))
        async with database.pool.acquire() as connection:
            await migrate(connection)
        simulator = BingXSimulator([ReplaySeries("BTC-USDT", "1m", data)], ReplayClock(data[0].open_time_ms))
        await simulator.start()
        rest = BingXRest(simulator.rest_url, sleep=no_sleep)
        stream = MarketDataStream(simulator.ws_url, ["BTC-USDT@kline_1m"])
        ingestor = LiveIngestor(rest, CandleStore(database.pool), stream, [FeedTopic("BTC-USDT", "1m")])
        running = asyncio.create_task(ingestor.run())
        try:
            while not simulator.stream.subscribe_log:  # noqa: ASYNC110 (polling another object's state)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            for _ in range(candles * 60):
                opens_ms = simulator.clock.now_ms() + 1000
                if opens_ms % MINUTE == 0:  # this step opens a candle: the previous one closes now
                    closes[opens_ms - MINUTE] = time.time()
                await simulator.market.step(1)
                await asyncio.sleep(1 / speed)
            await asyncio.sleep(0.5)
            async with database.pool.acquire() as connection:
                stored = await connection.fetch(
                    "SELECT (extract(epoch FROM open_time) * 1000)::bigint AS t, extract(epoch FROM ingested_at) AS at "
                    "FROM candles ORDER BY open_time"
                )
        finally:
            await ingestor.stop()
            await running
            await rest.close()
            await simulator.stop()
            await database.close()
    return [float(row["at"]) - closes[row["t"]] for row in stored if row["t"] in closes]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def markdown(backfill_figures: dict[str, float], decode: float, latency: list[float], speed: float) -> str:
    copy = backfill_figures["copy_rows_s"]
    return "\n".join(
        [
            START,
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.market_data --write` on "
            f"{platform.machine()}, Python {platform.python_version()}, embedded PostgreSQL, simulator on loopback.",
            "",
            "| what | figure | beside it, same run |",
            "| --- | --- | --- |",
            f"| raw binary `COPY` of the same rows, pre-encoded, one statement | {copy:,.0f} rows/s | baseline |",
            f"| backfill, {backfill_figures['rows']:,.0f} 1m candles through REST pages of 1440 (simulator in its own "
            "process) "
            f"| {backfill_figures['backfill_rows_s']:,.0f} candles/s "
            f"| {backfill_figures['backfill_rows_s'] / copy:.0%} of COPY (goal: 75%) |",
            f"| websocket kline frame decode (gzip, JSON, parse) | {decode:,.0f} frames/s | |",
            f"| candle close in the simulator to its row in the database ({len(latency)} candles, replay at "
            f"{speed:.0f}x) | p50 {statistics.median(latency) * 1000:.1f} ms, "
            f"p99 {percentile(latency, 0.99) * 1000:.1f} ms | |",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--candles", type=int, default=100)
    parser.add_argument("--speed", type=float, default=600.0, help="replay speed for the latency run")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(backfill_vs_copy(args.days))
    decode = decode_rate()
    latency = asyncio.run(close_to_database_latency(args.candles, args.speed))
    section = markdown(figures, decode, latency, args.speed)
    print(section)
    if args.write:
        write_section(START, END, section, heading="Market data")


if __name__ == "__main__":
    main()
