"""Signals first: SIGTERM to `tradingd ingest` and to `tradingd run` (a replay) 0.5 s, 2 s and 5 s after
it started ends it with exit 0 and nothing left running: no postgres, raylet, gcs_server or Ray worker.

Which step the process had reached when the signal came depends on the machine (loading the command
line, starting the embedded PostgreSQL, migrating, starting Ray, starting the actors, trading): the
assertions hold whatever it was, which is the point ("at any moment"). The delay is the test's input,
not a wait for something to happen. Each command's three starts share one data directory, so later
starts get further (the database cluster exists by then); the embedded PostgreSQL is used, not the
test server, because its processes are among those that must not outlive the command. Each process is
run under tests/e2e/subreaper.py, which sees every descendant left behind even once re-parented.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from storage.database import Database, StorageOptions
from storage.migrator import schema_status
from tests.e2e.daemon_harness import PAIRS, START_BARS, TRADINGD, cut_files

pytestmark = pytest.mark.timeout(600)
DELAYS = (0.5, 2.0, 5.0)
"""Seconds after the start. How far a start gets in 5 s depends on the machine's load, so the steps that
matter most are also reached for sure, by signalling on the log event that begins them."""
INGEST_EVENTS = ("ingest_started",)
"""Ingesting (the websocket, the REST catch-up and the store all at work)."""
RUN_EVENTS = ("replay_venue_started", "ray_started")
"""The venue checks and `ray.init` under way; the actors starting (Ray's processes and workers up)."""
SUBREAPER = Path(__file__).with_name("subreaper.py")


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_", "NOTIFY", "WATCHDOG"))
    }
    env.pop("API_TOKEN", None)
    env.update({"TRADINGD_DATA_DIR": str(data_dir), "TRADINGD_LOG_FORMAT": "json"})
    return env


def stop_after(command: list[str], env: dict[str, str], after: float | str, log: Path) -> dict[str, Any]:
    """Start `command`, SIGTERM it `after` seconds later (or as soon as it logs the event `after`); the
    subreaper's report (see subreaper.py)."""
    when = ["--after", str(after)] if isinstance(after, float) else ["--after-event", after]
    done = subprocess.run(
        [sys.executable, str(SUBREAPER), *when, "--log", str(log), "--", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


def events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def assert_stopped_cleanly(report: dict[str, Any], log: Path, last_event: str) -> str:
    """Exit 0 after the signal, nothing left running, no failure logged; returns where it stopped."""
    tail = log.read_text(errors="replace")[-3000:]
    assert report["signalled"], f"the command ended before the signal: {report}\n{tail}"
    assert report["returncode"] == 0, f"{report}\n{tail}"
    assert report["left"] == [], f"left running after exit: {report['left']}\n{tail}"
    assert "Traceback" not in tail, tail
    records = events(log)
    if not records:  # the signal came while the configuration and the code were loading: nothing had started
        assert "tradingd: stopped by SIGTERM before start-up" in tail, tail
        return "before start-up"
    names = [record["event"] for record in records]
    assert "command_failed" not in names, tail
    assert names[-1] == last_event, tail
    assert names.count("signal_received") == 1, tail
    final = records[-1]
    return str(final.get("during_startup") or "after start-up")


def assert_database_consistent(data_dir: Path) -> list[Any]:
    """The embedded PostgreSQL was shut down (no stale postmaster.pid) and, where it was created, its
    schema is complete: a stop part-way through the migrations leaves none half-applied."""
    pgdata = data_dir / "postgres"
    assert not (pgdata / "postmaster.pid").exists()
    if not (pgdata / "PG_VERSION").exists():
        return []

    async def read() -> list[Any]:
        database = await Database.open(StorageOptions(url=None, data_dir=data_dir))
        try:
            async with database.pool.acquire() as connection:
                status = await schema_status(connection)
                assert status.pending == [], [m.label for m in status.pending]
                exists = await connection.fetchval("SELECT to_regclass('agent_runs') IS NOT NULL")
                return list(await connection.fetch("SELECT status FROM agent_runs")) if exists else []
        finally:
            await database.close()

    return asyncio.run(read())


def test_ingest_stops_cleanly_on_sigterm_at_any_moment(tmp_path: Path, simulator: dict[str, str]) -> None:
    assert TRADINGD is not None
    data_dir = tmp_path / "data"
    env = clean_env(data_dir) | {
        "BINGX_REST_URL": simulator["rest_url"],
        "BINGX_WS_URL": simulator["ws_url"],
        "TRADINGD_PAIRS": "ETH-USDT",
        "BINGX_MARKET_DATA_INTERVALS": "1m",
    }
    stages = []
    for after in (*DELAYS, *INGEST_EVENTS):
        log = tmp_path / f"ingest-{after}.log"
        started = time.monotonic()
        report = stop_after([TRADINGD, "ingest"], env, after, log)
        stage = assert_stopped_cleanly(report, log, "ingest_stopped")
        stages.append((after, stage, round(time.monotonic() - started, 1)))
    assert_database_consistent(data_dir)
    print(f"ingest stopped at (delay, stage, seconds): {stages}")


def test_run_stops_cleanly_on_sigterm_at_any_moment(tmp_path: Path, shared_candles: Path) -> None:
    assert TRADINGD is not None
    files = cut_files(shared_candles, tmp_path, START_BARS + 200)
    config = tmp_path / "replay.toml"
    candles = [f"{pair}:1m:{path}" for pair, path in files.items()]
    config.write_text(
        f"""
[market_data]
source = "replay"
pairs = {json.dumps(list(PAIRS))}
intervals = ["1m"]

[replay]
candles = {json.dumps(candles)}
speed = 60
start_bars = {START_BARS}

[run]
policy = "momentum"

[logging]
format = "json"
"""
    )
    data_dir = tmp_path / "data"
    env = clean_env(data_dir) | {"TRADINGD_CONTROL_SOCKET": f"/tmp/td-sig-{os.getpid()}.sock"}
    stages = []
    for after in (*DELAYS, *RUN_EVENTS):
        log = tmp_path / f"run-{after}.log"
        started = time.monotonic()
        report = stop_after([TRADINGD, "--config", str(config), "run"], env, after, log)
        stage = assert_stopped_cleanly(report, log, "daemon_stopped")
        stages.append((after, stage, round(time.monotonic() - started, 1)))
    runs = assert_database_consistent(data_dir)
    assert len(runs) <= 1  # one run at most (resumed by each later start), never a second one
    print(f"run stopped at (delay, stage, seconds): {stages}")
