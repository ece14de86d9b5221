"""SQL migrations, applied in order, each in its own transaction, and recorded.

Files in `storage/migrations/` are named `NNNN_name.sql` (every database) and optionally
`NNNN_name.timescale.sql` (applied after its base only when the timescaledb extension is present).
`schema_migrations` records each applied (version, variant) with the file's checksum, so:
- migrating again is a no-op;
- a database that ran in plain mode gets the Timescale variants as soon as the extension appears;
- an applied file that was edited afterwards, or a database migrated by a newer tradingd, is refused
  rather than silently diverging.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import asyncpg

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
SCHEMA_TABLE: Final = "schema_migrations"
_ADVISORY_LOCK_KEY: Final = 0x7472_6164  # "trad": serialises concurrent migrators
_FILE_NAME: Final = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?P<timescale>\.timescale)?\.sql$")

Variant = Literal["base", "timescale"]
Mode = Literal["timescale", "plain"]


class MigrationError(RuntimeError):
    """Migrations cannot be applied safely; the message says which file and why."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variant: Variant
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        suffix = " (timescale)" if self.variant == "timescale" else ""
        return f"{self.version:04d}_{self.name}{suffix}"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    variant: Variant
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class TimescaleInfo:
    available: bool
    installed_version: str | None
    reason: str
    """Why the mode is what it is, for `tradingd db status`."""


@dataclass(frozen=True)
class SchemaStatus:
    mode: Mode
    timescale: TimescaleInfo
    applied: list[AppliedMigration]
    pending: list[Migration]
    hypertables: list[str]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} does not match NNNN_name[.timescale].sql")
        variant: Variant = "timescale" if match["timescale"] else "base"
        migrations.append(Migration(int(match["version"]), match["name"], variant, path.read_text()))
    migrations.sort(key=lambda m: (m.version, m.variant == "timescale"))
    seen: dict[tuple[int, Variant], Migration] = {}
    for migration in migrations:
        key = (migration.version, migration.variant)
        if key in seen:
            raise MigrationError(f"two migrations share version {migration.version:04d} ({migration.variant})")
        seen[key] = migration
        if migration.variant == "timescale" and (migration.version, "base") not in seen:
            raise MigrationError(f"{migration.label} has no base migration {migration.version:04d}")
    return migrations


async def migrate(connection: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply every pending migration; return those applied now (empty when up to date)."""
    known = discover() if migrations is None else migrations
    await connection.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_KEY)
    try:
        await _ensure_schema_table(connection)
        applied = await _applied(connection)
        _verify_applied(known, applied)
        timescale = await enable_timescale(connection)
        done = {(a.version, a.variant) for a in applied}
        applied_now = []
        for migration in known:
            if (migration.version, migration.variant) in done:
                continue
            if migration.variant == "timescale" and not timescale.available:
                continue
            await _apply(connection, migration)
            applied_now.append(migration)
        return applied_now
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_KEY)


async def schema_status(connection: asyncpg.Connection, migrations: list[Migration] | None = None) -> SchemaStatus:
    known = discover() if migrations is None else migrations
    timescale = await timescale_info(connection)
    has_table = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", SCHEMA_TABLE)
    applied = await _applied(connection) if has_table else []
    done = {(a.version, a.variant) for a in applied}
    pending = [m for m in known if (m.version, m.variant) not in done and (m.variant == "base" or timescale.available)]
    hypertables: list[str] = []
    if timescale.installed_version is not None:
        rows = await connection.fetch(
            "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY hypertable_name"
        )
        hypertables = [row["hypertable_name"] for row in rows]
    mode: Mode = "timescale" if timescale.installed_version is not None and hypertables else "plain"
    return SchemaStatus(mode, timescale, applied, pending, hypertables)


async def timescale_info(connection: asyncpg.Connection) -> TimescaleInfo:
    row = await connection.fetchrow(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if row is None:
        return TimescaleInfo(False, None, "the timescaledb extension is not available on this server")
    if row["installed_version"] is None:
        return TimescaleInfo(True, None, f"timescaledb {row['default_version']} is available but not installed")
    return TimescaleInfo(True, row["installed_version"], f"timescaledb {row['installed_version']} is installed")


async def enable_timescale(connection: asyncpg.Connection) -> TimescaleInfo:
    """Install the extension when the server offers it. A server that offers it without preloading
    it (shared_preload_libraries) refuses; that is plain mode, with the reason kept for status."""
    info = await timescale_info(connection)
    if not info.available or info.installed_version is not None:
        return info
    try:
        async with connection.transaction():
            await connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as error:
        return TimescaleInfo(False, None, f"timescaledb is available but cannot be installed: {error}")
    return await timescale_info(connection)


async def _ensure_schema_table(connection: asyncpg.Connection) -> None:
    await connection.execute(
        f"""
        CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} (
            version     integer     NOT NULL,
            variant     text        NOT NULL CHECK (variant IN ('base', 'timescale')),
            name        text        NOT NULL,
            checksum    text        NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (version, variant)
        )
        """
    )


async def _applied(connection: asyncpg.Connection) -> list[AppliedMigration]:
    rows = await connection.fetch(
        f"SELECT version, name, variant, checksum, applied_at FROM {SCHEMA_TABLE} ORDER BY version, variant"
    )
    return [AppliedMigration(r["version"], r["name"], r["variant"], r["checksum"], r["applied_at"]) for r in rows]


def _verify_applied(known: list[Migration], applied: list[AppliedMigration]) -> None:
    by_key = {(m.version, m.variant): m for m in known}
    for record in applied:
        migration = by_key.get((record.version, record.variant))
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.version:04d}_{record.name} ({record.variant}) "
                "which this tradingd does not know; it was migrated by a newer version"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"migration {migration.label} changed after it was applied "
                f"(recorded {record.checksum[:12]}, file {migration.checksum[:12]}); "
                "write a new migration instead of editing an applied one"
            )


async def _apply(connection: asyncpg.Connection, migration: Migration) -> None:
    try:
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version, variant, name, checksum) VALUES ($1, $2, $3, $4)",
                migration.version,
                migration.variant,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as error:
        raise MigrationError(f"migration {migration.label} failed and was rolled back: {error}") from error
