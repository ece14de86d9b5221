"""The sd_notify client against a real datagram socket, and the systemd unit checked by systemd itself."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.systemd import Notifier

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT_FILE = REPO_ROOT / "deploy" / "tradingd.service"
INSTALLED_ENTRY_POINT = "/opt/tradingd/.venv/bin/tradingd"
AF_UNIX_PATH_MAX = 107  # sun_path is 108 bytes, one of them the terminating NUL


class Receiver:
    """The manager's end: a bound datagram socket, as systemd's notify socket is."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value  # what NOTIFY_SOCKET would hold

    def receive(self, count: int) -> list[bytes]:
        return [self.sock.recv(65536) for _ in range(count)]

    def assert_empty(self) -> None:
        self.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.sock.recv(65536)


def _bound(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "notify.sock"
    with tempfile.TemporaryDirectory(prefix="sd") as short:
        if len(os.fsencode(path)) > AF_UNIX_PATH_MAX:  # a long basetemp; the socket only needs a short path
            path = Path(short) / "notify.sock"
        sock = _bound(str(path))
        try:
            yield Receiver(sock, str(path))
        finally:
            sock.close()


def test_notifications_arrive_in_order_one_datagram_each(receiver: Receiver) -> None:
    with Notifier.from_environment({"NOTIFY_SOCKET": receiver.env_value}) as notifier:
        assert notifier.enabled
        notifier.ready("trading 2 pairs")
        notifier.status("reconciling\nBTC-USDT\r\nETH-USDT")
        notifier.watchdog()
        notifier.extend_timeout(30_000_000)
        notifier.stopping("halting risk guards")
        notifier.ready()
        notifier.stopping()

    assert receiver.receive(7) == [
        b"READY=1\nSTATUS=trading 2 pairs",
        b"STATUS=reconciling BTC-USDT ETH-USDT",
        b"WATCHDOG=1",
        b"EXTEND_TIMEOUT_USEC=30000000",
        b"STOPPING=1\nSTATUS=halting risk guards",
        b"READY=1",
        b"STOPPING=1",
    ]
    receiver.assert_empty()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the abstract socket namespace is Linux-only")
def test_abstract_namespace_address() -> None:
    name = f"tradingd-test-{uuid.uuid4().hex}"
    sock = _bound("\0" + name)
    try:
        with Notifier.from_environment({"NOTIFY_SOCKET": f"@{name}"}) as notifier:
            notifier.ready("up")
            notifier.watchdog()
        assert [sock.recv(65536) for _ in range(2)] == [b"READY=1\nSTATUS=up", b"WATCHDOG=1"]
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    with capture_logs() as logs, Notifier.from_environment({"WATCHDOG_USEC": "30000000"}) as notifier:
        assert not notifier.enabled
        assert notifier.watchdog_interval_sec is None
        notifier.ready("up")
        notifier.status("x")
        notifier.watchdog()
        notifier.extend_timeout(1)
        notifier.stopping()
    assert logs == []
    assert not Notifier.from_environment({"NOTIFY_SOCKET": ""}).enabled


def test_missing_socket_never_raises_and_warns_once(tmp_path: Path) -> None:
    with capture_logs() as logs, Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "absent.sock")}) as n:
        n.ready("up")
        n.status("running")
        n.watchdog()
        n.watchdog()
        n.stopping()
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [("notify_failed", "warning")]
    assert logs[0]["socket"] == str(tmp_path / "absent.sock")


def test_warning_rearms_after_a_successful_send(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with capture_logs() as logs, Notifier(str(path)) as notifier:
        notifier.watchdog()  # fails: nothing listens yet
        sock = _bound(str(path))
        try:
            notifier.watchdog()
            assert sock.recv(65536) == b"WATCHDOG=1"
        finally:
            sock.close()
            path.unlink()
        notifier.watchdog()  # a new outage
        notifier.watchdog()
    assert [entry["event"] for entry in logs] == ["notify_failed", "notify_failed"]


def test_relative_socket_path_is_refused_without_raising(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sock = _bound("relative.sock")
    try:
        with capture_logs() as logs, Notifier.from_environment({"NOTIFY_SOCKET": "relative.sock"}) as notifier:
            notifier.ready()
        assert [entry["event"] for entry in logs] == ["notify_failed"]
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(65536)
    finally:
        sock.close()


def test_status_is_kept_deliverable(receiver: Receiver) -> None:
    """systemd drops a datagram holding a NUL or of 4096 bytes or more, READY=1 with it."""
    with Notifier(receiver.env_value) as notifier:
        notifier.ready("a\0b")
        notifier.status("é" * 5000)
    ready, status = receiver.receive(2)
    assert ready == b"READY=1\nSTATUS=a b"
    assert len(status) < 4096
    assert status.decode("utf-8").startswith("STATUS=éé")


def test_nothing_is_sent_after_close(receiver: Receiver) -> None:
    notifier = Notifier(receiver.env_value)
    notifier.watchdog()
    notifier.close()
    notifier.close()
    notifier.watchdog()
    notifier.stopping()
    assert receiver.receive(1) == [b"WATCHDOG=1"]
    receiver.assert_empty()


def test_negative_timeout_extension_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Notifier("/run/x.sock").extend_timeout(-1)


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ({}, 15.0),
        ({"WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_PID": str(os.getpid() + 1)}, None),  # the watchdog belongs to another process (our parent)
        ({"WATCHDOG_PID": "not-a-pid"}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process(extra: dict[str, str], interval: float | None) -> None:
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000", **extra}
    assert Notifier.from_environment(environ).watchdog_interval_sec == interval


@pytest.mark.parametrize("usec", ["", "0", "-5", "soon"])
def test_no_watchdog_without_a_positive_timeout(usec: str) -> None:
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": usec}
    assert Notifier.from_environment(environ).watchdog_interval_sec is None


# --- the unit file -----------------------------------------------------------------------------------


def _unit_settings(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order (systemd allows a key more than once)."""
    settings: dict[tuple[str, str], list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, separator, value = line.partition("=")
        assert separator, f"not a KEY=VALUE line: {raw!r}"
        settings.setdefault((section, key.strip()), []).append(value.strip())
    return settings


_TIME_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0,
    "seconds": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0,
    "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip


def _seconds(span: str) -> float:
    """A systemd time span ("90", "90s", "1min 30s") in seconds; seconds when no unit is given."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span.strip().lower())
    assert parts, f"not a time span: {span!r}"
    assert re.fullmatch(r"(\s*\d+(?:\.\d+)?\s*[a-z]*)+\s*", span.lower()), f"not a time span: {span!r}"
    return sum(float(number) * _TIME_UNITS[unit] for number, unit in parts)


def test_unit_declares_notify_supervision_and_a_stop_timeout_beyond_the_shutdown_deadline() -> None:
    settings = _unit_settings(UNIT_FILE.read_text())

    def one(key: str, section: str = "Service") -> str:
        values = settings.get((section, key), [])
        assert len(values) == 1, f"[{section}] {key}= should be set exactly once, is {values}"
        return values[0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert _seconds(one("WatchdogSec")) > 0
    assert one("Restart") == "on-failure"
    assert one("RuntimeDirectory") == "tradingd"
    assert one("StateDirectory") == "tradingd"
    assert one("KillMode") == "mixed"
    assert _seconds(one("TimeoutStopSec")) > 60  # the daemon's own shutdown deadline is 60 s
    assert one("ExecStart").startswith(f"{INSTALLED_ENTRY_POINT} run ")
    assert one("WantedBy", "Install") == "multi-user.target"
    # numpy/Ray JIT and the embedded PostgreSQL need writable+executable mappings
    assert ("Service", "MemoryDenyWriteExecute") not in settings


def test_time_span_parsing() -> None:
    assert _seconds("90") == 90
    assert _seconds("90s") == 90
    assert _seconds("1min 30s") == 90
    assert _seconds("2m") == 120


def _verify(unit_text: str, tmp_path: Path, unit: Path = UNIT_FILE) -> tuple[int, list[str], str]:
    """Run `systemd-analyze verify` on a copy of the unit that can load on this machine.

    Returns the exit status, the output lines that name the unit (how verify reports a problem in it:
    "<path>:<line>: Unknown key ..." or "tradingd.service: Command ... is not executable") and all output.
    """
    analyze = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(analyze).is_file():
        pytest.skip("systemd-analyze is not installed (it comes with systemd); the unit cannot be verified")
    entry_point = shutil.which("tradingd") or str(Path(sys.executable).parent / "tradingd")
    if not Path(entry_point).is_file():
        pytest.skip(f"the tradingd entry point is not installed in this environment ({entry_point})")
    # verify fails when ExecStart's binary does not exist, so point it at this environment's entry
    # point. User=/Group= can stay: verify (systemd 252) does not resolve them.

    def loadable(text: str) -> str:
        if not text.count("ExecStart="):
            return text
        text, count = re.subn(
            rf"^ExecStart={re.escape(INSTALLED_ENTRY_POINT)}(?= )",
            lambda _: f"ExecStart={entry_point}",
            text,
            flags=re.MULTILINE,
        )
        assert count == 1, "ExecStart= no longer starts with the installed entry point; update this test"
        return text

    # The units it names (OnFailure=, the timer's service) beside it, as they are installed.
    for companion in UNIT_FILE.parent.glob("tradingd*.*"):
        (tmp_path / companion.name).write_text(loadable(companion.read_text()))
    copy = tmp_path / unit.name
    copy.write_text(loadable(unit_text))

    usage = subprocess.run([analyze, "--help"], capture_output=True, text=True, check=False).stdout
    options = [option for option in ("--man=no", "--recursive-errors=no") if option.split("=")[0] in usage]
    # verify prints problems as warnings and, without an explicit --recursive-errors (systemd < 250
    # lacks it), still exits 0: the output is what counts. Pin the log level so an inherited
    # SYSTEMD_LOG_LEVEL=err cannot silence those warnings.
    environment = {
        **os.environ,
        "SYSTEMD_LOG_LEVEL": "info",
        "SYSTEMD_LOG_COLOR": "0",
        "SYSTEMD_LOG_TARGET": "console",
        "SYSTEMD_PAGER": "",
    }
    result = subprocess.run(
        [analyze, "verify", *options, str(copy)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    faulty = [line for line in output.splitlines() if any(u.name in line for u in UNIT_FILE.parent.glob("tradingd*.*"))]
    return result.returncode, faulty, output


@pytest.mark.parametrize("name", ["tradingd.service", "tradingd-liveness.service", "tradingd-liveness.timer"])
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    unit = UNIT_FILE.parent / name
    returncode, faulty, output = _verify(unit.read_text(), tmp_path, unit)
    assert faulty == [], output
    assert returncode == 0, output


def test_the_daemons_failure_runs_the_liveness_check_which_runs_the_same_configuration() -> None:
    daemon_unit = UNIT_FILE.read_text()
    liveness = (UNIT_FILE.parent / "tradingd-liveness.service").read_text()
    assert "OnFailure=tradingd-liveness.service" in daemon_unit
    assert "liveness --config /etc/tradingd/tradingd.toml" in liveness
    assert "run --config /etc/tradingd/tradingd.toml" in daemon_unit
    assert "StateDirectory=tradingd" in liveness, "it reads the heartbeat in the daemon's data directory"


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("WatchdogSec=60", "WatchdogSecs=60"),  # an unknown directive
        ("Type=notify", "Type=notfy"),  # a bad value
        ("[Install]", "[Instal]"),  # an unknown section
    ],
)
def test_verify_catches_mistakes(tmp_path: Path, good: str, bad: str) -> None:
    """The check above would pass vacuously if verify's warnings were lost; a broken copy must fail it."""
    text = UNIT_FILE.read_text()
    assert good in text
    _, faulty, output = _verify(text.replace(good, bad, 1), tmp_path)
    assert faulty, output
