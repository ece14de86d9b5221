"""Rows that outlive a database outage: a row that cannot be written is kept (up to `capacity`, the oldest
dropped first and counted) and written, in order, before the next one or at the next `flush`. The daemon
must never wait on the database to record what happened: keeping never raises. Each row kept is logged
once (`<what>_kept`), and the kept rows written when the database is back once (`<what>s_written`),
however often a flush is tried meanwhile. A row the database refuses for good (an error `transient` does
not count as the database being away) is dropped with `<what>_refused`: it must not hold up the rows
behind it. What uses it: the alert outbox and the control socket's audit.

A kept row lives in memory: a crash of the process that holds it loses it (the log line that says it was
kept stays)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from observability.logs import get_logger

log = get_logger("tradingd.kept_writes")


def _always(_error: BaseException) -> bool:
    return True


@dataclass
class KeptWrites[Row]:
    write: Callable[[Row], Awaitable[Any]]
    what: str
    """The row's kind in the log events (`alert_kept`, `alerts_written`, `alert_dropped`)."""
    capacity: int = 1000
    transient: Callable[[BaseException], bool] = _always
    """Whether a write's error means "try again later" (`storage.availability.database_unreachable`)."""
    pending: deque[Row] = field(default_factory=deque)
    dropped: int = 0
    _failing: bool = False
    """The last write failed: the next that succeeds writes what was kept (and says so)."""
    _writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One writer at a time. A write given up on (a frozen database: `storage.availability.within`) goes on
    in the background holding it; meanwhile a row is kept, never waited for."""

    async def submit(self, row: Row, **context: Any) -> bool:
        """Write the row (after any kept earlier); False when it was kept for later instead. `context`
        goes into the `<what>_kept` log line."""
        self.keep(row)
        if self._writing.locked():
            log.warning(f"{self.what}_kept", **context, kept=len(self.pending), error="a write is under way")
            return False
        error = await self._write_pending()
        if error is not None:
            log.warning(f"{self.what}_kept", **context, kept=len(self.pending), error=type(error).__name__)
        return error is None

    async def flush(self) -> bool:
        """Write what is kept, oldest first; True when nothing is left (False while another write runs)."""
        if self._writing.locked():
            return False
        return await self._write_pending() is None

    async def _write_pending(self) -> Exception | None:
        async with self._writing:
            return await self._write_all()

    async def _write_all(self) -> Exception | None:
        written = 0
        while self.pending:
            row = self.pending[0]
            try:
                await self.write(row)
            except Exception as error:
                if self.transient(error):  # the database is away: keep it
                    self._failing = True
                    return error
                log.error(f"{self.what}_refused", error=type(error).__name__)
            else:
                written += 1
            if self.pending and self.pending[0] is row:  # not dropped from a full queue meanwhile
                self.pending.popleft()
        if self._failing:
            log.info(f"{self.what}s_written", written=written)
            self._failing = False
        return None

    def keep(self, row: Row) -> None:
        """Keep a row to be written by a later `submit` or `flush`, without trying now."""
        if len(self.pending) >= self.capacity:
            self.pending.popleft()
            self.dropped += 1
            log.error(f"{self.what}_dropped", dropped=self.dropped, capacity=self.capacity)
        self.pending.append(row)
