"""A whole-database backup and its restore into a fresh database (disaster recovery).

`backup` writes every table (`table_io.export_table`, JSON lines) from one snapshot (a single
repeatable-read transaction, so a running daemon's writes never split it) and a `manifest.json` with
the schema's migrations and each file's row count and SHA-256. `restore` checks the manifest and every
file, refuses a database whose migrations differ or that holds rows already, then loads every table in
foreign-key order in one transaction: all or nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import asyncpg

from storage.migrator import SCHEMA_TABLE
from storage.table_io import TableIOError, export_table, import_table, row_count, user_tables

MANIFEST: Final = "manifest.json"
FORMAT: Final = 1


class BackupError(TableIOError):
    """The backup or restore was refused or failed; the message says why (nothing was restored)."""


@dataclass(frozen=True)
class Restored:
    tables: int
    rows: int


async def backup(connection: asyncpg.Connection, directory: Path) -> dict[str, Any]:
    """Every table into `directory` (created; it must not hold a backup already); the manifest."""
    _prepare(directory)
    tables: dict[str, Any] = {}
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        migrations = await _migrations(connection)
        for table in await user_tables(connection):
            path = directory / f"{table}.jsonl"
            rows = await export_table(connection, table, path)
            tables[table] = {"rows": rows, "sha256": _digest(path)}
    manifest = {
        "tradingd_backup": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "migrations": migrations,
        "tables": tables,
    }
    _write_manifest(directory, manifest)
    return manifest


def _prepare(directory: Path) -> None:
    if (directory / MANIFEST).exists():
        raise BackupError(f"{directory} holds a backup already; choose a new directory")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        raise BackupError(f"cannot create {directory}: {error.strerror}") from None


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


async def restore(connection: asyncpg.Connection, directory: Path) -> Restored:
    """Load a backup into this (migrated, empty) database."""
    manifest = _manifest(directory)
    migrations = await _migrations(connection)
    if migrations != manifest["migrations"]:
        raise BackupError(
            f"the backup is of schema {manifest['migrations'][-1:]} and this database is at {migrations[-1:]}: "
            "run `tradingd db migrate` on a fresh database of the same release"
        )
    tables = set(await user_tables(connection))
    listed = set(manifest["tables"])
    if listed - tables:
        raise BackupError(f"this database has no table {sorted(listed - tables)[0]}")
    holding = [table for table in sorted(tables) if await row_count(connection, table)]
    if holding:
        raise BackupError(
            f"a restore goes into a fresh database; {holding[0]} holds rows (and {len(holding) - 1} more)"
        )
    for table, entry in manifest["tables"].items():
        if _digest(directory / f"{table}.jsonl") != entry["sha256"]:
            raise BackupError(f"{table}.jsonl does not match the manifest (changed or damaged)")
    total = 0
    async with connection.transaction():
        for table in await _dependency_order(connection, listed):
            rows = await import_table(connection, table, directory / f"{table}.jsonl")
            if rows != manifest["tables"][table]["rows"]:
                raise BackupError(f"{table}: {rows} rows read, the manifest says {manifest['tables'][table]['rows']}")
            total += rows
    return Restored(len(listed), total)


def _manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{directory} holds no backup ({MANIFEST} is missing)") from None
    except (OSError, ValueError) as error:
        raise BackupError(f"{directory / MANIFEST} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("tradingd_backup") != FORMAT:
        raise BackupError(f"{directory / MANIFEST} is not a tradingd backup of format {FORMAT}")
    return manifest


async def _migrations(connection: asyncpg.Connection) -> list[int]:
    rows = await connection.fetch(f"SELECT DISTINCT version FROM {SCHEMA_TABLE} ORDER BY version")
    return [int(row["version"]) for row in rows]


async def _dependency_order(connection: asyncpg.Connection, tables: set[str]) -> list[str]:
    """The tables, each after every table its foreign keys point at."""
    rows = await connection.fetch(
        """
        SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND n.nspname = 'public'
        """
    )
    parents: dict[str, set[str]] = {table: set() for table in tables}
    for row in rows:
        child, parent = row["child"].strip('"'), row["parent"].strip('"')
        if child in parents and parent in tables and parent != child:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(table for table, needs in parents.items() if not needs - set(ordered))
        if not ready:
            raise BackupError(f"the foreign keys of {sorted(parents)} form a cycle")
        ordered.extend(ready)
        for table in ready:
            del parents[table]
    return ordered


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
