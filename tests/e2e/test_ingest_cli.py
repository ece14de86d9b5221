"""`tradingd ingest` as a real process against `tradingd sim` replaying at 60 times real time."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from exchange.sim.candle_file import load_candle_file, write_candle_file
from storage.candles import CandleStore
from storage.database import Database, StorageOptions
from storage.source_status import SourceStatusStore
from tests.e2e.cli_helpers import running_embedded_value

TRADINGD = shutil.which("tradingd")
MINUTE = 60_000


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}


def test_ingest_stores_a_contiguous_exact_prefix_and_stops_on_sigterm(tmp_path: Path, shared_candles: Path) -> None:
    assert TRADINGD is not None
    rows = load_candle_file(shared_candles / "BINANCE_ETHUSDT_1m.csv")[:200]
    candle_file = tmp_path / "eth.csv"
    write_candle_file(candle_file, rows)
    sim = subprocess.Popen(
        [TRADINGD, "sim", "--candles", f"ETH-USDT:1m:{candle_file}", "--speed", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        assert sim.stdout is not None
        urls = json.loads(sim.stdout.readline())
        env = clean_env() | {
            "TRADINGD_DATA_DIR": str(tmp_path / "data"),
            "BINGX_REST_URL": urls["rest_url"],
            "BINGX_WS_URL": urls["ws_url"],
            "TRADINGD_PAIRS": "ETH-USDT",
            "BINGX_MARKET_DATA_INTERVALS": "1m",
            "BINGX_MARKET_DATA_BACKFILL": "true",
            "TRADINGD_LOG_FORMAT": "json",
        }
        ingest = subprocess.Popen(
            [TRADINGD, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(ingest.stderr.readline, "")), daemon=True)
        reader.start()
        try:
            # Stored candles are the event to wait for, read once ingest has its server running (its
            # `ingest_started` line) through that server's socket, holding no handle on it: the server
            # stays ingest's, to stop when it exits.
            wait_for_ingest(ingest, lines, lambda: any('"ingest_started"' in line for line in lines), "ingest_started")
            stored = "SELECT count(*) FROM candles WHERE pair = 'ETH-USDT' AND interval = '1m'"
            data_dir = tmp_path / "data"
            wait_for_ingest(ingest, lines, lambda: running_embedded_value(data_dir, stored) >= 5, "5 candles")
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(timeout=30)
        finally:
            if ingest.poll() is None:
                ingest.kill()
                ingest.wait()
            reader.join(timeout=30)
            if ingest.stderr is not None:
                ingest.stderr.close()
        stderr = "".join(lines)
        assert ingest.returncode == 0, stderr
        events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
        assert events[0] == "ingest_started"
        assert "ingest_stopped" in events
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=15)
        if sim.stdout is not None:
            sim.stdout.close()
    stored, statuses = asyncio.run(read_back(tmp_path / "data", rows[0].open_time_ms))
    assert len(stored) >= 5
    assert stored == [
        (r.open_time_ms, float(r.open), float(r.high), float(r.low), float(r.close), float(r.volume))
        for r in rows[: len(stored)]
    ]
    assert [(s.pair, s.interval) for s in statuses] == [("ETH-USDT", "1m")]


def wait_for_ingest(ingest: subprocess.Popen[str], lines: list[str], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert ingest.poll() is None, f"ingest exited ({ingest.returncode}) before {what}:\n{''.join(lines)[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{''.join(lines)[-3000:]}"
        time.sleep(0.25)


async def read_back(data_dir: Path, start_ms: int) -> tuple[list[tuple[float, ...]], list[object]]:
    database = await Database.open(StorageOptions(url=None, data_dir=data_dir))
    try:
        candles = await CandleStore(database.pool).read("ETH-USDT", "1m", start_ms, start_ms + 10_000 * MINUTE)
        statuses = await SourceStatusStore(database.pool).all()
    finally:
        await database.close()
    return [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in candles], list(statuses)


def test_test_data_is_refused_when_disabled(tmp_path: Path) -> None:
    assert TRADINGD is not None
    env = clean_env() | {
        "TRADINGD_DATA_DIR": str(tmp_path / "data"),
        "BINGX_REST_URL": "http://127.0.0.1:9",
        "DISABLE_TEST_DATA_IN_DB": "true",
    }
    for command in (["ingest"], ["backfill", "--pair", "BTC-USDT", "--interval", "1m"]):
        result = subprocess.run([TRADINGD, *command], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 78
        assert "DISABLE_TEST_DATA_IN_DB is set and exchange.rest_url = http://127.0.0.1:9 is a local simulator" in (
            result.stderr
        )
    assert not (tmp_path / "data" / "postgres").exists()
