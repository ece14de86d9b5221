"""Running `tradingd` one-shot commands as processes, for the e2e tests."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg

TRADINGD = shutil.which("tradingd")

TINY_AGENT = """
name = "{name}"
feature_set = "v1"
decision_threshold = 0.0

[hyperparameters]
iterations = 1
train_batch_size = 400
minibatch_size = 200
num_epochs = 1
hidden_layers = [8]
envs_per_env_runner = 2

[environment]
episode_bars = 200
max_exposure = 0.5  # the run's: a full position fits the default [risk] limits, which training applies

[promotion_gates]
min_win_rate = 0.0
min_net_pnl = -1000000.0
max_drawdown = 1.0
min_trade_count = 0
min_fold_share = 0.0
drawdown_within_buy_and_hold = false
min_margin_over_baseline = {margin}
"""
"""An agent that trains in seconds and passes every promotion gate but its margin (`{name}`, `{margin}`)."""


def tradingd(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    assert TRADINGD is not None
    return subprocess.run([TRADINGD, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def build_eth_dataset(env: dict[str, str], from_ms: int, to_ms: int) -> dict[str, object]:
    """`tradingd dataset build` of ETH-USDT 1m v1 over [from_ms, to_ms): the printed dataset record."""
    built = tradingd(
        env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--feature-set", "v1",
        "--from", str(from_ms), "--to", str(to_ms),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    record: dict[str, object] = json.loads(built.stdout)
    return record


def running_embedded_value(data_dir: Path, sql: str) -> Any:
    """The first value `sql` returns on the embedded server a running `tradingd` process holds in
    `data_dir`, reached through the socket its postmaster.pid names (PostgreSQL's record of a running
    server: line 4 the port, line 5 the socket directory), so that no handle on the server is taken."""
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()

    async def fetch() -> Any:
        connection = await asyncpg.connect(host=lines[4], port=int(lines[3]), user="postgres", database="tradingd")
        try:
            return await connection.fetchval(sql)
        finally:
            await connection.close()

    return asyncio.run(fetch())
