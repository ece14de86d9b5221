"""`tradingd train` with a dataset that does not exist says so, against the real database, without ever
importing RLlib or torch (it took 41 s before saying so when it imported them first)."""

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


def test_train_on_a_missing_dataset_fails_with_65_before_importing_rllib(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    created = tradingd(env, "agent", "create", str(ROOT / "config" / "agents" / "example.toml"))
    assert created.returncode == 0, created.stderr
    agent = json.loads(created.stdout)["name"]
    missing = uuid.uuid4()

    done = subprocess.run(
        [sys.executable, "-c", TRAIN_PROBE, "train", "--agent", agent, "--dataset", str(missing)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    line = next((line for line in done.stdout.splitlines() if line.startswith("PROBE ")), None)
    assert line is not None, done.stdout + done.stderr
    report = json.loads(line.removeprefix("PROBE "))
    assert report["code"] == 65, done.stderr
    assert f"tradingd: no dataset {missing}" in done.stderr
    heavy = {"ray", "torch", "pandas", "talib", "nautilus_trader", "matplotlib"} & set(report["modules"])
    assert not heavy, sorted(heavy)

    # The same through the console script: the exit code and the message a user sees.
    direct = tradingd(env, "train", "--agent", "nobody", "--dataset", str(missing))
    assert direct.returncode == 65
    assert "tradingd: no agent configuration 'nobody'" in direct.stderr
