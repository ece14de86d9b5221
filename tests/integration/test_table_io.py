"""Export, import and reset against a real PostgreSQL: exact round trips and all-or-nothing imports."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from storage.migrator import migrate
from storage.table_io import ImportLineError, TableIOError, export_table, import_table, reset_table

ROUND_TRIP_TABLES = (
    "agent_configurations",
    "feature_set_versions",
    "agent_runs",
    "trade_executions",
    "trade_state_events",
    "model_artifacts",
    "agent_versions",
    "candles",
    "observability_metrics",
)


@pytest.fixture
async def db(pg: asyncpg.Connection) -> asyncpg.Connection:
    await migrate(pg)
    return pg


async def fill(db: asyncpg.Connection) -> None:
    """Rows that exercise every type the schema uses, with values that lose precision easily."""
    await db.execute(
        """
        INSERT INTO agent_configurations (name, hyperparameters, promotion_gates, decision_threshold, created_at)
        VALUES ('ppo-small', '{"lr": 0.0003, "layers": [64, 64], "note": "ünïcødé \\"q\\" \\n"}',
                '{"min_win_rate": 0.55, "nested": {"deep": [1, 2.5, null, true]}}', 0.123456789012345678901234,
                '2024-02-29T23:59:59.999999+00');
        INSERT INTO feature_set_versions (name, schema_hash, feature_names, parameters)
        VALUES ('v2', 'abc123', ARRAY['ret_1', 'rsi_14', 'with,comma', 'with "quote"'], '{}');
        INSERT INTO agent_versions (agent_configuration_id, version, training_metrics)
        SELECT id, 1, '{"episode_return": -1.5e-300}' FROM agent_configurations;
        INSERT INTO model_artifacts (agent_version_id, uri, content, format, checksum_sha256, size_bytes,
                                     feature_schema_hash)
        SELECT id, 'db://artifact/1', '\\x00ff10deadbeef'::bytea, 'numpy-mlp', repeat('a', 64), 7, 'abc123'
        FROM agent_versions;
        INSERT INTO agent_runs (id, baseline_policy, pairs, interval, feature_set, decision_threshold, started_at)
        VALUES ('00000000-0000-4000-8000-000000000001', 'ema-cross', '{BTC-USDT,ETH-USDT}', '1m', 'v1', 0.6,
                '2024-01-01T00:00:00.000001+00');
        INSERT INTO trade_executions (run_id, client_order_id, exchange_order_id, pair, mode, side, order_type,
                                      quantity, price, filled_quantity, fee, state)
        VALUES ('00000000-0000-4000-8000-000000000001', 'td-1-BTC-USDT-42', '1735119588833849344', 'BTC-USDT',
                'paper', 'BUY', 'LIMIT', 0.00000001, 123456789012.123456789, 0.00000001,
                0.000000000000000001, 'filled');
        INSERT INTO trade_state_events (execution_id, from_state, to_state, reason, evidence)
        SELECT id, 'intent', 'submitted', 'submit', '{"code": 0, "orderId": 1735119588833849344}'
        FROM trade_executions;
        INSERT INTO candles (pair, interval, open_time, open, high, low, close, volume, quote_volume, source)
        VALUES ('BTC-USDT', '1m', '2024-01-01T00:00Z', 0.1, 0.30000000000000004, 0.1, 0.2, 1e-300,
                1.7976931348623157e308, 'x'),
               ('ETH-USDT', '1h', '2024-01-01T01:00Z', 2300.55, 2301, 2299.999999999, 2300, 12.5, NULL, 'x');
        INSERT INTO observability_metrics (recorded_at, metric, value, pair, labels)
        VALUES ('2024-01-01T00:00:00.5Z', 'decision_latency_ms', 1.25, 'BTC-USDT', '{"p": "99"}');
        """
    )


async def snapshot(db: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    return await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")


async def test_export_then_import_reproduces_every_table_exactly(db: asyncpg.Connection, tmp_path: Path) -> None:
    await fill(db)
    before = {table: await snapshot(db, table) for table in ROUND_TRIP_TABLES}
    exported = {}
    for table in ROUND_TRIP_TABLES:
        exported[table] = tmp_path / f"{table}.jsonl"
        assert await export_table(db, table, exported[table]) == len(before[table]) > 0
    # Delete in dependency order, import in reverse.
    for table in (
        "trade_state_events",
        "trade_executions",
        "agent_runs",
        "model_artifacts",
        "agent_versions",
        "agent_configurations",
        "feature_set_versions",
        "candles",
        "observability_metrics",
    ):
        await reset_table(db, table)
    for table in (
        "observability_metrics",
        "candles",
        "feature_set_versions",
        "agent_configurations",
        "agent_versions",
        "model_artifacts",
        "agent_runs",
        "trade_executions",
        "trade_state_events",
    ):
        assert await import_table(db, table, exported[table]) == len(before[table])
    for table in ROUND_TRIP_TABLES:
        assert await snapshot(db, table) == before[table], table
        again = tmp_path / f"{table}.again.jsonl"
        await export_table(db, table, again)
        assert again.read_bytes() == exported[table].read_bytes(), table


async def test_exported_lines_keep_exact_values(db: asyncpg.Connection, tmp_path: Path) -> None:
    await fill(db)
    out = tmp_path / "executions.jsonl"
    await export_table(db, "trade_executions", out)
    text = out.read_text()
    assert "123456789012.123456789" in text
    assert "0.000000000000000001" in text
    assert '"1735119588833849344"' in text
    (row,) = [json.loads(line) for line in text.splitlines()]
    assert row["client_order_id"] == "td-1-BTC-USDT-42"


async def test_import_advances_id_sequences(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute(
        "INSERT INTO ops_audit_events (actor, command, outcome) "
        "SELECT 'op', 'pause', 'accepted' FROM generate_series(1, 5)"
    )
    out = tmp_path / "audit.jsonl"
    await export_table(db, "ops_audit_events", out)
    await reset_table(db, "ops_audit_events")
    await import_table(db, "ops_audit_events", out)
    new_id = await db.fetchval(
        "INSERT INTO ops_audit_events (actor, command, outcome) VALUES ('op', 'resume', 'accepted') RETURNING id"
    )
    assert new_id == 6


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    (
        '{"actor": "op", "command": "pause", "outcome": "accepted", "colour": "red"}',
        "unknown column(s) for table ops_audit_events: colour",
    ),
    ('{"actor": "op", "command": "pause"}', "must not be null are missing or null: outcome"),
    (
        '{"actor": "op", "command": "pause", "outcome": "exploded"}',
        'violates check constraint "ops_audit_events_outcome_check"',
    ),
    (
        '{"actor": "op", "command": "pause", "outcome": "accepted", "occurred_at": "yesterday-ish"}',
        "invalid input syntax for type timestamp",
    ),
    (
        '{"id": "seven", "actor": "op", "command": "pause", "outcome": "accepted"}',
        "invalid input syntax for type bigint",
    ),
    ('{"actor": "op", "command": "pause", "outcome": "accepted", "params": [1, {"x": }]}', "not valid JSON"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
async def test_a_malformed_line_is_rejected_with_its_number_and_nothing_changes(
    db: asyncpg.Connection, tmp_path: Path, bad: str, reason: str
) -> None:
    await db.execute("INSERT INTO ops_audit_events (actor, command, outcome) VALUES ('op', 'stop', 'accepted')")
    before = await snapshot(db, "ops_audit_events")
    good = '{"actor": "op", "command": "resume", "outcome": "accepted"}'
    source = tmp_path / "audit.jsonl"
    source.write_text("\n".join([good, good, "", good, bad, good]) + "\n")
    for replace in (False, True):
        with pytest.raises(ImportLineError) as error:
            await import_table(db, "ops_audit_events", source, replace=replace)
        assert error.value.line == 5
        assert reason in str(error.value)
        assert await snapshot(db, "ops_audit_events") == before


async def test_duplicate_keys_are_rejected_with_the_line_number(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("INSERT INTO ops_audit_events (id, actor, command, outcome) VALUES (1, 'op', 'stop', 'accepted')")
    row = '{{"id": {id}, "actor": "op", "command": "pause", "outcome": "accepted"}}'
    against_table = tmp_path / "against-table.jsonl"
    against_table.write_text("\n".join([row.format(id=5), row.format(id=1)]) + "\n")
    with pytest.raises(ImportLineError, match=r"^line 2: duplicate key value"):
        await import_table(db, "ops_audit_events", against_table)
    within_file = tmp_path / "within-file.jsonl"
    within_file.write_text("\n".join([row.format(id=5), row.format(id=6), row.format(id=5)]) + "\n")
    with pytest.raises(ImportLineError, match=r"^line 3: duplicate key value"):
        await import_table(db, "ops_audit_events", within_file, replace=True)
    assert await db.fetchval("SELECT array_agg(id) FROM ops_audit_events") == [1]


async def test_a_bad_line_late_in_a_large_file_is_found(db: asyncpg.Connection, tmp_path: Path) -> None:
    good = '{"actor": "op", "command": "resume", "outcome": "accepted"}'
    lines = [good] * 2500
    lines[2345] = '{"actor": "op", "command": "resume", "outcome": "accepted", "occurred_at": "not a time"}'
    source = tmp_path / "big.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportLineError, match=r"^line 2346: "):
        await import_table(db, "ops_audit_events", source)
    assert await db.fetchval("SELECT count(*) FROM ops_audit_events") == 0


async def test_replace_swaps_the_rows_in_one_transaction(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("INSERT INTO retry_queue (job_kind, job_key) VALUES ('backfill', 'BTC-USDT/1m')")
    source = tmp_path / "retry.jsonl"
    source.write_text('{"id": 7, "job_kind": "gap_heal", "job_key": "ETH-USDT/5m"}\n')
    assert await import_table(db, "retry_queue", source, replace=True) == 1
    rows = await db.fetch("SELECT id, job_kind FROM retry_queue")
    assert [(r["id"], r["job_kind"]) for r in rows] == [(7, "gap_heal")]


async def test_an_empty_file_with_replace_empties_the_table(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("INSERT INTO retry_queue (job_kind, job_key) VALUES ('backfill', 'BTC-USDT/1m')")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert await import_table(db, "retry_queue", empty, replace=True) == 0
    assert await db.fetchval("SELECT count(*) FROM retry_queue") == 0


async def test_reset_refuses_rows_still_referenced_elsewhere(db: asyncpg.Connection) -> None:
    await fill(db)
    with pytest.raises(TableIOError, match="other tables still refer to them"):
        await reset_table(db, "agent_runs")
    assert await db.fetchval("SELECT count(*) FROM agent_runs") == 1


@pytest.mark.parametrize("table", ["schema_migrations", "no_such_table", "candles; DROP TABLE trades"])
async def test_only_known_tables_can_be_touched(db: asyncpg.Connection, tmp_path: Path, table: str) -> None:
    with pytest.raises(TableIOError):
        await export_table(db, table, tmp_path / "x.jsonl")
    with pytest.raises(TableIOError):
        await reset_table(db, table)
    assert await db.fetchval("SELECT to_regclass('trades') IS NOT NULL")


async def test_export_does_not_leave_a_partial_file_on_failure(db: asyncpg.Connection, tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "out.jsonl"
    with pytest.raises(TableIOError, match=r"cannot write .*out\.jsonl: No such file or directory"):
        await export_table(db, "candles", target)
    assert not target.exists()


async def test_export_writes_utc_whatever_the_session_time_zone(db: asyncpg.Connection, tmp_path: Path) -> None:
    await db.execute("SET timezone = 'Asia/Kolkata'")
    await db.execute(
        "INSERT INTO ops_audit_events (occurred_at, actor, command, outcome) "
        "VALUES ('2024-03-01T12:00:00.123456Z', 'op', 'pause', 'accepted')"
    )
    out = tmp_path / "audit.jsonl"
    await export_table(db, "ops_audit_events", out)
    assert json.loads(out.read_text())["occurred_at"] == "2024-03-01T12:00:00.123456+00:00"
