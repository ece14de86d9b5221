"""Running the real daemon in e2e tests: a two-pair `tradingd sim` replaying real candles, the
`tradingd run` process with a systemd notify socket, its control socket, and its database."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import psutil

from daemon.control_client import call
from exchange.sim.candle_file import load_candle_file, write_candle_file

TRADINGD = shutil.which("tradingd")
PAIRS = ("BTC-USDT", "ETH-USDT")
START_BARS = 1200
TOKEN = "e2e-token-0123456789"


def cut_files(shared: Path, directory: Path, rows: int) -> dict[str, Path]:
    files = {}
    for pair, name in zip(PAIRS, ("BTCUSDT", "ETHUSDT"), strict=True):
        path = directory / f"{name}.csv"
        write_candle_file(path, load_candle_file(shared / f"BINANCE_{name}_1m.csv")[:rows])
        files[pair] = path
    return files


@contextlib.contextmanager
def replay_simulator(files: dict[str, Path], speed: str = "60") -> Iterator[dict[str, str]]:
    """`tradingd sim` for the pairs, its clock START_BARS minutes into the files (history to warm up on)."""
    assert TRADINGD is not None
    first = load_candle_file(next(iter(files.values())))[0].open_time_ms
    command = [TRADINGD, "sim", "--speed", speed, "--start", str(first + START_BARS * 60_000)]
    for pair, path in files.items():
        command += ["--candles", f"{pair}:1m:{path}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert process.stdout is not None
    try:
        yield json.loads(process.stdout.readline())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()


def write_config(directory: Path, *, extra: str = "") -> Path:
    path = directory / "tradingd.toml"
    path.write_text(
        f"""
[market_data]
source = "simulator"
pairs = {json.dumps(list(PAIRS))}
intervals = ["1m"]

[run]
policy = "momentum"

[account]
breaker_max_losses = 1000

[daemon]
health_interval_sec = 1.0
health_timeout_sec = 5.0
restart_backoff_sec = 0.5
heartbeat_sec = 5.0

[logging]
format = "json"
{extra}
"""
    )
    return path


@dataclass
class Daemon:
    config: Path
    env: dict[str, str]
    log_path: Path
    notify: socket.socket
    process: subprocess.Popen[bytes] | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return Path(self.env["TRADINGD_CONTROL_SOCKET"])

    def start(self) -> None:
        assert TRADINGD is not None
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [TRADINGD, "--config", str(self.config), "run"], stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        log.close()

    def listen(self) -> None:
        """Read notify datagrams as they come, as systemd does (a unix datagram queue holds only ~10)."""

        self.notify.settimeout(0.2)

        def read() -> None:
            while self.notify.fileno() != -1:
                try:
                    self.messages.append(self.notify.recv(65536).decode())
                except TimeoutError:
                    continue
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()

    def notifications(self) -> list[str]:
        """Every notify datagram so far, in arrival order."""
        return list(self.messages)

    def wait_ready(self, timeout: float = 180.0) -> None:
        self.wait_until(lambda: any("READY=1" in m for m in self.notifications()), timeout, "READY=1")

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited ({self.process.returncode}) waiting for {what}:\n{self.tail()}"
                )
            if condition():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}")

    def ctl(self, command: str, **args: object) -> dict[str, Any]:
        return call(self.socket_path, TOKEN, command, timeout_sec=60.0, **args)

    def terminate(self, timeout: float = 90.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill_everything(self) -> None:
        """kill -9 the daemon and every process under it at once (as systemd does to the unit's cgroup)."""
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        victims = [*root.children(recursive=True), root]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=30)
        self.process.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found


@contextlib.contextmanager
def daemon(config: Path, urls: dict[str, str], database_url: str, work: Path) -> Iterator[Daemon]:
    runtime = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))  # unix socket paths must stay short
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(runtime / "notify"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "NOTIFY"))}
    env.update(
        {
            "TRADINGD_DATA_DIR": str(work / "data"),
            "TRADINGD_CONTROL_SOCKET": str(runtime / "control.sock"),
            "BINGX_REST_URL": urls["rest_url"],
            "BINGX_WS_URL": urls["ws_url"],
            "TIMESCALE_URL": database_url,
            "API_TOKEN": TOKEN,
            "NOTIFY_SOCKET": str(runtime / "notify"),
            "WATCHDOG_USEC": "2000000",
        }
    )
    handle = Daemon(config, env, work / "daemon.log", notify)
    handle.listen()
    try:
        yield handle
    finally:
        if handle.process is not None and handle.process.poll() is None:
            handle.kill_everything()
        notify.close()
        shutil.rmtree(runtime, ignore_errors=True)


def query(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def decisions(url: str, pair: str) -> int:
    """Decisions recorded for a pair (0 before the daemon has created the schema)."""
    try:
        return int(query(url, "SELECT count(*) FROM trade_decisions WHERE pair = $1", pair)[0][0])
    except asyncpg.UndefinedTableError:
        return 0


def newest_decided(url: str, pair: str) -> int:
    """The open time (ms) of the newest candle decided for a pair (0 before the first)."""
    rows = query(
        url,
        "SELECT (extract(epoch FROM max(candle_open_time)) * 1000)::bigint FROM trade_decisions WHERE pair = $1",
        pair,
    )
    return int(rows[0][0] or 0)


def venue_clock_ms(urls: dict[str, str], pair: str = PAIRS[0]) -> int:
    """The simulator's replay clock (ms), as its price endpoint reports it (its server time is wall time)."""
    address = urlsplit(urls["rest_url"])
    connection = http.client.HTTPConnection(address.netloc, timeout=30)
    try:
        connection.request("GET", f"/openApi/swap/v2/quote/price?symbol={pair}")
        return int(json.loads(connection.getresponse().read())["data"]["time"])
    finally:
        connection.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
