"""`tradingd run` refuses a setting that has no behaviour yet before anything starts: exit 78 and one line
naming the key (as `tradingd config check` does, from the file or from the environment)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.cli_helpers import tradingd


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_run_refuses_online_learning_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "tradingd.toml"
    config.write_text("[online_learning]\nenabled = true\n")
    env = env_for(tmp_path)
    refused = tradingd(env, "--config", str(config), "run", timeout=120)
    assert refused.returncode == 78, refused.stderr
    assert refused.stderr.splitlines() == [
        f"tradingd: online_learning.enabled = true (in {config}) is not available yet (online learning comes in a "
        "later issue): remove it or set it to its default, false"
    ]
    assert not (tmp_path / "data").exists()  # no database was started, nothing was written
    checked = tradingd({**env, "RL_ONLINE_LEARNING_ENABLED": "true"}, "config", "check", timeout=120)
    assert checked.returncode == 78
    assert "online_learning.enabled = true (from RL_ONLINE_LEARNING_ENABLED) is not available yet" in checked.stderr
    assert checked.stdout == ""


def test_ingest_and_backfill_refuse_a_replay_config_instead_of_reaching_for_bingx(tmp_path: Path) -> None:
    """A replay config is served by `run` alone; `ingest` and `backfill` would read BingX with it."""
    env = env_for(tmp_path)
    config = Path(__file__).parents[2] / "config" / "replay.toml"
    for command in (["ingest"], ["backfill", "--pair", "BTC-USDT", "--interval", "1m"]):
        refused = tradingd(env, "--config", str(config), *command, timeout=120)
        assert refused.returncode == 78, refused.stderr
        assert refused.stderr.splitlines() == [
            f'tradingd: market_data.source = "replay" replays candle files inside `tradingd run` only; '
            f'`tradingd {command[0]}` reads a venue: use market_data.source = "bingx", or "simulator" with '
            "`tradingd sim`"
        ]
    assert not (tmp_path / "data").exists()  # refused before the database was opened
