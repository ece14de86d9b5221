"""The venue for benchmarks: the simulator in its own process (`tradingd sim`), as the real venue is
remote and its CPU is not ours, replaying candles written to a scratch file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from exchange.sim.candle_file import FileCandle, write_candle_file


@contextlib.asynccontextmanager
async def simulator_process(data: list[FileCandle], scratch: Path, pair: str = "BTC-USDT") -> AsyncIterator[str]:
    """Serve `data` as `pair` 1m candles with the clock inside the last one (still forming); yields the
    REST url."""
    candle_file = scratch / "candles.csv"
    write_candle_file(candle_file, data)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon.cli", "sim", "--candles", f"{pair}:1m:{candle_file}",
        "--start", str(data[-1].open_time_ms + 30_000),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        yield str(json.loads(await process.stdout.readline())["rest_url"])
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 15)
