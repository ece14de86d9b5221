"""An actor's inbox writes its conflations to `observability_metrics` through the worker's database (as
`WorkerEnv.open_database` arranges), once each, and again when the inbox stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from actors.inbox import FormingCandle, Inbox, record_metrics_to
from actors.shell import WorkerEnv
from domain.candles import Candle
from storage.database import Database
from storage.ops import OpsStore


def forming(close: float) -> FormingCandle:
    return FormingCandle(Candle("BTC-USDT", "1m", 0, close, close, close, close, 1.0))


async def test_conflations_land_in_observability_metrics(database: Database) -> None:
    env = WorkerEnv(database.dsn, None, "info", ())
    worker_db = await env.open_database()  # registers the worker's recorder, as in every actor
    gate = asyncio.Event()
    seen: list[Any] = []

    async def handle(message: Any) -> None:
        await gate.wait()
        seen.append(message)

    def failed(error: BaseException) -> None:
        raise AssertionError(error)

    inbox: Inbox[Any] = Inbox("features", handle, failed)
    try:
        inbox.start()
        inbox.put("held")
        for _ in range(100):
            if inbox.busy_since is not None:
                break
            await asyncio.sleep(0)
        for close in (1.0, 2.0, 3.0):
            inbox.put(forming(close))
        await inbox.record_metrics()
        inbox.put(forming(4.0))
        gate.set()
        assert await inbox.drain(10.0)
        await inbox.stop()  # writes what was conflated since the last time
    finally:
        record_metrics_to(None)
        await worker_db.close()
    assert seen == ["held", forming(4.0)]
    rows = await database.pool.fetch(
        "SELECT metric, value, labels FROM observability_metrics WHERE metric LIKE 'inbox_%' ORDER BY id"
    )
    assert [(row["metric"], row["value"]) for row in rows] == [("inbox_conflated", 2.0), ("inbox_conflated", 1.0)]
    assert all(row["labels"]["inbox"] == "features" and row["labels"]["kind"] == "forming" for row in rows)


async def test_a_workers_metric_rows_are_kept_through_an_outage_and_written_at_a_health_check(
    database: Database,
) -> None:
    """The feed's lag and the inbox counters go through `actors.shell.record_metric`: with the database
    away they are kept (with the time they were measured, never raising into the actor), and the next
    health check (`ping`) writes them."""
    from actors import shell

    env = WorkerEnv(database.dsn, None, "info", ())
    worker_db = await env.open_database()
    actor = shell.ActorShell.__new__(shell.ActorShell)
    actor._alerts, actor._flushing, actor.inbox = None, None, None
    try:
        await worker_db.close()  # what the worker holds while PostgreSQL is down
        before = datetime.now(UTC)
        await shell.record_metric("ingestion_lag_sec", 1.5, pair="BTC-USDT")
        await shell.record_metric("ingestion_lag_sec", 2.5, pair="BTC-USDT")
        kept = shell._worker_metrics
        assert kept is not None
        assert len(kept.pending) == 2
        kept.write = OpsStore(database.pool).write_metric  # the database is back
        actor.ping()
        assert actor._flushing is not None
        assert await actor._flushing is True
    finally:
        record_metrics_to(None)
        shell._worker_metrics = None
    rows = await database.pool.fetch(
        "SELECT value, recorded_at FROM observability_metrics WHERE metric = 'ingestion_lag_sec' ORDER BY id"
    )
    assert [row["value"] for row in rows] == [1.5, 2.5]
    assert all(before <= row["recorded_at"] < datetime.now(UTC) for row in rows)
