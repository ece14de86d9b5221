"""`tradingd db ...`: migrate, status, export, import, reset."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import exit_codes

if TYPE_CHECKING:
    import asyncpg

    from config import Settings
    from storage.database import Database, StorageOptions
    from storage.migrator import SchemaStatus

# asyncpg, the storage layer and the logger are imported where a command runs, not here: building the
# command line's parser must stay cheap (see daemon/cli.py).


def _log() -> Any:
    from observability import get_logger

    return get_logger("tradingd.db")


def storage_options(settings: Settings) -> StorageOptions:
    from storage.database import StorageOptions

    storage = settings.storage
    return StorageOptions(
        url=storage.timescale_url.get_secret_value() if storage.timescale_url is not None else None,
        data_dir=storage.resolved_data_dir(),
        pool_min_size=storage.pool_min_size,
        pool_max_size=storage.pool_max_size,
        command_timeout_sec=storage.command_timeout_sec,
    )


async def open_database(settings: Settings) -> Database | None:
    """The configured database, or None after telling the operator why it cannot be opened."""
    from storage.availability import StorageUnavailableError
    from storage.database import Database

    try:
        return await Database.open(storage_options(settings))
    except (StorageUnavailableError, OSError) as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return None


async def open_migrated_database(settings: Settings) -> Database | None:
    """`open_database`, with the schema brought up to date; None after telling the operator why not."""
    from storage.migrator import MigrationError, migrate

    database = await open_database(settings)
    if database is None:
        return None
    try:
        async with database.pool.acquire() as connection:
            await migrate(connection)
    except MigrationError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        await database.close()
        return None
    return database


async def run_db_command(settings: Settings, args: argparse.Namespace) -> int:
    from storage.migrator import MigrationError
    from storage.table_io import ImportLineError, TableIOError

    handler: Callable[[asyncpg.Connection, argparse.Namespace, Database], Awaitable[int]] = _HANDLERS[args.db_command]
    database = await open_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        async with database.pool.acquire() as connection:
            return await handler(connection, args, database)
    except ImportLineError as error:
        print(f"tradingd: import into {args.table} refused, table unchanged: {error}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    except (TableIOError, MigrationError) as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.FAILURE
    finally:
        await database.close()


async def _migrate(connection: asyncpg.Connection, _args: argparse.Namespace, database: Database) -> int:
    from storage.migrator import migrate, schema_status

    applied = await migrate(connection)
    status = await schema_status(connection)
    for migration in applied:
        _log().info("migration_applied", migration=migration.label, target=database.target)
    print(f"{len(applied)} migration(s) applied; schema up to date in {status.mode} mode ({database.target})")
    return exit_codes.OK


async def _status(connection: asyncpg.Connection, args: argparse.Namespace, database: Database) -> int:
    from storage.migrator import schema_status

    status = await schema_status(connection)
    report = _status_report(status, database.target)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"database:    {report['target']}")
        print(f"mode:        {report['mode']} ({report['timescale']})")
        print(f"applied:     {', '.join(report['applied']) or 'none'}")
        print(f"pending:     {', '.join(report['pending']) or 'none'}")
        if report["hypertables"]:
            print(f"hypertables: {', '.join(report['hypertables'])}")
    return exit_codes.OK if not status.pending else exit_codes.FAILURE


def _status_report(status: SchemaStatus, target: str) -> dict[str, Any]:
    return {
        "target": target,
        "mode": status.mode,
        "timescale": status.timescale.reason,
        "applied": [
            f"{a.version:04d}_{a.name}" + (" (timescale)" if a.variant == "timescale" else "") for a in status.applied
        ],
        "pending": [m.label for m in status.pending],
        "hypertables": status.hypertables,
    }


async def _export(connection: asyncpg.Connection, args: argparse.Namespace, _database: Database) -> int:
    from storage.table_io import export_table

    count = await export_table(connection, args.table, Path(args.out))
    print(f"exported {count} row(s) of {args.table} to {args.out}")
    return exit_codes.OK


async def _import(connection: asyncpg.Connection, args: argparse.Namespace, _database: Database) -> int:
    from storage.table_io import import_table

    count = await import_table(connection, args.table, Path(args.file), replace=args.replace)
    _log().info("table_imported", table=args.table, rows=count, replace=args.replace)
    print(f"imported {count} row(s) into {args.table}" + (" (replaced its rows)" if args.replace else ""))
    return exit_codes.OK


async def _backup(connection: asyncpg.Connection, args: argparse.Namespace, database: Database) -> int:
    from storage.backup import backup

    manifest = await backup(connection, args.out)
    rows = sum(entry["rows"] for entry in manifest["tables"].values())
    _log().info("database_backed_up", target=database.target, directory=str(args.out), tables=len(manifest["tables"]))
    print(f"backed up {len(manifest['tables'])} tables, {rows} row(s), to {args.out} (one snapshot)")
    return exit_codes.OK


async def _restore(connection: asyncpg.Connection, args: argparse.Namespace, database: Database) -> int:
    from storage.backup import restore

    restored = await restore(connection, args.directory)
    _log().warning("database_restored", target=database.target, directory=str(args.directory), rows=restored.rows)
    print(f"restored {restored.tables} tables, {restored.rows} row(s), from {args.directory} into {database.target}")
    return exit_codes.OK


async def _reset(connection: asyncpg.Connection, args: argparse.Namespace, _database: Database) -> int:
    from storage.table_io import reset_table, row_count

    rows = await row_count(connection, args.table)
    if not args.yes and not _confirmed(args.table, rows):
        print("tradingd: reset cancelled; nothing was deleted", file=sys.stderr)
        return exit_codes.FAILURE
    deleted = await reset_table(connection, args.table)
    _log().warning("table_reset", table=args.table, rows=deleted)
    print(f"deleted {deleted} row(s) from {args.table}")
    return exit_codes.OK


def _confirmed(table: str, rows: int) -> bool:
    print(f"This deletes all {rows} row(s) of {table}. Type the table name to confirm: ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip() == table


_HANDLERS: dict[str, Callable[[asyncpg.Connection, argparse.Namespace, Database], Awaitable[int]]] = {
    "migrate": _migrate,
    "status": _status,
    "export": _export,
    "backup": _backup,
    "restore": _restore,
    "import": _import,
    "reset": _reset,
}
