"""The command line starts cheap: building the parser, `--help` of every command, and `ctl` import none of
the heavy libraries (checked in a fresh interpreter, by what is in `sys.modules` afterwards; the time
itself is measured by benchmarks/cli_startup.py, not here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "talib", "ray", "torch", "nautilus_trader", "matplotlib")
"""Seconds each to import: never for a parser, a `--help`, or a command that fails its argument checks."""
MIDDLE = ("numpy", "asyncpg", "aiohttp", "structlog", "gymnasium", "msgspec")
"""Tenths of a second each: not needed to parse arguments or to talk to the control socket."""

PROBE = """
import json, sys
from daemon import cli
args = json.loads(sys.argv[1])
code = None
if args is None:
    cli.build_parser()
else:
    try:
        code = cli.main(args)
    except SystemExit as exited:
        code = exited.code
sys.stdout.flush()
print("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def probe(args: list[str] | None, tmp_path: Path) -> tuple[object, set[str], str]:
    """Run `cli.main(args)` (or only build the parser) in a fresh interpreter: its exit code, the top-level
    packages it imported, and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}
    env.pop("API_TOKEN", None)
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    report = json.loads(line.removeprefix("PROBE "))
    return report["code"], {name.split(".")[0] for name in report["modules"]}, done.stderr


def test_building_the_parser_imports_nothing_heavy(tmp_path: Path) -> None:
    _, modules, _ = probe(None, tmp_path)
    assert modules.isdisjoint(HEAVY + MIDDLE), sorted(modules & set(HEAVY + MIDDLE))
    assert "pydantic" not in modules  # the configuration is loaded only once a command runs
    assert "asyncio" not in modules


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["config"],
        ["db"],
        ["backfill"],
        ["sim"],
        ["dataset", "build"],
        ["agent", "create"],
        ["train"],
        ["evaluate"],
        ["promote"],
        ["rollback"],
        ["report", "run"],
        ["run"],
        ["ctl"],
        ["ctl", "status"],
    ],
    ids=lambda command: " ".join(command) or "tradingd",
)
def test_help_of_every_command_imports_nothing_heavy(command: list[str], tmp_path: Path) -> None:
    code, modules, _ = probe([*command, "--help"], tmp_path)
    assert code == 0
    assert modules.isdisjoint(HEAVY + MIDDLE + ("pydantic",)), sorted(modules & set(HEAVY + MIDDLE + ("pydantic",)))


def test_ctl_parses_and_runs_on_the_configuration_and_the_socket_client_alone(tmp_path: Path) -> None:
    code, modules, stderr = probe(["ctl", "status"], tmp_path)
    assert code == 69, stderr  # no daemon on this data directory
    assert "is the daemon running?" in stderr
    assert modules.isdisjoint(HEAVY + MIDDLE), sorted(modules & set(HEAVY + MIDDLE))


def test_config_check_loads_only_the_configuration(tmp_path: Path) -> None:
    code, modules, stderr = probe(["config", "check"], tmp_path)
    assert code == 0, stderr
    assert modules.isdisjoint(HEAVY + MIDDLE), sorted(modules & set(HEAVY + MIDDLE))


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["backfill", "--pair", "btc-usdt", "--interval", "1m"], 65, "did you mean BTC-USDT?"),
        (["dataset", "build", "--pair", "BTCUSDT", "--interval", "1m", "--from", "0", "--to", "1"], 65, "BASE-QUOTE"),
        (["agent", "create", "missing.toml"], 65, "missing.toml"),
        (["evaluate", "--policy", "hold", "--dataset", "0" * 32, "--purge-bars", "3"], 2, "need --folds"),
        (["sim", "--candles", "BTC-USDT:1m:missing.csv"], 65, "missing.csv"),
    ],
    ids=["lower-case pair", "pair without hyphen", "missing agent file", "fold option without folds", "missing csv"],
)
def test_argument_and_file_checks_fail_before_any_heavy_import(
    args: list[str], exit_code: int, message: str, tmp_path: Path
) -> None:
    code, modules, stderr = probe(args, tmp_path)
    assert code == exit_code, stderr
    assert message in stderr
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))
    assert not (tmp_path / "data").exists()  # refused before the database is opened
