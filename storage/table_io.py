"""Data hygiene: export a table to JSON lines, import JSON lines into it, reset it.

PostgreSQL does the type conversion both ways (`to_jsonb` out, `jsonb_populate_recordset` in), and
import sends each line's original text, never a Python re-encoding, so numerics keep every digit,
timestamps every microsecond, floats their exact value and JSON its structure. An import runs in
one transaction: any bad line (reported with its line number) leaves the table exactly as it was.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg

from storage.migrator import SCHEMA_TABLE

BATCH_ROWS: Final = 1000


class TableIOError(Exception):
    """The operation was refused or failed; nothing was written."""


class ImportLineError(TableIOError):
    """A line of an import file is invalid; the table is unchanged."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {reason}")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    not_null: bool
    has_default: bool
    sequence: str | None
    """The sequence behind an identity or serial column, to move past imported ids."""


async def user_tables(connection: asyncpg.Connection) -> list[str]:
    """Tables of the public schema that operators may export, import and reset."""
    rows = await connection.fetch(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> $1
        ORDER BY c.relname
        """,
        SCHEMA_TABLE,
    )
    return [row["relname"] for row in rows]


async def table_columns(connection: asyncpg.Connection, table: str) -> list[Column]:
    rows = await connection.fetch(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
               a.atthasdef OR a.attidentity <> '' AS has_default,
               pg_get_serial_sequence(quote_ident($1), a.attname) AS sequence
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        table,
    )
    return [Column(r["attname"], r["type"], r["attnotnull"], r["has_default"], r["sequence"]) for r in rows]


async def export_table(connection: asyncpg.Connection, table: str, out: Path) -> int:
    """Write every row of `table` as one JSON object per line, in primary-key order; return the count.
    The file appears only when complete (written beside it, then renamed)."""
    await _require_table(connection, table)
    order = await _order_columns(connection, table)
    query = f"SELECT to_jsonb(t)::text AS line FROM {_quote(table)} AS t ORDER BY {', '.join(_quote(c) for c in order)}"
    partial = out.with_name(f".{out.name}.partial")
    try:
        handle = partial.open("w", encoding="utf-8", newline="\n")
    except OSError as error:
        raise TableIOError(f"cannot write {out}: {error.strerror}") from None
    try:
        with handle:
            if connection.is_in_transaction():  # a backup's one snapshot of every table
                count = await _write_rows(connection, query, handle)
            else:
                async with connection.transaction(readonly=True, isolation="repeatable_read"):
                    count = await _write_rows(connection, query, handle)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return count


async def _write_rows(connection: asyncpg.Connection, query: str, handle: Any) -> int:
    # Timestamps in UTC, whatever the server's time zone, so files compare across servers.
    await connection.execute("SET LOCAL timezone = 'UTC'")
    count = 0
    async for record in connection.cursor(query, prefetch=BATCH_ROWS):
        handle.write(record["line"])
        handle.write("\n")
        count += 1
    return count


async def import_table(connection: asyncpg.Connection, table: str, source: Path, *, replace: bool = False) -> int:
    """Insert the rows of a JSON-lines file into `table` (after deleting its rows, with `replace`).
    All or nothing: on any invalid line, raise `ImportLineError` and leave the table unchanged.
    The file is streamed, one batch in memory at a time; the single transaction makes it atomic."""
    await _require_table(connection, table)
    columns = await table_columns(connection, table)
    count = 0
    async with connection.transaction():
        if replace:
            await _delete_all(connection, table)
        for batch in _batches(_validated_lines(source, columns, table)):
            await _insert_batch(connection, table, batch)
            count += len(batch)
        await _advance_sequences(connection, table, columns)
    return count


async def reset_table(connection: asyncpg.Connection, table: str) -> int:
    """Delete every row of `table` and restart its id sequences; return the number deleted."""
    await _require_table(connection, table)
    columns = await table_columns(connection, table)
    async with connection.transaction():
        deleted = await _delete_all(connection, table)
        for column in columns:
            if column.sequence is not None:
                await connection.execute("SELECT setval($1::regclass, 1, false)", column.sequence)
    return deleted


async def row_count(connection: asyncpg.Connection, table: str) -> int:
    await _require_table(connection, table)
    return int(await connection.fetchval(f"SELECT count(*) FROM {_quote(table)}"))


@dataclass(frozen=True)
class _Line:
    number: int
    text: str
    keys: tuple[str, ...]


def _validated_lines(source: Path, columns: list[Column], table: str) -> Iterator[_Line]:
    by_name = {column.name: column for column in columns}
    required = [c.name for c in columns if c.not_null and not c.has_default]
    try:
        handle = source.open(encoding="utf-8")
    except OSError as error:
        raise TableIOError(f"cannot read {source}: {error.strerror}") from None
    with handle:
        number = 0
        try:
            for number, raw in enumerate(handle, start=1):
                text = raw.strip()
                if not text:
                    continue
                yield _Line(number, text, _check_line(number, text, by_name, required, table))
        except UnicodeDecodeError as error:
            raise ImportLineError(number + 1, f"not UTF-8 text ({error.reason})") from None


def _check_line(number: int, text: str, by_name: dict[str, Column], required: list[str], table: str) -> tuple[str, ...]:
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportLineError(number, f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, dict):
        raise ImportLineError(number, f"expected a JSON object, found {type(value).__name__}")
    unknown = sorted(key for key in value if key not in by_name)
    if unknown:
        raise ImportLineError(number, f"unknown column(s) for table {table}: {', '.join(unknown)}")
    missing = [name for name in required if value.get(name) is None]
    if missing:
        raise ImportLineError(number, f"column(s) that must not be null are missing or null: {', '.join(missing)}")
    return tuple(sorted(value))


def _batches(lines: Iterable[_Line]) -> Iterator[list[_Line]]:
    """Runs of consecutive lines with the same columns, at most BATCH_ROWS long."""
    batch: list[_Line] = []
    for line in lines:
        if batch and (line.keys != batch[0].keys or len(batch) >= BATCH_ROWS):
            yield batch
            batch = []
        batch.append(line)
    if batch:
        yield batch


async def _insert_batch(connection: asyncpg.Connection, table: str, batch: list[_Line]) -> None:
    column_list = ", ".join(_quote(key) for key in batch[0].keys)
    statement = (
        f"INSERT INTO {_quote(table)} ({column_list}) "
        f"SELECT {column_list} FROM jsonb_populate_recordset(NULL::{_quote(table)}, $1::text::jsonb)"
    )
    try:
        async with connection.transaction():
            await connection.execute(statement, "[" + ",".join(line.text for line in batch) + "]")
        return
    except asyncpg.PostgresError:
        pass
    # The batch failed (and was rolled back to its savepoint): insert its lines one by one, so the first
    # line that fails on its own is named. If none fails, each row is now inserted exactly once.
    for line in batch:
        try:
            async with connection.transaction():
                await connection.execute(statement, f"[{line.text}]")
        except asyncpg.PostgresError as error:
            raise ImportLineError(line.number, _postgres_reason(error)) from None


async def _delete_all(connection: asyncpg.Connection, table: str) -> int:
    try:
        status = await connection.execute(f"DELETE FROM {_quote(table)}")
    except asyncpg.ForeignKeyViolationError as error:
        raise TableIOError(
            f"cannot delete the rows of {table}: other tables still refer to them ({_postgres_reason(error)}); "
            "reset the referring table first"
        ) from None
    return int(status.split()[-1])


async def _advance_sequences(connection: asyncpg.Connection, table: str, columns: list[Column]) -> None:
    for column in columns:
        if column.sequence is None:
            continue
        name = _quote(column.name)
        await connection.execute(
            f"SELECT setval($1::regclass, COALESCE(max({name}), 1), max({name}) IS NOT NULL) FROM {_quote(table)}",
            column.sequence,
        )


async def _order_columns(connection: asyncpg.Connection, table: str) -> list[str]:
    rows = await connection.fetch(
        """
        SELECT a.attname FROM pg_index i
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position) ON true
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisprimary
        ORDER BY k.position
        """,
        table,
    )
    if rows:
        return [row["attname"] for row in rows]
    return [column.name for column in await table_columns(connection, table)]


async def _require_table(connection: asyncpg.Connection, table: str) -> None:
    if table == SCHEMA_TABLE:
        raise TableIOError(f"{SCHEMA_TABLE} is managed by `tradingd db migrate` and cannot be changed here")
    tables = await user_tables(connection)
    if table not in tables:
        hint = "; run `tradingd db migrate` first" if not tables else f"; known tables: {', '.join(tables)}"
        raise TableIOError(f"unknown table {table!r}{hint}")


def _postgres_reason(error: asyncpg.PostgresError) -> str:
    """The server's message and detail on one line (asyncpg puts the detail on a second line)."""
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
