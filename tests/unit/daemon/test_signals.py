"""Signals first (`daemon.signals`): a stop request recorded from the first instant, a start-up that ends
after the step under way (a thread's step finishes, a waiting step is cancelled), the default behaviour
back for the other commands."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.signals import Startup, StartupStopped, StopRequest

REPO = Path(__file__).resolve().parents[3]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


def settle(stop: StopRequest) -> None:
    """Back to pytest's own handlers, forgetting the signals this test sent itself (`release` would
    raise them again)."""
    stop.received.clear()
    stop.unbind()
    stop.release()


def test_a_signal_before_the_command_is_known_is_recorded_not_fatal() -> None:
    done = run_python(
        "import os, signal\n"
        "from daemon.signals import STOP\n"
        "STOP.install()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print('alive', STOP.signal_name)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alive SIGTERM"


def test_once_run_or_ingest_is_known_a_signal_before_the_loop_exits_at_once_with_0() -> None:
    for early in (True, False):  # a signal that came before, or one that comes after
        done = run_python(
            "import os, signal\n"
            "from daemon.signals import STOP\n"
            "STOP.install()\n"
            + ("os.kill(os.getpid(), signal.SIGTERM)\nSTOP.exit_until_bound()\n" if early else "")
            + ("STOP.exit_until_bound()\nos.kill(os.getpid(), signal.SIGTERM)\n" if not early else "")
            + "print('not reached')\n"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == ""
        assert done.stderr.strip() == "tradingd: stopped by SIGTERM before start-up"


def test_other_commands_get_the_default_behaviour_back_and_a_signal_that_came_meanwhile() -> None:
    done = run_python(
        "import os, signal\n"
        "from daemon.signals import STOP\n"
        "STOP.install()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "STOP.release()\n"
        "print('not reached')\n"
    )
    assert done.returncode == -signal.SIGTERM
    assert done.stdout == ""
    stop = StopRequest()
    stop.install()
    stop.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # what pytest had before


async def test_a_waiting_step_is_cancelled_and_the_start_up_ends_there() -> None:
    stop = StopRequest()
    event = stop.bind()
    try:
        startup = Startup(stop)
        cancelled = asyncio.Event()

        async def venue_check() -> str:
            try:
                await asyncio.Event().wait()  # a venue that never answers
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "unreachable"

        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        with pytest.raises(StartupStopped) as stopped:
            await startup.cancellable("checking the venue", venue_check())
        assert stopped.value.stage == "checking the venue"
        assert cancelled.is_set()
        assert event.is_set()
        assert stop.signal_name == "SIGTERM"
    finally:
        settle(stop)


async def test_a_step_in_a_thread_finishes_then_the_next_step_is_refused() -> None:
    stop = StopRequest()
    event = stop.bind()
    try:
        stages: list[str] = []
        startup = Startup(stop, stages.append)

        def start_server() -> str:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the blocking step runs
            return "server started"

        started = await startup.finish("starting the database", asyncio.to_thread(start_server))
        assert started == "server started"  # not abandoned half-way: the caller stops what it started
        await asyncio.wait_for(event.wait(), 10.0)  # the loop has handled the signal
        with pytest.raises(StartupStopped) as stopped:
            startup.begin("starting Ray")
        assert stopped.value.stage == "starting the database"
        assert stages == ["starting the database"]
        never = asyncio.Event().wait()
        with pytest.raises(StartupStopped):
            await startup.finish("starting the actors", never)  # refused before it starts, and closed
    finally:
        settle(stop)


async def test_listeners_hear_the_signals_that_came_before_the_loop_too() -> None:
    stop = StopRequest()
    stop.install()
    heard: list[int] = []
    try:
        os.kill(os.getpid(), signal.SIGINT)
        event = stop.bind(on_signal=heard.append)
        assert event.is_set()
        assert heard == [signal.SIGINT]
    finally:
        settle(stop)
