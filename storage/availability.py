"""Which errors mean "the database is not reachable now" (as opposed to a query or a bug of ours).

The supervisor asks this of a pair start that failed: a start that failed only because the database
was down waits and is tried again, and does not count toward the restart budget that makes a pair
FAULTED (a 60 s outage must not fault every pair).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from asyncpg import exceptions as pg


class StorageUnavailableError(RuntimeError):
    """The database cannot be reached or prepared; the message says which and why (never a password).
    `unreachable`: because it did not answer (an outage that will pass), not because it refused us (a
    wrong password or database name, which waiting cannot mend)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, DNS, and asyncpg's connect timeout (TimeoutError)
    pg.PostgresConnectionError,  # class 08: the connection failed or was lost
    pg.InterfaceError,  # the connection was closed under us
    pg.OperatorInterventionError,  # class 57: shutting down, starting up, cannot connect now
    pg.TooManyConnectionsError,
)


def database_unreachable(error: BaseException) -> bool:
    if isinstance(error, StorageUnavailableError):
        return error.unreachable
    return isinstance(error, UNREACHABLE)


async def within[T](awaitable: Awaitable[T], seconds: float, what: str) -> T:
    """`awaitable`'s result, or TimeoutError (which `database_unreachable` counts) after `seconds`.

    Unlike `asyncio.timeout`, this does not wait for the cancelled work to clean up: asyncpg returns a
    connection to its pool shielded from cancellation, and the reset it runs then waits on a frozen
    database for the whole command timeout (60 s). The abandoned work ends in the background."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        raise TimeoutError(f"{what}: the database did not answer within {seconds:g} s")
    return task.result()


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: an abandoned read's failure is expected, not "never retrieved"
