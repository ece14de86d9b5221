"""The Timescale path, on a real TimescaleDB (PGlite + TimescaleDB, over the wire protocol)."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from storage.migrator import discover, migrate, schema_status
from storage.table_io import export_table, import_table, reset_table

from .schema_expectations import HYPERTABLES, OWN_TABLES, RETENTION, SEED_TABLES


async def test_migrate_from_empty_then_again_as_a_no_op(timescale_url: str) -> None:
    connection = await asyncpg.connect(timescale_url)
    try:
        applied = [m.label for m in await migrate(connection)]
        assert applied[:2] == ["0001_core_schema", "0001_core_schema (timescale)"]
        assert await migrate(connection) == []
        tables = {
            r["tablename"]
            for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert set(SEED_TABLES) | set(OWN_TABLES) <= tables
    finally:
        await connection.close()


async def test_hypertables_compression_and_retention_exist(timescale_url: str) -> None:
    connection = await asyncpg.connect(timescale_url)
    try:
        await migrate(connection)
        status = await schema_status(connection)
        assert status.mode == "timescale"
        assert status.timescale.installed_version is not None
        assert set(HYPERTABLES) <= set(status.hypertables)

        compressed = await connection.fetch(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        )
        assert {r["hypertable_name"] for r in compressed if r["compression_enabled"]} >= set(HYPERTABLES)
        segment_by = await connection.fetch(
            "SELECT attname FROM timescaledb_information.compression_settings "
            "WHERE hypertable_name = 'candles' AND segmentby_column_index IS NOT NULL ORDER BY segmentby_column_index"
        )
        assert [r["attname"] for r in segment_by] == ["pair", "interval"]

        jobs = await connection.fetch(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL"
        )
        compression = {r["hypertable_name"] for r in jobs if r["proc_name"] == "policy_compression"}
        retention = {r["hypertable_name"] for r in jobs if r["proc_name"] == "policy_retention"}
        assert compression >= set(HYPERTABLES)
        assert retention == RETENTION
    finally:
        await connection.close()


async def test_plain_tables_holding_rows_convert_to_hypertables(timescale_url: str) -> None:
    """A database that ran in plain mode gets its Timescale variants later, rows kept (migrate_data).
    (The extension itself cannot be dropped and re-created here: PGlite is one backend session.)"""
    connection = await asyncpg.connect(timescale_url)
    try:
        base_only = [m for m in discover() if m.variant == "base"]
        await migrate(connection, base_only)
        await connection.execute(
            "INSERT INTO candles (pair, interval, open_time, open, high, low, close, volume, source) "
            "VALUES ('BTC-USDT', '1m', '2024-01-01T00:00Z', 1, 2, 0.5, 1.5, 10, 'test')"
        )
        applied = [m.label for m in await migrate(connection)]
        assert applied == ["0001_core_schema (timescale)"]
        assert (await schema_status(connection)).mode == "timescale"
        assert await connection.fetchval("SELECT count(*) FROM candles") == 1
    finally:
        await connection.close()


async def test_export_import_round_trip_on_a_compressed_hypertable(timescale_url: str, tmp_path: Path) -> None:
    connection = await asyncpg.connect(timescale_url)
    try:
        await migrate(connection)
        await connection.execute(
            """
            INSERT INTO candles (pair, interval, open_time, open, high, low, close, volume, quote_volume, source)
            SELECT 'BTC-USDT', '1m', '2024-01-01T00:00Z'::timestamptz + make_interval(mins => n),
                   42000.1 + n, 42010.5 + n, 41990.25 + n, 42005.75 + n, 0.1 * n, 1e-9 * n, 'bingx-rest'
            FROM generate_series(0, 2999) AS n
            """
        )
        chunks = await connection.fetch("SELECT compress_chunk(c) FROM show_chunks('candles') c")
        assert chunks
        first = tmp_path / "first.jsonl"
        assert await export_table(connection, "candles", first) == 3000
        before = await connection.fetch("SELECT * FROM candles ORDER BY pair, interval, open_time")
        assert await reset_table(connection, "candles") == 3000
        assert await import_table(connection, "candles", first) == 3000
        assert await connection.fetch("SELECT * FROM candles ORDER BY pair, interval, open_time") == before
        second = tmp_path / "second.jsonl"
        await export_table(connection, "candles", second)
        assert second.read_bytes() == first.read_bytes()
    finally:
        await connection.close()
