"""Which errors mean "the database is not reachable now" (as opposed to a query or a bug of ours).

The supervisor asks this of a pair start that failed: a start that failed only because the database
was down waits and is tried again, and does not count toward the restart budget that makes a pair
FAULTED (a 60 s outage must not fault every pair).
"""

from __future__ import annotations

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
