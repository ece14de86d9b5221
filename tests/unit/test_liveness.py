"""`tradingd liveness` judges the daemon from its heartbeat file alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from daemon.liveness import Heartbeat, judge, read_heartbeat, write_heartbeat


def _beat(**changes: object) -> Heartbeat:
    fields: dict[str, object] = {
        "state": "running",
        "pid": os.getpid(),
        "process_started": psutil.Process().create_time(),
        "written_at": 1000.0,
        "run_id": "r",
        "pairs": {"BTC-USDT": "running"},
        "stalled": False,
    }
    return Heartbeat(**(fields | changes))  # type: ignore[arg-type]


def test_the_verdicts() -> None:
    assert judge(_beat(), 180, 1010.0)[0] == "alive"
    assert judge(_beat(), 180, 1181.0)[0] == "stale"
    assert judge(_beat(stalled=True), 180, 1010.0)[0] == "stalled"
    assert judge(_beat(state="stopped", pid=1, process_started=0.0), 180, 99_999.0)[0] == "stopped"
    assert judge(None, 180, 0.0)[0] == "missing"


def test_a_dead_pid_or_a_reused_one_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    verdict, reason = judge(_beat(pid=child.pid, process_started=started), 180, 1010.0)
    assert verdict == "dead"
    assert str(child.pid) in reason
    assert judge(_beat(process_started=123.0), 180, 1010.0)[0] == "dead", "our pid, another process's start time"


def test_the_file_round_trips_and_a_torn_one_reads_as_none(tmp_path: Path) -> None:
    write_heartbeat(tmp_path, state="running", run_id="r1", pairs={"ETH-USDT": "restarting"}, stalled=False)
    beat = read_heartbeat(tmp_path)
    assert beat is not None
    assert beat.pid == os.getpid()
    assert beat.pairs == {"ETH-USDT": "restarting"}
    assert abs(beat.written_at - time.time()) < 60
    assert oct((tmp_path / "heartbeat.json").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "heartbeat.json").write_text('{"state": "runn')
    assert read_heartbeat(tmp_path) is None


async def test_with_no_channel_nothing_is_recorded_so_the_first_run_with_one_alerts(
    tmp_path: Path, capsys: object
) -> None:
    from config.settings import Settings
    from daemon.liveness import run_liveness

    settings = Settings.model_validate({"storage": {"data_dir": str(tmp_path)}})
    assert await run_liveness(settings) == 1
    assert not (tmp_path / "liveness.json").exists()
    assert "nobody was told" in capsys.readouterr().err  # type: ignore[attr-defined]
