"""Migrations against a real PostgreSQL (embedded, or TIMESCALE_URL when set)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import asyncpg
import pytest

from storage.migrator import SCHEMA_TABLE, Migration, MigrationError, discover, migrate, schema_status

from .schema_expectations import OWN_TABLES, SEED_TABLES


async def public_tables(connection: asyncpg.Connection) -> set[str]:
    rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def test_migrate_from_empty_creates_every_table(pg: asyncpg.Connection) -> None:
    assert await public_tables(pg) == set()
    applied = await migrate(pg)
    assert next(m.label for m in applied) == "0001_core_schema"
    assert set(SEED_TABLES) | set(OWN_TABLES) | {SCHEMA_TABLE} <= await public_tables(pg)


async def test_migrate_again_is_a_no_op(pg: asyncpg.Connection) -> None:
    await migrate(pg)
    recorded = await pg.fetch(f"SELECT version, variant, applied_at FROM {SCHEMA_TABLE}")
    assert await migrate(pg) == []
    assert await pg.fetch(f"SELECT version, variant, applied_at FROM {SCHEMA_TABLE}") == recorded


async def test_status_reports_plain_mode_without_the_extension(pg: asyncpg.Connection) -> None:
    before = await schema_status(pg)
    assert "0001_core_schema" in {m.label for m in before.pending}
    assert before.applied == []
    await migrate(pg)
    status = await schema_status(pg)
    assert status.pending == []
    if not status.timescale.available:
        assert status.mode == "plain"
        assert status.hypertables == []
        assert "not available" in status.timescale.reason


async def test_candles_are_keyed_by_pair_interval_open_time(pg: asyncpg.Connection) -> None:
    await migrate(pg)
    key = await pg.fetch(
        """
        SELECT a.attname FROM pg_index i
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = 'candles'::regclass AND i.indisprimary ORDER BY k.position
        """
    )
    assert [row["attname"] for row in key] == ["pair", "interval", "open_time"]


@pytest.mark.parametrize(
    ("values", "violation"),
    [
        ("'BTC-USDT', '1m', now(), 'NaN', 2, 1, 1.5, 1", "candles_(open_)?check"),
        ("'BTC-USDT', '1m', now(), 1, 'Infinity', 1, 1.5, 1", "candles_high_check"),
        ("'BTC-USDT', '1m', now(), 1, 2, 1, 1.5, -1", "candles_volume_check"),
        ("'BTC-USDT', '1m', now(), 1, 0.5, 0.9, 0.8, 1", "candles_check"),
        ("'btc', '1m', now(), 1, 2, 1, 1.5, 1", "candles_pair_check"),
        ("'BTC-USDT', '2m', now(), 1, 2, 1, 1.5, 1", "candles_interval_check"),
    ],
)
async def test_candle_constraints_refuse_bad_rows(pg: asyncpg.Connection, values: str, violation: str) -> None:
    await migrate(pg)
    with pytest.raises(asyncpg.CheckViolationError, match=violation):
        await pg.execute(
            f"INSERT INTO candles (pair, interval, open_time, open, high, low, close, volume, source) "
            f"VALUES ({values}, 'test')"
        )


async def test_client_order_ids_are_unique(pg: asyncpg.Connection) -> None:
    await migrate(pg)
    run_id = await pg.fetchval(
        "INSERT INTO agent_runs (baseline_policy, pairs, interval, feature_set, decision_threshold) "
        "VALUES ('hold', '{BTC-USDT}', '1m', 'v1', 0.5) RETURNING id"
    )
    insert = (
        "INSERT INTO trade_executions (run_id, client_order_id, pair, mode, side, order_type, quantity) "
        "VALUES ($1, 'td-run-1-7', 'BTC-USDT', 'paper', 'BUY', 'MARKET', 0.01)"
    )
    await pg.execute(insert, run_id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pg.execute(insert, run_id)


async def test_an_edited_applied_migration_is_refused(pg: asyncpg.Connection) -> None:
    migrations = discover()
    await migrate(pg, migrations)
    edited = [dataclasses.replace(migrations[0], sql=migrations[0].sql + "\n-- edited\n"), *migrations[1:]]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(pg, edited)


async def test_a_migration_unknown_to_this_version_is_refused(pg: asyncpg.Connection) -> None:
    migrations = discover()
    newer = [*migrations, Migration(9999, "from_the_future", "base", "CREATE TABLE future_table (id int);")]
    await migrate(pg, newer)
    with pytest.raises(MigrationError, match="migrated by a newer version"):
        await migrate(pg, migrations)


async def test_a_failing_migration_is_rolled_back_whole(pg: asyncpg.Connection) -> None:
    broken = [Migration(1, "broken", "base", "CREATE TABLE half_done (id int); SELECT no_such_function();")]
    with pytest.raises(MigrationError, match="0001_broken failed and was rolled back"):
        await migrate(pg, broken)
    assert "half_done" not in await public_tables(pg)
    assert await pg.fetchval(f"SELECT count(*) FROM {SCHEMA_TABLE}") == 0


async def test_concurrent_migrators_apply_once(postgres_url: str) -> None:
    connections = [await asyncpg.connect(postgres_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(connection) for connection in connections))
    finally:
        for connection in connections:
            await connection.close()
    assert sorted(len(applied) for applied in results)[:2] == [0, 0]
    assert sum(len(applied) for applied in results) >= 1


def test_discover_refuses_badly_named_files(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "2_bad-name.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="does not match"):
        discover(tmp_path)


def test_discover_requires_a_base_for_each_timescale_variant(tmp_path: Path) -> None:
    (tmp_path / "0002_orphan.timescale.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="has no base migration"):
        discover(tmp_path)


def test_discover_orders_base_before_timescale() -> None:
    labels = [m.label for m in discover()]
    assert labels.index("0001_core_schema") < labels.index("0001_core_schema (timescale)")
