"""README's worked example "Offline: from a candle file to an evaluated agent", run as written: the
commands are read out of README.md (so the two cannot drift) and run as real `tradingd` processes with
no simulator and the venue's URLs on a loopback port nothing listens on, so any venue call would fail."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.cli_helpers import TRADINGD

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Offline: from a candle file to an evaluated agent"


def worked_example() -> list[str]:
    """The lines of the first bash block under the heading."""
    section = REPO_ROOT.joinpath("README.md").read_text().split(HEADING, 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.timeout(900)  # two Ray start-ups and three short trainings, on a loaded machine
def test_the_readme_offline_example_runs_without_a_venue(tmp_path: Path, shared_candles: Path) -> None:
    assert shared_candles.is_dir()
    port = closed_port()
    config = tmp_path / "offline.toml"
    config.write_text(f'[exchange]\nrest_url = "http://127.0.0.1:{port}"\nws_url = "ws://127.0.0.1:{port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env["TRADINGD_CONFIG"] = str(config)

    lines = worked_example()
    assert [line.split()[:4] for line in lines if line.startswith("uv run")] == [
        ["uv", "run", "tradingd", "candles"],
        ["uv", "run", "tradingd", "dataset"],
        ["uv", "run", "tradingd", "agent"],
        ["uv", "run", "tradingd", "train"],
        ["uv", "run", "tradingd", "evaluate"],
    ]
    bound: dict[str, str] = {}
    outputs: dict[str, dict[str, object]] = {}
    for line in lines:
        command, _, comment = line.partition("  # ")
        words = shlex.split(command)
        if words[0] == "export":
            name, _, _ = words[1].partition("=")
            assert name == "TRADINGD_DATA_DIR", line
            env[name] = str(tmp_path / "data")  # the example's own directory, here under the test's
            continue
        assert words[:3] == ["uv", "run", "tradingd"], line
        args = [bound.get(word, word) for word in words[3:]]
        assert not [word for word in args if word.endswith("_ID")], f"{line}: a placeholder no command printed"
        finished = run(env, args)
        assert finished.returncode == 0, f"{line}\n{finished.stderr[-3000:]}"
        assert "carries no contract rules" not in finished.stderr
        printed = json.loads(finished.stdout)
        assert isinstance(printed, dict)
        outputs[" ".join(args[:2])] = printed
        if '{"id": ' in comment:
            placeholder = comment.split('{"id": ', 1)[1].split(",", 1)[0]
            bound[placeholder] = str(printed["id"])

    imported = outputs["candles import"]
    assert imported["source"] == "file:BINANCE_BTCUSDT_1m"
    series = imported["series"]
    assert isinstance(series, list)
    assert series[0]["inserted"] == series[0]["rows"] == 73_139
    built = outputs["dataset build"]
    assert (built["rows"], built["venue_requests"], built["contract_source"]) == (1_440, 0, "preset:sim")
    evaluated = outputs["evaluate --agent-version"]
    assert (evaluated["kind"], evaluated["status"]) == ("walk_forward", "completed")
    metrics = evaluated["metrics"]
    assert isinstance(metrics, dict)
    assert metrics["folds_evaluated"] == 2
    assert Path(urlsplit(str(evaluated["report"])).path).is_file()

    # The dataset shows the rules it carries.
    shown = json.loads(run(env, ["dataset", "show", bound["DATASET_ID"]]).stdout)
    assert shown["contract_source"] == "preset:sim"
    assert (shown["contract"]["tick_size"], shown["contract"]["taker_fee_rate"]) == ("0.1", "0.0005")


def run(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    """`tradingd ARGS` from the repository's root, where the README's relative paths start."""
    assert TRADINGD is not None
    return subprocess.run(
        [TRADINGD, *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=500, check=False
    )
