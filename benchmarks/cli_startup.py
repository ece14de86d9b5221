"""Command-line start-up benchmark: how long `tradingd` takes to answer, beside a bare interpreter start
measured in the same run.

    uv run python -m benchmarks.cli_startup [--runs N] [--no-daemon] [--write]

Each command runs N times (default 7) as a fresh process; the figure is the median wall time, from the
process's start to its exit (and its CPU time, which the other work on a shared machine disturbs
less), with Python's bytecode caches (in a scratch PYTHONPYCACHEPREFIX, filled by a
warm-up run), and beside it the median without any (when the environment sets PYTHONDONTWRITEBYTECODE,
as this project's machines do: every module is then compiled from source at each start). Measured
through the console script in the project's environment (`.venv/bin/tradingd`) and through
`uv run tradingd` (what the README tells users to type; uv checks the environment first and adds its own
time):

- `python -c pass` (the environment's interpreter): the floor every command pays; `uv run python -c pass`:
  the floor under `uv run`;
- `tradingd --help`; `tradingd config check` (loads and validates the configuration);
- `tradingd ctl status` with no daemon running (loads the configuration, finds no socket, exits 69);
- `tradingd ctl status` against a running daemon (the real `tradingd run` on config/replay.toml, in a
  fresh data directory), unless `--no-daemon` or the daemon does not become ready;
- `tradingd train` of an agent on a dataset that does not exist (opens the embedded PostgreSQL, finds
  no dataset, exits 65; the database's start is most of it).

`--write` replaces the CLI start-up section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import write_section

START, END = "<!-- cli-startup-bench:start -->", "<!-- cli-startup-bench:end -->"
ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TARGET_SEC = 1.0


@dataclass(frozen=True)
class Timing:
    what: str
    median_sec: float
    low_sec: float
    high_sec: float
    cpu_sec: float
    """The median CPU time (user + system) of the process and the children it waited for: much less
    sensitive than the wall time to the other work on a shared machine."""
    uncached_sec: float | None = None
    """The median without bytecode caches (every module compiled from source at each start)."""


def clean_env(data_dir: Path, pycache: Path | None = None) -> dict[str, str]:
    """The caller's environment without tradingd settings. With `pycache`, Python writes and reads its
    bytecode caches there (as an ordinary installation has them beside the sources); without, whatever the
    environment says (this project's machines set PYTHONDONTWRITEBYTECODE=1: no caches at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "RL_"))}
    env.pop("API_TOKEN", None)
    env["TRADINGD_DATA_DIR"] = str(data_dir)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def median_of(command: Sequence[str], env: dict[str, str], runs: int, expect: int) -> tuple[list[float], float]:
    """Wall times of `runs` fresh processes of `command`, after one warm-up run (which also fills the
    bytecode and OS file caches, as a second invocation finds them), and their median CPU time."""
    seconds, cpu = [], []
    for attempt in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
        elapsed = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != expect:
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}, expected {expect}:\n{done.stderr[-2000:]}"
            )
        if attempt:
            seconds.append(elapsed)
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return seconds, statistics.median(cpu)


def timed(
    what: str, command: Sequence[str], env: dict[str, str], runs: int, expect: int, *, uncached: bool = True
) -> Timing:
    """`command` with bytecode caches (`env`, see `clean_env`) and, when `uncached`, without them."""
    seconds, cpu = median_of(command, env, runs, expect)
    without = None
    if uncached and "PYTHONPYCACHEPREFIX" in env and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        bare = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"} | {"PYTHONDONTWRITEBYTECODE": "1"}
        without = statistics.median(median_of(command, bare, runs, expect)[0])
    return Timing(what, statistics.median(seconds), min(seconds), max(seconds), cpu, without)


@contextlib.contextmanager
def running_daemon(data_dir: Path, pycache: Path, ready_within_sec: float = 300.0) -> Iterator[dict[str, str] | None]:
    """The real daemon on config/replay.toml in `data_dir`; yields its environment once `ctl status`
    answers, or None when it did not come up in time (the machine is busy, Ray did not start)."""
    env = clean_env(data_dir, pycache)
    log = (data_dir.parent / "daemon.log").open("wb")
    tradingd = str(VENV_BIN / "tradingd")
    process = subprocess.Popen(
        [tradingd, "--config", str(ROOT / "config" / "replay.toml"), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + ready_within_sec
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            probe = subprocess.run(
                [tradingd, "--config", str(ROOT / "config" / "replay.toml"), "ctl", "status"],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
            if probe.returncode == 0:
                ready = True
                break
            time.sleep(2)
        if not ready:
            tail = (data_dir.parent / "daemon.log").read_text(errors="replace").splitlines()[-5:]
            print("the daemon did not become ready; its log ends:\n" + "\n".join(tail), file=sys.stderr)
        yield env if ready else None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def measure(runs: int, with_daemon: bool) -> tuple[list[Timing], str]:
    python = str(VENV_BIN / "python")
    tradingd = str(VENV_BIN / "tradingd")
    uv = shutil.which("uv")
    timings: list[Timing] = []
    daemon_note = "not measured (--no-daemon)"
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as scratch:
        data_dir = Path(scratch) / "data"
        pycache = Path(scratch) / "pycache"
        env = clean_env(data_dir, pycache)
        timings.append(timed("`python -c pass` (baseline)", [python, "-c", "pass"], env, runs, 0))
        if uv is not None:
            timings.append(
                timed("`uv run python -c pass` (uv's own share)", [uv, "run", "python", "-c", "pass"], env, runs, 0)
            )
        timings.append(timed("`tradingd --help`", [tradingd, "--help"], env, runs, 0))
        if uv is not None:
            timings.append(timed("`uv run tradingd --help`", [uv, "run", "tradingd", "--help"], env, runs, 0))
        timings.append(timed("`tradingd config check`", [tradingd, "config", "check"], env, runs, 0))
        timings.append(timed("`tradingd ctl status`, no daemon (exit 69)", [tradingd, "ctl", "status"], env, runs, 69))
        if uv is not None:
            timings.append(
                timed(
                    "`uv run tradingd ctl status`, no daemon", [uv, "run", "tradingd", "ctl", "status"], env, runs, 69
                )
            )
        created = subprocess.run(
            [tradingd, "agent", "create", str(ROOT / "config" / "agents" / "example.toml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        agent = json.loads(created.stdout)["name"]
        train = [tradingd, "train", "--agent", agent, "--dataset", str(uuid.uuid4())]
        timings.append(
            timed(
                "`tradingd train` on a missing dataset (exit 65, embedded PostgreSQL start included)", train, env, 3, 65
            )
        )
        if with_daemon:
            daemon_dir = Path(scratch) / "daemon" / "data"
            daemon_dir.parent.mkdir()
            with running_daemon(daemon_dir, pycache) as daemon_env:
                if daemon_env is None:
                    daemon_note = "not measured: the daemon did not become ready on this busy machine"
                else:
                    status = [tradingd, "--config", str(ROOT / "config" / "replay.toml"), "ctl", "status"]
                    timings.append(
                        timed("`tradingd ctl status`, against the running daemon", status, daemon_env, runs, 0)
                    )
                    daemon_note = "measured against the real daemon (config/replay.toml, two pairs)"
    return timings, daemon_note


def markdown(timings: list[Timing], runs: int, daemon_note: str) -> str:
    baseline = timings[0].median_sec
    load = os.getloadavg()
    rows = []
    for timing in timings:
        beside = "baseline" if timing is timings[0] else f"{timing.median_sec - baseline:+.2f} s over the baseline"
        if timing.uncached_sec is not None:
            beside += f"; {timing.uncached_sec:.2f} s without bytecode caches"
        rows.append(
            f"| {timing.what} | {timing.median_sec:.2f} s (range {timing.low_sec:.2f} to {timing.high_sec:.2f}; "
            f"CPU {timing.cpu_sec:.2f} s) | {beside} |"
        )
    return "\n".join(
        [
            START,
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.cli_startup --write` on "
            f"{platform.machine()}, Python {platform.python_version()}; median wall time (and CPU time) of {runs} "
            "fresh processes each (3 for `train`), after one warm-up, with Python's bytecode caches (as an "
            "installation has them; this machine's environment sets PYTHONDONTWRITEBYTECODE=1, so each figure is "
            "also given without); "
            f"load average {load[0]:.1f} at the end (2 cores, shared). "
            f"`ctl status` against a running daemon: {daemon_note}. Target: under {TARGET_SEC:.0f} s for "
            "`--help` and `ctl status`.",
            "",
            "| what | figure | beside it, same run |",
            "| --- | --- | --- |",
            *rows,
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-daemon", action="store_true", help="skip `ctl status` against a running daemon")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    timings, daemon_note = measure(args.runs, not args.no_daemon)
    section = markdown(timings, args.runs, daemon_note)
    print(section)
    if args.write:
        write_section(START, END, section, heading="Command-line start-up")


if __name__ == "__main__":
    main()
