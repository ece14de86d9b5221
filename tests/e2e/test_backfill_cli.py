"""`tradingd sim` and `tradingd backfill` as real processes: a replayed file lands in the database."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

from exchange.sim.candle_file import FileCandle, load_candle_file
from storage.candles import CandleStore
from storage.database import Database, StorageOptions

TRADINGD = shutil.which("tradingd")
MINUTE = 60_000


def backfill(env: dict[str, str], *args: str) -> dict[str, object]:
    assert TRADINGD is not None
    done = subprocess.run(
        [TRADINGD, "backfill", "--pair", "ETH-USDT", "--interval", "1m", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_backfill_stops_resumes_and_reproduces_the_file(
    simulator: dict[str, str], candle_file: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env.update({"TRADINGD_DATA_DIR": str(tmp_path / "data"), "BINGX_REST_URL": simulator["rest_url"]})
    first = backfill(env, "--max-batches", "1")
    assert (first["batches"], first["written"], first["reached_earliest"]) == (1, 1439, False)
    rest = backfill(env)
    assert rest["reached_earliest"] is True
    rows = load_candle_file(candle_file)[:-1]  # the last one was still forming
    stored = asyncio.run(read_back(tmp_path / "data", rows))
    assert stored == [
        (r.open_time_ms, float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume)) for r in rows
    ]


async def read_back(data_dir: Path, rows: list[FileCandle]) -> list[tuple[float, ...]]:
    database = await Database.open(StorageOptions(url=None, data_dir=data_dir))
    try:
        candles = await CandleStore(database.pool).read(
            "ETH-USDT", "1m", rows[0].open_time_ms, rows[-1].open_time_ms + MINUTE
        )
    finally:
        await database.close()
    return [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles]


def test_retry_queue_lists_jobs(tmp_path: Path) -> None:
    assert TRADINGD is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    empty = subprocess.run([TRADINGD, "retry-queue"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (empty.returncode, empty.stdout.strip()) == (0, "the retry queue is empty")
    job = tmp_path / "job.jsonl"
    job.write_text(
        '{"job_kind": "heal_gap", "job_key": "BTC-USDT/1m/0", "status": "dead", "attempts": 8, '
        '"last_error": "HTTP 503: error"}\n'
    )
    imported = subprocess.run(
        [TRADINGD, "db", "import", "--table", "retry_queue", str(job)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    listed = subprocess.run(
        [TRADINGD, "retry-queue", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    (row,) = json.loads(listed.stdout)
    assert (row["kind"], row["status"], row["attempts"], row["last_error"]) == (
        "heal_gap",
        "dead",
        8,
        "HTTP 503: error",
    )
