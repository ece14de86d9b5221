"""Storage benchmark: embedded PostgreSQL start, migrations, and table export/import throughput,
next to the raw `COPY` rate of the same database in the same run.

    uv run python -m benchmarks.storage [--rows N] [--repeat K] [--write]

`--write` replaces the storage section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.report import write_section
from domain.candles import Candle, datetime_to_ms
from storage.candles import write_candles
from storage.database import Database, StorageOptions
from storage.migrator import migrate
from storage.table_io import export_table, import_table, reset_table

START, END = "<!-- storage-bench:start -->", "<!-- storage-bench:end -->"
CANDLE_COLUMNS = ("pair", "interval", "open_time", "open", "high", "low", "close", "volume", "quote_volume", "source")


def candle_rows(count: int) -> list[tuple[object, ...]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[tuple[object, ...]] = []
    for i in range(count):
        price = 42000.0 + (i % 997) * 0.5
        rows.append(
            (
                "BTC-USDT",
                "1m",
                start + timedelta(minutes=i),
                price,
                price + 5.5,
                price - 4.25,
                price + 1.0,
                12.5 + i % 13,
                525000.0 + i,
                "bench",
            )
        )
    return rows


def as_candles(rows: list[tuple[object, ...]]) -> list[Candle]:
    """The same rows as domain candles, for the write path."""
    return [
        Candle("BTC-USDT", "1m", datetime_to_ms(row[2]), *(float(v) for v in row[3:9]))  # type: ignore[arg-type]
        for row in rows
    ]


async def write_batches(connection: Any, candles: list[Candle]) -> None:
    """The backfill's write path: pages of 1440 candles (the venue's largest kline page)."""
    for start in range(0, len(candles), 1440):
        await write_candles(connection, candles[start : start + 1440], "bench")


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await action()
    return time.perf_counter() - began


async def run(rows: int, repeat: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {}
    data = candle_rows(rows)
    candles = as_candles(data)
    with tempfile.TemporaryDirectory() as scratch:
        options = StorageOptions(url=None, data_dir=Path(scratch) / "data", pool_max_size=2)
        began = time.perf_counter()
        database = await Database.open(options)
        figures["cold_start_s"] = [time.perf_counter() - began]
        await database.close()
        began = time.perf_counter()
        database = await Database.open(options)
        figures["warm_start_s"] = [time.perf_counter() - began]
        try:
            out = Path(scratch) / "candles.jsonl"
            async with database.pool.acquire() as connection:
                figures["migrate_s"] = [await timed(lambda: migrate(connection))]
                for _ in range(repeat):
                    await reset_table(connection, "candles")
                    copy = await timed(
                        lambda: connection.copy_records_to_table("candles", records=data, columns=CANDLE_COLUMNS)
                    )
                    export = await timed(lambda: export_table(connection, "candles", out))
                    await reset_table(connection, "candles")
                    imported = await timed(lambda: import_table(connection, "candles", out))
                    await reset_table(connection, "candles")
                    written = await timed(lambda: write_batches(connection, candles))
                    figures.setdefault("write_rows_s", []).append(rows / written)
                    figures.setdefault("copy_rows_s", []).append(rows / copy)
                    figures.setdefault("export_rows_s", []).append(rows / export)
                    figures.setdefault("import_rows_s", []).append(rows / imported)
                server_version = await connection.fetchval("SHOW server_version")
        finally:
            await database.close()
    result = {name: statistics.median(values) for name, values in figures.items()}
    result["rows"] = rows
    result["repeat"] = repeat
    result["server"] = float(str(server_version).split()[0].split(".")[0])
    return result


def markdown(result: dict[str, float]) -> str:
    copy = result["copy_rows_s"]
    return "\n".join(
        [
            START,
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.storage --write` on "
            f"{platform.machine()}, Python {platform.python_version()}, embedded PostgreSQL {result['server']:.0f}; "
            f"{result['rows']:,.0f} 1-minute candle rows, median of {result['repeat']:.0f} runs.",
            "",
            "| what | figure | beside it, same run |",
            "| --- | --- | --- |",
            f"| embedded PostgreSQL, first start (initdb, start, create database) | {result['cold_start_s']:.2f} s | |",
            f"| embedded PostgreSQL, start of an existing cluster | {result['warm_start_s']:.2f} s | |",
            f"| `migrate` from empty (schema 0001) | {result['migrate_s'] * 1000:.0f} ms | |",
            f"| raw `COPY` of candle rows (asyncpg `copy_records_to_table`) | {copy:,.0f} rows/s | baseline |",
            f"| candle writes (`write_candles`, idempotent, pages of 1440) | {result['write_rows_s']:,.0f} rows/s | "
            f"{result['write_rows_s'] / copy:.0%} of COPY |",
            f"| `tradingd db export` (candles) | {result['export_rows_s']:,.0f} rows/s | "
            f"{result['export_rows_s'] / copy:.0%} of COPY |",
            f"| `tradingd db import` (candles, validated, one transaction) | {result['import_rows_s']:,.0f} rows/s | "
            f"{result['import_rows_s'] / copy:.0%} of COPY |",
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    section = markdown(asyncio.run(run(args.rows, args.repeat)))
    print(section)
    if args.write:
        write_section(START, END, section, heading="Storage")


if __name__ == "__main__":
    main()
