"""`tradingd --config config/replay.toml run`, as the README gives it: the daemon serves the files itself
and paper-trades both pairs; and its log stream, as journald receives it: with `logging.format = "json"`,
every line on stdout is a JSON object, the main process's and the forwarded actor lines alike; Ray's
"SIGTERM handler is not set" notice appears on neither stream; a decision line's `action` is always a word."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.e2e.daemon_harness import PAIRS, TRADINGD, decisions, query

ROOT = Path(__file__).resolve().parents[2]


def events(path: Path) -> list[dict[str, Any]]:
    parsed = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    return parsed


def test_the_replay_config_trades_offline_and_logs_only_json_lines_without_rays_noise(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    assert TRADINGD is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env.update({"TRADINGD_DATA_DIR": str(tmp_path / "data"), "TIMESCALE_URL": postgres_url})
    stdout_path, stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [TRADINGD, "--config", str(ROOT / "config" / "replay.toml"), "run"], stdout=stdout, stderr=stderr, env=env
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert process.poll() is None, stdout_path.read_text()[-3000:] + stderr_path.read_text()[-3000:]
            if all(decisions(postgres_url, pair) >= 5 for pair in PAIRS):
                break
            time.sleep(1)
        assert all(decisions(postgres_url, pair) >= 5 for pair in PAIRS), "both pairs trade the replay"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    lines = stdout_path.read_text().splitlines()
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not not_json, not_json[:5]
    parsed = [json.loads(line) for line in lines]
    names = {event["event"] for event in parsed}
    assert {"daemon_ready", "actor_ready", "decision", "daemon_stopped"} <= names  # main process and workers
    assert "replay_venue_started" in names  # the daemon served the files itself
    assert query(postgres_url, "SELECT baseline_policy FROM agent_runs")[0][0] == "momentum"
    assert all("actor" in e or e.get("role") for e in parsed if e["event"] == "actor_ready")
    everything = stdout_path.read_text() + stderr_path.read_text()
    assert "SIGTERM handler is not set" not in everything
    assert "has been deprecated" not in everything
    decision_lines = [e for e in parsed if e["event"] == "decision"]
    assert decision_lines
    assert {type(e["action"]) for e in decision_lines} == {str}
    assert {e["action"] for e in decision_lines} <= {"long", "short", "flat", "hold"}
    listening = next(e for e in parsed if e["event"] == "control_socket_listening")
    assert listening["token_required"] is False  # a boolean, not masked for its key's name


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
