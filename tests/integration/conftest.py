"""Integration fixtures: a migrated database of its own per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.database import Database, StorageOptions
from storage.migrator import migrate


@pytest.fixture
async def database(postgres_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database on a fresh PostgreSQL database of its own."""
    db = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=4))
    async with db.pool.acquire() as connection:
        await migrate(connection)
    yield db
    await db.close()
