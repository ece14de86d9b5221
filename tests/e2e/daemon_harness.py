"""Running the real daemon in e2e tests and in benchmarks/daemon.py: `tradingd sim` replaying real candles
(two pairs by default, any number of pairs on the two candle files), the `tradingd run` process with a
systemd notify socket, its control socket, and its database."""

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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
SOURCES = ("BTCUSDT", "ETHUSDT")  # ../shared/data/candles/BINANCE_{source}_1m.csv, the real candles of PAIRS
ACCOUNT: Mapping[str, float] = {"breaker_max_losses": 1000}
SUPERVISION: Mapping[str, float] = {
    "health_interval_sec": 1.0,
    "health_timeout_sec": 5.0,
    "restart_backoff_sec": 0.5,
    "heartbeat_sec": 5.0,
}  # the [daemon] section: quick health checks and restarts


def clean_environment(*also: str) -> dict[str, str]:
    """This process's environment without the settings that would point a child at another daemon, venue or
    database (and without the variables named by the prefixes `also`)."""
    prefixes = ("TRADINGD_", "BINGX_", "TIMESCALE_", *also)
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def cut_files(shared: Path, directory: Path, rows: int | None, pairs: Sequence[str] = PAIRS) -> dict[str, Path]:
    """The first `rows` (None: all) real 1m candles of BTC and ETH, one file each in `directory`; each pair's
    file: pair i replays SOURCES[i % 2], so more pairs than two share the two files under other names."""
    written = []
    for name in SOURCES:
        path = directory / f"{name}.csv"
        data = load_candle_file(shared / f"BINANCE_{name}_1m.csv")
        write_candle_file(path, data if rows is None else data[:rows])
        written.append(path)
    return {pair: written[i % len(written)] for i, pair in enumerate(pairs)}


@contextlib.contextmanager
def simulator_process(
    files: dict[str, Path],
    speed: str = "60",
    log: Path | None = None,
    *,
    faults: bool = False,
    api_keys: Sequence[str] = (),
    start_bars: int = START_BARS,
) -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    """`tradingd sim` for the pairs, its clock `start_bars` minutes into the files (history to warm up on): its
    urls and its process. Its log goes to `log` (or nowhere). `faults`: with `POST /sim/faults` (`sim_faults`);
    `api_keys`: `KEY:SECRET` pairs it signs with (its account, for live trading)."""
    assert TRADINGD is not None
    first = max(load_candle_file(path)[0].open_time_ms for path in set(files.values()))
    command = [TRADINGD, "sim", "--speed", speed, "--start", str(first + start_bars * 60_000)]
    command += ["--faults"] if faults else []
    for key in api_keys:
        command += ["--api-key", key]
    for pair, path in files.items():
        command += ["--candles", f"{pair}:1m:{path}"]
    with contextlib.ExitStack() as output:
        errors = output.enter_context(log.open("ab")) if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=clean_environment())
    assert process.stdout is not None
    try:
        yield json.loads(process.stdout.readline()), process
    finally:
        process.send_signal(signal.SIGCONT)  # in case a test stopped its clock
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        process.stdout.close()


@contextlib.contextmanager
def replay_simulator(files: dict[str, Path], speed: str = "60") -> Iterator[dict[str, str]]:
    """`tradingd sim` for the pairs (see simulator_process): its urls."""
    with simulator_process(files, speed) as (urls, _):
        yield urls


def write_config(
    directory: Path,
    *,
    extra: str = "",
    pairs: Sequence[str] = PAIRS,
    account: Mapping[str, float] = ACCOUNT,
    supervision: Mapping[str, float] = SUPERVISION,
) -> Path:
    """tradingd.toml: the simulator's pairs, the momentum baseline, JSON logs; `account` and `supervision`
    (the [daemon] section, left out when empty: the defaults) as given, then `extra`."""

    def section(name: str, values: Mapping[str, float]) -> str:
        return "".join([f"[{name}]\n", *(f"{key} = {value}\n" for key, value in values.items()), "\n"])

    path = directory / "tradingd.toml"
    path.write_text(
        f"""
[market_data]
source = "simulator"
pairs = {json.dumps(list(pairs))}
intervals = ["1m"]

[run]
policy = "momentum"

{section("account", account) if account else ""}{section("daemon", supervision) if supervision else ""}[logging]
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
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), datagram), never cleared
    started_at: float = 0.0  # time.monotonic() of the last start()

    @property
    def socket_path(self) -> Path:
        return Path(self.env["TRADINGD_CONTROL_SOCKET"])

    def start(self) -> None:
        assert TRADINGD is not None
        log = self.log_path.open("ab")
        self.started_at = time.monotonic()
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
                    message = self.notify.recv(65536).decode(errors="replace")
                except TimeoutError:
                    continue
                except OSError:
                    return
                self.arrivals.append((time.monotonic(), message))
                self.messages.append(message)

        threading.Thread(target=read, daemon=True).start()

    def notifications(self) -> list[str]:
        """Every notify datagram so far, in arrival order."""
        return list(self.messages)

    def wait_ready(self, timeout: float = 180.0) -> None:
        self.wait_until(lambda: any("READY=1" in m for m in self.notifications()), timeout, "READY=1")

    def ready(self, timeout: float = 600.0) -> tuple[float, str]:
        """Waits for the first READY=1 since the last start(): seconds from that start to its arrival, and the
        STATUS= sent with it."""
        found: list[tuple[float, str]] = []

        def arrived() -> bool:
            for at, message in list(self.arrivals):
                lines = message.split("\n")
                if at >= self.started_at and "READY=1" in lines:
                    status = next((line.removeprefix("STATUS=") for line in lines if line.startswith("STATUS=")), "")
                    found.append((at - self.started_at, status))
                    return True
            return False

        self.wait_until(arrived, timeout, "READY=1", every=0.05)
        return found[0]

    def check_alive(self, what: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited ({self.process.returncode}) waiting for {what}:\n{self.tail()}")

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive(what)
            if condition():
                return
            time.sleep(every)
        raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}")

    def ctl(self, command: str, **args: object) -> dict[str, Any]:
        return call(self.socket_path, TOKEN, command, timeout_sec=60.0, **args)

    def terminate(self, timeout: float = 90.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def terminate_counted(self, timeout: float = 120.0) -> tuple[int | None, float, int]:
        """SIGTERM: the exit code (None when it took longer than `timeout`: then everything is killed), the
        seconds it took, and how many of the processes under it were left afterwards (they are killed)."""
        assert self.process is not None
        descendants = self.tree()[1:]
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code: int | None = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = self.process.wait(timeout=timeout)
        took = time.monotonic() - began
        if code is None:
            self.kill_everything()
        _, alive = psutil.wait_procs(descendants, timeout=15)
        for straggler in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                straggler.kill()
        return code, took, len(alive)

    def tree(self) -> list[psutil.Process]:
        """The daemon's process and every process under it (none once it is gone)."""
        assert self.process is not None
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill_everything(self) -> float:
        """kill -9 the daemon and every process under it at once (as systemd does to the unit's cgroup); the
        wall-clock time (time.time()) just before the first signal."""
        assert self.process is not None
        victims = self.tree()
        killed_at = time.time()
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=30)
        self.process.wait(timeout=30)
        return killed_at

    def tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON record in the daemon's log, in order."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def events(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.log_records() if record.get("event") == name]


@contextlib.contextmanager
def daemon(
    config: Path,
    urls: dict[str, str],
    database_url: str,
    work: Path,
    *,
    watchdog_usec: int = 2_000_000,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Daemon]:
    """A Daemon (not started) for `config`, with its data, log and sockets under `work`, pointed at the
    simulator's `urls` and at `database_url`; killed with everything under it on the way out."""
    runtime = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))  # unix socket paths must stay short
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(runtime / "notify"))
    env = clean_environment("NOTIFY", "WATCHDOG_", "RAY_ADDRESS")
    env.update(
        {
            "TRADINGD_DATA_DIR": str(work / "data"),
            "TRADINGD_CONTROL_SOCKET": str(runtime / "control.sock"),
            "BINGX_REST_URL": urls["rest_url"],
            "BINGX_WS_URL": urls["ws_url"],
            "TIMESCALE_URL": database_url,
            "API_TOKEN": TOKEN,
            "NOTIFY_SOCKET": str(runtime / "notify"),
            "WATCHDOG_USEC": str(watchdog_usec),
            **(extra_env or {}),
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


def ctl_client(d: Daemon, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real `tradingd ctl` client process, as an operator runs it against the daemon `d`."""
    assert TRADINGD is not None
    return subprocess.run(
        [TRADINGD, "--config", str(d.config), "ctl", *argv],
        env=d.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


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


def decisions_per_pair(url: str) -> dict[str, int]:
    """Decisions recorded, by pair (empty before the daemon has created the schema)."""
    try:
        rows = query(url, "SELECT pair, count(*) FROM trade_decisions GROUP BY pair")
    except asyncpg.UndefinedTableError:
        return {}
    return {str(row[0]): int(row[1]) for row in rows}


def newest_decided(url: str, pair: str) -> int:
    """The open time (ms) of the newest candle decided for a pair (0 before the first)."""
    rows = query(
        url,
        "SELECT (extract(epoch FROM max(candle_open_time)) * 1000)::bigint FROM trade_decisions WHERE pair = $1",
        pair,
    )
    return int(rows[0][0] or 0)


def sim_faults(urls: dict[str, str], **faults: object) -> dict[str, Any]:
    """Make a `tradingd sim --faults` misbehave (see `BingXSimulator._set_faults`); its answer."""
    address = urlsplit(urls["rest_url"])
    connection = http.client.HTTPConnection(address.netloc, timeout=30)
    try:
        connection.request("POST", "/sim/faults", json.dumps(faults), {"Content-Type": "application/json"})
        answer: dict[str, Any] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    if not answer.get("ok"):
        raise AssertionError(f"the simulator refused the faults: {answer}")
    return answer


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


def resumed_or_automatically_blocked(done: subprocess.CompletedProcess[str]) -> bool:
    """`ctl resume` took: exit 0, or exit 1 because only automatic blocks remain (a stale-data or gate pause
    of candles decided while the machine was busy, which clears by itself when a fresh candle passes)."""
    if done.returncode == 0:
        return True
    if done.returncode != 1 or "trading is still blocked" not in done.stderr:
        return False
    blocks = [line.strip() for line in done.stdout.split("still blocked:", 1)[-1].splitlines() if line.strip()]
    return bool(blocks) and all(": gate:" in line or ": source_stale" in line for line in blocks)
