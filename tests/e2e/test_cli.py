"""The real `tradingd` command, run as a process against the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.database import Database, StorageOptions
from storage.migrator import discover
from tests.integration.schema_expectations import OWN_TABLES, SEED_TABLES

TRADINGD = shutil.which("tradingd")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if TRADINGD is None:
        pytest.fail("the tradingd console script is not installed; run `uv sync`")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "RL_", "TIMESCALE_"))}
    clean.pop("API_TOKEN", None)
    clean["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    return clean


def tradingd(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert TRADINGD is not None
    return subprocess.run(
        [TRADINGD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_migrate_creates_the_full_schema_and_status_reports_it(env: dict[str, str]) -> None:
    migrated = tradingd(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "schema up to date in plain mode" in migrated.stdout
    assert json.loads(migrated.stderr.splitlines()[0])["event"] == "migration_applied"

    again = tradingd(env, "db", "migrate")
    assert again.returncode == 0
    assert again.stdout.startswith("0 migration(s) applied")

    status = tradingd(env, "db", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["mode"] == "plain"
    assert report["pending"] == []
    assert report["applied"] == [m.label for m in discover() if m.variant == "base"]

    tables = asyncio.run(tables_in(Path(env["TRADINGD_DATA_DIR"])))
    assert set(SEED_TABLES) | set(OWN_TABLES) <= tables


async def tables_in(data_dir: Path) -> set[str]:
    """Open the data directory the CLI left behind (its server stopped when the CLI exited)."""
    database = await Database.open(StorageOptions(url=None, data_dir=data_dir))
    try:
        return await asyncio.wait_for(_table_names(database), 30)
    finally:
        await database.close()


async def _table_names(database: Database) -> set[str]:
    rows = await database.pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def test_status_before_migrate_lists_pending_and_exits_1(env: dict[str, str]) -> None:
    status = tradingd(env, "db", "status")
    assert status.returncode == 1
    assert "pending:     0001_core_schema" in status.stdout


def test_import_with_a_bad_line_exits_65_and_keeps_the_table(env: dict[str, str], tmp_path: Path) -> None:
    assert tradingd(env, "db", "migrate").returncode == 0
    good = tmp_path / "good.jsonl"
    good.write_text('{"source": "bingx", "pair": "BTC-USDT", "interval": "1m", "status": "ok"}\n')
    assert tradingd(env, "db", "import", "--table", "data_source_status", str(good)).returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"source": "bingx", "pair": "ETH-USDT", "interval": "1m", "status": "ok"}\n'
        '{"source": "bingx", "status": "sideways"}\n'
    )
    result = tradingd(env, "db", "import", "--table", "data_source_status", str(bad), "--replace")
    assert result.returncode == 65
    assert "line 2:" in result.stderr
    assert "table unchanged" in result.stderr
    out = tmp_path / "after.jsonl"
    assert tradingd(env, "db", "export", "--table", "data_source_status", "--out", str(out)).returncode == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["pair"] == "BTC-USDT"


def test_reset_asks_for_confirmation(env: dict[str, str], tmp_path: Path) -> None:
    assert tradingd(env, "db", "migrate").returncode == 0
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"job_kind": "backfill", "job_key": "BTC-USDT/1m"}\n')
    assert tradingd(env, "db", "import", "--table", "retry_queue", str(rows)).returncode == 0
    refused = tradingd(env, "db", "reset", "--table", "retry_queue", stdin="no\n")
    assert refused.returncode == 1
    assert "nothing was deleted" in refused.stderr
    confirmed = tradingd(env, "db", "reset", "--table", "retry_queue", stdin="retry_queue\n")
    assert confirmed.returncode == 0
    assert "deleted 1 row(s)" in confirmed.stdout
    assert tradingd(env, "db", "reset", "--table", "retry_queue", "--yes").stdout.startswith("deleted 0 row(s)")


def test_config_check_prints_the_effective_config_redacted(env: dict[str, str], tmp_path: Path) -> None:
    secret = "K3yThatMustNeverBePrinted"
    env = {
        **env,
        "BINGX_API_KEY": secret,
        "BINGX_SECRET_KEY": "HmacSecretNeverPrinted",
        "DATA_GAP_MONITOR_INTERVAL_MIN": "7",
    }
    result = tradingd(env, "config", "check", str(Path(__file__).resolve().parents[2] / "config" / "default.toml"))
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["market_data"]["gap_monitor_interval_min"] == 7
    assert effective["exchange"]["api_key"] == "[REDACTED]"
    assert secret not in result.stdout + result.stderr
    assert "HmacSecretNeverPrinted" not in result.stdout + result.stderr


def test_bad_config_exits_78_naming_the_key(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[market_data]\npairs = ['BTC-USDT']\nbackfil_enabled = true\n")
    result = tradingd(env, "--config", str(path), "db", "migrate")
    assert result.returncode == 78
    assert "market_data.backfil_enabled: unknown key" in result.stderr


def test_production_guard_refuses_to_start(env: dict[str, str]) -> None:
    result = tradingd({**env, "TRADINGD_ENV": "production", "BINGX_MARKET_DATA_MOCK": "true"}, "db", "migrate")
    assert result.returncode == 78
    assert "DISABLE_TEST_DATA_IN_DB=true" in result.stderr
    assert "BINGX_MARKET_DATA_MOCK" in result.stderr
    assert not (Path(env["TRADINGD_DATA_DIR"]) / "postgres").exists()


def test_an_unusable_data_directory_is_a_configuration_fault_with_the_reason(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A data directory that cannot be made (a file where its parent should be) is refused when the
    configuration is loaded, 78, before anything starts (issue 16)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory's parent should be")
    result = tradingd({**env, "TRADINGD_DATA_DIR": str(blocker / "data")}, "db", "status")
    assert result.returncode == 78
    assert f"cannot be made: {blocker} is not a directory" in result.stderr
    assert "Traceback" not in result.stderr
