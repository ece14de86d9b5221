"""`tradingd train` with a dataset that does not exist says so, against the real database, without ever
importing RLlib or torch (it took 41 s before saying so when it imported them first); `evaluate` and
`report run` likewise check what they name before importing nautilus_trader or matplotlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.e2e.cli_helpers import tradingd

ROOT = Path(__file__).resolve().parents[2]
TRAIN_PROBE = """
import json, sys
from daemon import cli
code = cli.main(sys.argv[1:])
print("PROBE " + json.dumps({"code": code, "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


HEAVY = {"ray", "torch", "pandas", "talib", "nautilus_trader", "matplotlib"}


def probe(env: dict[str, str], *args: str) -> tuple[int, set[str], str]:
    """`tradingd ARGS` in a fresh interpreter: its exit code, the top-level packages it imported, its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_PROBE, *args], env=env, capture_output=True, text=True, timeout=300,
        check=False, cwd=ROOT,
    )  # fmt: skip
    line = next((line for line in done.stdout.splitlines() if line.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    report = json.loads(line.removeprefix("PROBE "))
    return report["code"], set(report["modules"]), done.stderr


def test_train_on_a_missing_dataset_fails_with_65_before_importing_rllib(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    created = tradingd(env, "agent", "create", str(ROOT / "config" / "agents" / "example.toml"))
    assert created.returncode == 0, created.stderr
    agent = json.loads(created.stdout)["name"]
    missing = uuid.uuid4()

    code, modules, stderr = probe(env, "train", "--agent", agent, "--dataset", str(missing))
    assert code == 65, stderr
    assert f"tradingd: no dataset {missing}" in stderr
    assert not HEAVY & modules, sorted(HEAVY & modules)

    # evaluate and report check what they name before nautilus_trader and matplotlib are imported.
    code, modules, stderr = probe(env, "evaluate", "--policy", "hold", "--dataset", str(missing))
    assert code == 65, stderr
    assert f"tradingd: no dataset {missing}" in stderr
    assert not HEAVY & modules, sorted(HEAVY & modules)
    code, modules, stderr = probe(env, "report", "run", str(missing))
    assert code == 65, stderr
    assert f"tradingd: no run {missing}" in stderr
    assert not HEAVY & modules, sorted(HEAVY & modules)

    # The same through the console script: the exit code and the message a user sees.
    direct = tradingd(env, "train", "--agent", "nobody", "--dataset", str(missing))
    assert direct.returncode == 65
    assert "tradingd: no agent configuration 'nobody'" in direct.stderr
