"""Fixtures for end-to-end tests: a replayed candle file served by a real `tradingd sim` process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange.sim.candle_file import load_candle_file, write_candle_file

TRADINGD = shutil.which("tradingd")


@pytest.fixture
def candle_file(tmp_path: Path, shared_candles: Path) -> Path:
    rows = load_candle_file(shared_candles / "BINANCE_ETHUSDT_1m.csv")[: 3 * 1440 + 1]
    path = tmp_path / "eth.csv"
    write_candle_file(path, rows)
    return path


@pytest.fixture
def simulator(candle_file: Path) -> Iterator[dict[str, str]]:
    assert TRADINGD is not None
    rows = load_candle_file(candle_file)
    process = subprocess.Popen(
        [
            TRADINGD,
            "sim",
            "--candles",
            f"ETH-USDT:1m:{candle_file}",
            "--derive",
            "5m",
            "--speed",
            "1",
            "--start",
            str(rows[-1].open_time_ms + 30_000),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRADINGD_")},
    )
    assert process.stdout is not None
    urls = json.loads(process.stdout.readline())
    yield urls
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    process.stdout.close()


@pytest.fixture
def clean_env(tmp_path: Path, simulator: dict[str, str]) -> dict[str, str]:
    """The caller's environment without tradingd settings, pointed at a fresh data dir and the simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env.update({"TRADINGD_DATA_DIR": str(tmp_path / "data"), "BINGX_REST_URL": simulator["rest_url"]})
    return env
