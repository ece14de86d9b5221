"""Open and close the one asyncpg pool of a process: embedded PostgreSQL by default, or an external
server (PostgreSQL or TimescaleDB) when a URL is given."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.availability import StorageUnavailableError, database_unreachable
from storage.embedded import EmbeddedPostgres, EmbeddedPostgresError

EMBEDDED_DATABASE = "tradingd"


@dataclass(frozen=True)
class StorageOptions:
    """What storage needs to know, in plain values (storage does not read the config tree)."""

    url: str | None
    data_dir: Path
    pool_min_size: int = 1
    pool_max_size: int = 10
    command_timeout_sec: float = 60.0


class Database:
    """The process's pool, and the embedded server behind it when there is one."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        embedded: EmbeddedPostgres | None,
        target: str,
        *,
        copy_supported: bool = True,
        dsn: str = "",
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        """How other processes of the daemon (its actors) reach the same database. May hold a password."""
        self.embedded = embedded
        self.target = target
        self.copy_supported = copy_supported
        """Whether the server implements `COPY FROM STDIN` (PGlite, used to test Timescale mode, does not)."""
        """Where the data lives, safe to print: `embedded:<pgdata>` or the URL's host/port/database."""

    @classmethod
    async def open(cls, options: StorageOptions) -> Database:
        embedded: EmbeddedPostgres | None = None
        if options.url is None:
            embedded = EmbeddedPostgres(options.data_dir)
            try:
                maintenance_dsn = await asyncio.to_thread(embedded.start)
            except (EmbeddedPostgresError, OSError) as error:
                raise StorageUnavailableError(str(error)) from error
            try:
                await _ensure_database(maintenance_dsn, EMBEDDED_DATABASE)
            except (OSError, asyncpg.PostgresError) as error:
                await asyncio.to_thread(embedded.stop)
                raise StorageUnavailableError(f"cannot prepare the embedded database: {error}") from error
            except BaseException:
                await asyncio.to_thread(embedded.stop)
                raise
            dsn = _with_database(maintenance_dsn, EMBEDDED_DATABASE)
            target = f"embedded:{embedded.pgdata}"
        else:
            dsn = options.url
            target = describe_url(options.url)
        try:
            pglite = await _is_pglite(dsn)
            pool = await asyncpg.create_pool(
                dsn,
                min_size=options.pool_min_size,
                max_size=options.pool_max_size,
                command_timeout=options.command_timeout_sec,
                init=_init_connection,
                reset=_reset_keeping_search_path if pglite else None,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise StorageUnavailableError(
                f"cannot connect to {target}: {type(error).__name__}: {error}", unreachable=database_unreachable(error)
            ) from None
        return cls(pool, embedded, target, copy_supported=not pglite, dsn=dsn)

    async def close(self, grace_sec: float = 10.0) -> None:
        """Close gracefully within `grace_sec`, then terminate what is left; stop the embedded server."""
        try:
            await asyncio.wait_for(self.pool.close(), grace_sec)
        except TimeoutError:
            self.pool.terminate()
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop)


async def _is_pglite(dsn: str) -> bool:
    """PGlite (PostgreSQL in WASM, which serves our TimescaleDB tests) differs from a server in two ways
    that matter here: it has no `COPY FROM STDIN`, and all connections share one backend session."""
    connection = await asyncpg.connect(dsn)
    try:
        return "emscripten" in str(await connection.fetchval("SELECT version()")).lower()
    finally:
        await connection.close()


async def _reset_keeping_search_path(connection: asyncpg.Connection) -> None:
    """The pool's usual reset, then the default search path again: on PGlite's single shared session,
    `RESET ALL` leaves `search_path` at `pg_catalog` for every connection after it."""
    await connection.reset()
    await connection.execute('SET search_path TO "$user", public')


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name, encoder=_dump_json, decoder=json.loads, schema="pg_catalog", format="text"
        )


def _dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


async def _ensure_database(maintenance_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(maintenance_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it between our check and our create; that is fine.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def describe_url(url: str) -> str:
    """host:port/database of a URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"
