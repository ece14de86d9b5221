"""Errors as a user meets them through the real `tradingd` process: the exit code the README documents and
a message that says what is wrong, without advice that cannot help."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.cli_helpers import tradingd


def test_an_unknown_or_lower_case_symbol_is_invalid_input_not_a_retry(clean_env: dict[str, str]) -> None:
    lower = tradingd(clean_env, "backfill", "--pair", "eth-usdt", "--interval", "1m", "--max-batches", "1")
    assert lower.returncode == 65, lower.stderr
    assert "'eth-usdt' is not a BingX symbol" in lower.stderr
    assert "did you mean ETH-USDT?" in lower.stderr

    unknown = tradingd(clean_env, "backfill", "--pair", "FOO-USDT", "--interval", "1m", "--max-batches", "1")
    assert unknown.returncode == 65, unknown.stderr
    assert "FOO-USDT does not exist" in unknown.stderr
    assert "run it again" not in unknown.stderr

    dataset = tradingd(
        clean_env, "dataset", "build", "--pair", "FOO-USDT", "--interval", "1m", "--feature-set", "v1",
        "--from", "2025-01-01", "--to", "2025-01-02",
    )  # fmt: skip
    assert dataset.returncode == 65, dataset.stderr
    assert "FOO-USDT does not exist" in dataset.stderr
    assert "run it again" not in dataset.stderr


def test_sim_on_a_bad_candle_file_exits_65_naming_the_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_"))}
    bad = tmp_path / "bad.csv"
    bad.write_text("open_time_ms,open,high,low,close,volume\n0,1,2,0.5,1.5,10\n60000,1,2,x,1.5,10\n")
    done = tradingd(env, "sim", "--candles", f"BTC-USDT:1m:{bad}", timeout=60)
    assert done.returncode == 65, done.stderr
    assert f"{bad}: line 3: not a number" in done.stderr

    missing = tradingd(env, "sim", "--candles", f"BTC-USDT:1m:{tmp_path / 'absent.csv'}", timeout=60)
    assert missing.returncode == 65, missing.stderr
    assert "No such file or directory" in missing.stderr

    malformed = tradingd(env, "sim", "--candles", "BTC-USDT.csv", timeout=60)
    assert malformed.returncode == 2  # not PAIR:INTERVAL:FILE: a usage error
    assert "expected PAIR:INTERVAL:FILE" in malformed.stderr


def test_config_and_agent_configuration_errors_exit_with_readable_sentences(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "RL_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    config = tmp_path / "tradingd.toml"
    config.write_text('[replay]\nspeed = "quick"\n[market_data]\nintervall = ["1m"]\n')
    checked = tradingd(env, "--config", str(config), "config", "check", timeout=60)
    assert checked.returncode == 78
    assert checked.stderr.splitlines() == [
        f"tradingd: invalid configuration ({config} and the environment):",
        '  replay.speed = "quick": must be a number or "fast"',
        "  market_data.intervall: unknown key; did you mean market_data.intervals?",
    ]

    agent = tmp_path / "agent.toml"
    agent.write_text('name = "a"\n[hyperparameters]\nlr = "fast"\n')
    created = tradingd(env, "agent", "create", str(agent), timeout=60)
    assert created.returncode == 65
    assert created.stderr.splitlines() == [
        f"tradingd: invalid agent configuration ({agent}):",
        '  hyperparameters.lr = "fast": must be a number',
    ]
    assert not (tmp_path / "data").exists()  # refused before the database is opened


def test_the_configuration_faults_of_issue_16_stop_config_check_and_run_alike(tmp_path: Path) -> None:
    """Exit 78 and the one sentence, at `config check` and at `run` (which once gave a traceback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "RL_", "TIMESCALE"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    cases = [
        (
            "",
            {"TRADINGD_DATA_DIR": "/etc/passwd"},
            "storage.data_dir (TRADINGD_DATA_DIR): /etc/passwd is not a directory",
        ),
        ("", {"TIMESCALE_URL": "mysql://u:hunter2@127.0.0.1/db"}, "must be a postgresql:// URL, not mysql://"),
        ('[run]\ninterval = "4h"\n', {}, "run.interval 4h is not collected"),
        (b"\xff = 1\n", {}, "is not UTF-8 text"),
    ]
    for number, (content, extra, line) in enumerate(cases):
        config = tmp_path / f"tradingd-{number}.toml"
        config.write_bytes(content if isinstance(content, bytes) else content.encode())
        for command in (("config", "check"), ("run",)):
            done = tradingd({**env, **extra}, "--config", str(config), *command, timeout=60)
            assert done.returncode == 78, (command, done.stderr)
            assert line in done.stderr
            assert "Traceback" not in done.stderr
            assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists()
