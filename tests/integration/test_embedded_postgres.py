"""The embedded default: a real PostgreSQL under the data directory, reused and stopped cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil

from storage.database import Database, StorageOptions


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and str(pgdata) in " ".join(cmdline):
            found.append(process)
    return found


async def test_data_survives_a_stop_and_the_server_stops(tmp_path: Path) -> None:
    options = StorageOptions(url=None, data_dir=tmp_path / "data", pool_max_size=2)
    first = await Database.open(options)
    assert first.target == f"embedded:{tmp_path / 'data' / 'postgres'}"
    # its owner's alone; run as root, PostgreSQL's own system user must traverse it (and only that)
    expected = 0o711 if os.geteuid() == 0 else 0o700
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == expected
    await first.pool.execute("CREATE TABLE kept (value text)")
    await first.pool.execute("INSERT INTO kept VALUES ('still here')")
    await first.close()
    pgdata = tmp_path / "data" / "postgres"
    assert all(
        not process.is_running() or process.status() == psutil.STATUS_ZOMBIE for process in postgres_processes(pgdata)
    )

    second = await Database.open(options)
    try:
        assert await second.pool.fetchval("SELECT value FROM kept") == "still here"
        assert await second.pool.fetchval("SELECT current_database()") == "tradingd"
    finally:
        await second.close()


def start_then_kill_a_holder(data_dir: Path) -> None:
    """Start the embedded server from another process, then kill that process with -9."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from storage.embedded import EmbeddedPostgres
            EmbeddedPostgres(Path({str(data_dir)!r})).start()
            print("ready", flush=True)
            time.sleep(600)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    holder.stdout.close()


async def test_a_killed_holder_does_not_keep_the_server_running(tmp_path: Path) -> None:
    """A process killed with -9 never releases its handle; the next clean stop must still stop the server."""
    data_dir = tmp_path / "data"
    await asyncio.to_thread(start_then_kill_a_holder, data_dir)

    database = await Database.open(StorageOptions(url=None, data_dir=data_dir))
    assert await database.pool.fetchval("SELECT 1") == 1
    await database.close()
    pgdata = data_dir / "postgres"
    assert [p for p in postgres_processes(pgdata) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []


async def test_an_external_url_is_used_as_given(postgres_url: str) -> None:
    database = await Database.open(StorageOptions(url=postgres_url, data_dir=Path("/nonexistent")))
    try:
        assert database.embedded is None
        assert await database.pool.fetchval("SELECT current_database()") == urlsplit(postgres_url).path.lstrip("/")
        connection: asyncpg.Connection
        async with database.pool.acquire() as connection:
            assert await connection.fetchval("SELECT '{\"a\": [1, 2]}'::jsonb") == {"a": [1, 2]}
    finally:
        await database.close()
