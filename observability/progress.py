"""Progress of long work (dataset builds, backfills, walk-forward training and backtests, reports): a
tqdm bar when stderr is a terminal, `progress` log events otherwise. Stdout stays for results.

Code that does the work takes a `Reporter` (`reporter(task, total, unit)`, a context manager giving
a `Tracker`) as an optional argument and calls `advance(n)` as it goes; the CLI passes `progress`,
tests and the daemon's actors pass nothing (`quiet`). Pure packages (`domain`, `features`) never see
this module: their callers chunk the work or pass a plain callback in.

A log event carries `task`, `done`, `total` (None when unknown), `unit`, `elapsed` (seconds since the
task started) and `state`: `running` for the first event (done 0) and for one at each tenth of the
total or every `every_sec` seconds, whichever comes first, then `finished` once (at done == total, or
when the task ends short of it, as a backfill reaching the venue's first candle does) or `failed`
when the work raised.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, TextIO

from observability.logs import get_logger

log = get_logger("tradingd.progress")
EVERY_SEC = 10.0


class Tracker(Protocol):
    def advance(self, n: int = 1) -> None: ...


Reporter = Callable[[str, int | None, str], AbstractContextManager[Tracker]]
"""`reporter(task, total, unit)`: how long work says how far it is."""


class _Quiet:
    def advance(self, n: int = 1) -> None:
        pass


@contextmanager
def quiet(task: str, total: int | None, unit: str) -> Iterator[Tracker]:
    """The reporter of work nobody watches."""
    yield _Quiet()


class LogTracker:
    """`progress` log events, throttled to tenths of the total and `every_sec` seconds."""

    def __init__(
        self,
        task: str,
        total: int | None,
        unit: str,
        *,
        every_sec: float = EVERY_SEC,
        clock: Callable[[], float] = time.monotonic,
        logger: Any = None,
    ) -> None:
        self.task, self.total, self.unit = task, total, unit
        self.done = 0
        self._every_sec = every_sec
        self._clock = clock
        self._log = logger if logger is not None else log
        self._started = self._last = clock()
        self._tenth = 0
        self._finished = False
        self._emit("running")

    def advance(self, n: int = 1) -> None:
        if self._finished:
            return
        self.done += n
        if self.total is not None and self.done >= self.total:
            self._finished = True
            self._emit("finished")
            return
        tenth = self.done * 10 // self.total if self.total else 0
        if tenth > self._tenth or self._clock() - self._last >= self._every_sec:
            self._tenth = tenth
            self._emit("running")

    def close(self, failed: bool = False) -> None:
        if failed:
            self._emit("failed")
        elif not self._finished:
            self._emit("finished")
        self._finished = True

    def _emit(self, state: str) -> None:
        self._last = self._clock()
        self._log.info(
            "progress",
            task=self.task,
            done=self.done,
            total=self.total,
            unit=self.unit,
            elapsed=round(self._last - self._started, 3),
            state=state,
        )


class BarTracker:
    """A tqdm bar on the terminal."""

    def __init__(self, task: str, total: int | None, unit: str, stream: TextIO) -> None:
        from tqdm import tqdm  # only a terminal pays for the import

        self._bar = tqdm(total=total, desc=task, unit=f" {unit}", file=stream, dynamic_ncols=True, leave=True)

    def advance(self, n: int = 1) -> None:
        self._bar.update(n)

    def close(self, failed: bool = False) -> None:
        self._bar.close()


@contextmanager
def progress(
    task: str, total: int | None, unit: str, *, stream: TextIO | None = None, every_sec: float = EVERY_SEC
) -> Iterator[Tracker]:
    """A bar when `stream` (stderr) is a terminal, `progress` log events otherwise."""
    output = stream if stream is not None else sys.stderr
    isatty = getattr(output, "isatty", None)
    tracker: LogTracker | BarTracker
    if isatty and isatty():
        tracker = BarTracker(task, total, unit, output)
    else:
        tracker = LogTracker(task, total, unit, every_sec=every_sec)
    try:
        yield tracker
    except BaseException:
        tracker.close(failed=True)
        raise
    tracker.close()


def track[T](items: Sequence[T], task: str, unit: str, reporter: Reporter = progress) -> Iterator[T]:
    """The items, each counted once the loop body is done with it (`for x in track(xs, ...)`)."""
    with reporter(task, len(items), unit) as tracker:
        for item in items:
            yield item
            tracker.advance()


def as_step[**P, R](reporter: Reporter, task: str, unit: str, work: Callable[P, R]) -> Callable[P, R]:
    """`work` as a task of one step: `as_step(progress, "report", "report", write)(...)`."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with reporter(task, 1, unit) as tracker:
            result = work(*args, **kwargs)
            tracker.advance()
        return result

    return run
