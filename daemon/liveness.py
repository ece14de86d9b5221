"""The daemon's heartbeat file, and `tradingd liveness`: a check from outside the daemon (a systemd
timer, or `OnFailure=`), because an alert raised inside a process cannot report that process's death.

The daemon rewrites `<data_dir>/heartbeat.json` at every heartbeat (`daemon.heartbeat_sec`), without
the database: its pid and the process's start time, whether the watchdog is withheld (stalled), and the
pairs' states; and once more, `stopped`, when it stops cleanly. `tradingd liveness` reads it and judges:

- `alive`: fresh, its process running, not stalled;
- `stopped`: the daemon stopped cleanly (an operator's stop: nothing to alert);
- `stalled`: fresh, but no pair has decided an arrived candle for `daemon.stall_after_sec`;
- `stale`: older than `alerts.liveness_max_age_sec` (the main loop is stuck, or the host was asleep);
- `dead`: the process it names is gone (or its pid now belongs to another process) without a clean stop;
- `missing`: there is no heartbeat file (the daemon never ran with this data directory).

On a change of verdict it sends one alert through the configured channels (`alerts.*`), directly: no
daemon and no database involved; a critical one for `stalled`, `stale`, `dead` and `missing`, and an
`info` when it is `alive` (or `stopped`) again. The last verdict told is kept in `<data_dir>/liveness.json`,
so a timer that runs every minute alerts once per incident (with no channel configured it says so on
stderr and records nothing: the first run with one alerts). It prints the verdict as one JSON line
and exits 0 for `alive` and `stopped`, 1 otherwise (the timer's unit shows as failed)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

from config.settings import Settings
from daemon.alert_channels import AlertMessage, DeliveryError, close_channels, open_channels
from storage.private_dirs import make_private_dirs

HEARTBEAT_FILE = "heartbeat.json"
VERDICT_FILE = "liveness.json"
UNHEALTHY = ("stalled", "stale", "dead", "missing")
Verdict = Literal["alive", "stopped", "stalled", "stale", "dead", "missing"]


@dataclass(frozen=True)
class Heartbeat:
    state: Literal["running", "stopped"]
    pid: int
    process_started: float
    """psutil's create time of the process: a pid reused by another process is not the daemon."""
    written_at: float
    run_id: str
    pairs: dict[str, str]
    stalled: bool


def write_heartbeat(
    data_dir: Path, *, state: Literal["running", "stopped"], run_id: str, pairs: dict[str, str], stalled: bool
) -> None:
    """Replace the heartbeat file atomically (0600); an error is the caller's to log."""
    beat = Heartbeat(
        state=state,
        pid=os.getpid(),
        process_started=psutil.Process().create_time(),
        written_at=time.time(),
        run_id=run_id,
        pairs=pairs,
        stalled=stalled,
    )
    _write_json(data_dir / HEARTBEAT_FILE, asdict(beat))


def read_heartbeat(data_dir: Path) -> Heartbeat | None:
    """The heartbeat, or None when there is none; a file that is not one reads as None too."""
    try:
        data = json.loads((data_dir / HEARTBEAT_FILE).read_text())
        return Heartbeat(**data)
    except (OSError, ValueError, TypeError):
        return None


def judge(beat: Heartbeat | None, max_age_sec: float, now: float) -> tuple[Verdict, str]:
    """The verdict, and one sentence saying why."""
    if beat is None:
        return "missing", "there is no heartbeat file: the daemon has not run with this data directory"
    age = now - beat.written_at
    if beat.state == "stopped":
        return "stopped", f"the daemon stopped cleanly {age:.0f} s ago"
    if not _running(beat):
        return (
            "dead",
            f"the daemon (pid {beat.pid}) is not running and did not stop cleanly; last heartbeat {age:.0f} s ago",
        )
    if age > max_age_sec:
        return (
            "stale",
            f"the daemon (pid {beat.pid}) runs but its last heartbeat is {age:.0f} s old (limit {max_age_sec:g} s)",
        )
    if beat.stalled:
        return "stalled", "the daemon runs but no pair has decided an arrived candle in time (watchdog withheld)"
    return "alive", f"the daemon (pid {beat.pid}) is alive; heartbeat {age:.0f} s ago"


def _running(beat: Heartbeat) -> bool:
    try:
        process = psutil.Process(beat.pid)
        return abs(process.create_time() - beat.process_started) < 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def run_liveness(settings: Settings) -> int:
    """`tradingd liveness`: judge, alert on a change, print, and exit 0 (healthy) or 1."""
    data_dir = settings.storage.resolved_data_dir()
    verdict, reason = judge(read_heartbeat(data_dir), settings.alerts.liveness_max_age_sec, time.time())
    previous = _previous_verdict(data_dir)
    delivered: list[str] = []
    failed: list[str] = []
    if verdict != previous and (verdict in UNHEALTHY or previous in UNHEALTHY):
        message = _message(verdict, reason, data_dir)
        channels = open_channels(settings.alerts)
        try:
            for channel in channels:
                try:
                    await channel.send(message)
                    delivered.append(channel.name)
                except DeliveryError as error:
                    failed.append(f"{channel.name}: {error}")
        finally:
            await close_channels(channels)
    channels_set = bool(settings.alerts.channels)
    if not channels_set and verdict in UNHEALTHY:
        print(
            "tradingd: no alert channel is configured (alerts.webhook_url, alerts.telegram_*): nobody was told",
            file=sys.stderr,
        )
    if channels_set and not failed:  # a failed alert (or one no channel could carry) is sent on the next run
        _write_json(data_dir / VERDICT_FILE, {"verdict": verdict, "at": time.time()})
    print(json.dumps({"verdict": verdict, "reason": reason, "alerted": delivered, "failed": failed}))
    return 0 if verdict in ("alive", "stopped") else 1


def _message(verdict: Verdict, reason: str, data_dir: Path) -> AlertMessage:
    healthy = verdict in ("alive", "stopped")
    return AlertMessage(
        severity="info" if healthy else "critical",
        kind="daemon_recovered" if healthy else f"daemon_{verdict}",
        message=f"tradingd liveness ({data_dir}): {reason}",
        trace_id=uuid.uuid4().hex,
        raised_at=datetime.now(UTC),
        uid=str(uuid.uuid4()),
        details={"verdict": verdict},
    )


def _previous_verdict(data_dir: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        return str(json.loads((data_dir / VERDICT_FILE).read_text())["verdict"])
    return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    make_private_dirs(path.parent)  # with an external database, nothing else makes the data directory
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file)
    os.replace(temporary, path)
