"""Signals first: `tradingd run` and `tradingd ingest` catch SIGTERM and SIGINT from the first instant
of the process, before anything slow starts, so a stop request at any moment ends in a clean exit (0).

The `tradingd` executable's entry point (`daemon.entry`) installs `STOP`'s handlers before it imports
the command line; until the command's event loop runs they only record the signal. Inside the loop
(`StopRequest.bind`) signals arrive through the loop and set an event, and a start-up is a series of
steps that each end by checking it (`Startup`): a step that runs in a thread or a subprocess (the
embedded PostgreSQL's start, the migrations, `ray.init`) cannot be interrupted safely, so it is
allowed to finish and what it started is then stopped; a step that only waits on the network (the
venue's contracts, the actors' start) is cancelled at once. Other commands keep the default
behaviour: `release` restores it, and re-raises a signal that arrived meanwhile.

Between the moment the command is known and the event loop (loading the configuration and the code,
nothing started yet) a signal ends the process at once, exit 0 (`exit_until_bound`).

This module imports nothing but `os`, `signal` and `sys` at the top: it runs before the command line loads.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_FORCED = 130
"""The exit code of a second signal while stopping: the process ends at once (`os._exit`)."""


class StartupStopped(Exception):
    """A stop was requested during start-up; `stage` is the step that had been reached."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"stopped during start-up ({stage})")
        self.stage = stage


class StopRequest:
    """The process's stop request: the signals received, and (inside the event loop) an event set by
    the first one. A second signal after the event is set ends the process at once, with EXIT_FORCED,
    when `force_on_second` (the daemon); the ingest command lets its stop finish."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}
        self._installed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._listeners: list[Callable[[int], None]] = []
        self._exit_at_once = False
        self.force_on_second = False

    @property
    def requested(self) -> bool:
        """A stop signal arrived (or, once bound, the event was set: `ctl shutdown` sets it too)."""
        return bool(self.received) or (self._event is not None and self._event.is_set())

    @property
    def signal_name(self) -> str | None:
        return signal.Signals(self.received[0]).name if self.received else None

    def install(self) -> None:
        """Record SIGTERM and SIGINT from now on (no event loop needed). Idempotent."""
        if self._installed:
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_frame_signal)
        self._installed = True

    def exit_until_bound(self) -> None:
        """For `run` and `ingest`, once the command is known: until `bind`, nothing has started yet (the
        configuration and the code are loading), so a signal ends the process at once, exit 0; a signal
        that came earlier ends it now."""
        self._exit_at_once = True
        if self.received:
            self._exit_now()

    def _exit_now(self) -> None:
        print(f"tradingd: stopped by {self.signal_name} before start-up", file=sys.stderr, flush=True)
        raise SystemExit(0)

    def release(self) -> None:
        """Back to the handlers that were there before `install` (for commands that keep them); a signal
        recorded meanwhile is raised again, so it has the effect it would have had."""
        if not self._installed:
            return
        self._installed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
        if self.received:
            signal.raise_signal(self.received[0])

    def bind(self, event: asyncio.Event | None = None, on_signal: Callable[[int], None] | None = None) -> asyncio.Event:
        """From the running event loop: signals now arrive through it and set `event` (a new one when not
        given), which is set at once when a signal came earlier. `on_signal` is called (in the loop) for
        each signal, those that came before too. Returns the event."""
        import asyncio

        self.install()
        self._exit_at_once = False
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._event = event if event is not None else asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_loop_signal, signum)
        if on_signal is not None:
            self._listeners.append(on_signal)
            for earlier in self.received:
                on_signal(earlier)
        if self.received:
            self._event.set()
        return self._event

    def reassert(self) -> None:
        """Put the handlers back on top after a library installed its own (Ray's core worker installs a
        C++ handler for SIGTERM in `ray.init`: it prints a stack trace, and the process later aborts)."""
        loop = self._loop
        if loop is None:
            return
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._on_loop_signal, signum)

    def unbind(self) -> None:
        """Before the loop closes (it would reset the signals to their defaults): signals are recorded
        again without a loop, until the process exits."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, self._on_frame_signal)

    @property
    def event(self) -> asyncio.Event:
        assert self._event is not None, "bind() first"
        return self._event

    def _on_frame_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._exit_at_once:
            self._exit_now()

    def _on_loop_signal(self, signum: int) -> None:
        assert self._event is not None
        if self._event.is_set() and self.force_on_second:
            os._exit(EXIT_FORCED)
        self.received.append(signum)
        self._event.set()
        for listener in self._listeners:
            listener(signum)


STOP = StopRequest()
"""The process's one stop request (signal handlers are process-wide)."""


class Startup:
    """A start-up as a series of steps that each end by checking the stop request (see the module
    docstring). `stage` names the step under way, for the log and `systemctl status`."""

    def __init__(self, stop: StopRequest, on_stage: Callable[[str], None] | None = None) -> None:
        self.stop = stop
        self.stage = "starting"
        self._on_stage = on_stage

    def begin(self, stage: str) -> None:
        """The next step: raises StartupStopped when a stop was requested before it."""
        self.check()
        self.stage = stage
        if self._on_stage is not None:
            self._on_stage(stage)

    def _begin_step(self, stage: str, step: Awaitable[Any]) -> None:
        try:
            self.begin(stage)
        except StartupStopped:
            close = getattr(step, "close", None)  # a coroutine that will not run now
            if close is not None:
                close()
            raise

    def check(self) -> None:
        if self.stop.requested:
            raise StartupStopped(self.stage)

    async def finish[T](self, stage: str, step: Awaitable[T]) -> T:
        """A step that must not be interrupted (a thread or a subprocess is at work): it runs to its end.
        The caller owns what it returns; the next `begin` (or `check`) raises StartupStopped when a stop
        came meanwhile, and the caller then stops what the step started."""
        self._begin_step(stage, step)
        return await step

    async def cancellable[T](self, stage: str, step: Awaitable[T]) -> T:
        """A step that only waits (network, other processes' answers): cancelled as soon as a stop is
        requested, raising StartupStopped; it must clean up after itself when cancelled."""
        import asyncio
        import contextlib

        self._begin_step(stage, step)
        task = asyncio.ensure_future(step)
        waiter = asyncio.ensure_future(self.stop.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise StartupStopped(stage)
