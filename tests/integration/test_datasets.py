"""Dataset builds on the simulator and a real PostgreSQL: only missing windows are fetched, and the
same span gives the same hash however the store was filled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from domain.candles import ms_to_datetime
from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import FileCandle, as_candles, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from features.batch import batch_features
from features.definitions import V2
from learning.datasets import DatasetBuildError, build_dataset
from storage.candles import CandleStore
from storage.database import Database, StorageOptions
from storage.datasets import DatasetStore
from storage.migrator import migrate

HOUR = 3_600_000
KLINES = "/openApi/swap/v3/quote/klines"


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
def rows(shared_candles: Path) -> list[FileCandle]:
    return load_candle_file(shared_candles / "BINANCE_BTCUSDT_1h.csv")


@pytest.fixture
def rows_4h(shared_candles: Path) -> list[FileCandle]:
    return load_candle_file(shared_candles / "BINANCE_BTCUSDT_4h.csv")


@pytest.fixture
async def env(
    postgres_url: str, tmp_path: Path, rows: list[FileCandle], rows_4h: list[FileCandle]
) -> AsyncIterator[tuple[Database, BingXSimulator, BingXRest]]:
    database = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=4))
    async with database.pool.acquire() as connection:
        await migrate(connection)
    series = [ReplaySeries("BTC-USDT", "1h", rows), ReplaySeries("BTC-USDT", "4h", rows_4h)]
    simulator = BingXSimulator(series, ReplayClock(rows[-1].open_time_ms + HOUR))
    await simulator.start()
    rest = BingXRest(simulator.rest_url, sleep=no_sleep)
    yield database, simulator, rest
    await rest.close()
    await simulator.stop()
    await database.close()


async def test_half_filled_store_fetches_only_the_missing_windows_and_hashes_the_same(
    env: tuple[Database, BingXSimulator, BingXRest], rows: list[FileCandle]
) -> None:
    database, simulator, rest = env
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    first, last = 3_000, 4_000  # rows [first, last) become the dataset; 1000 warm-up rows before them
    start_ms, end_ms = rows[first].open_time_ms, rows[last].open_time_ms

    # From an empty store: everything is fetched.
    full = await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1h", start_ms, end_ms)
    assert (full.rows, full.reused) == (1_000, False)
    assert full.fetched_candles == 2_000

    # The same build again: nothing fetched, the version reused.
    again = await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1h", start_ms, end_ms)
    assert (again.id, again.content_hash, again.reused, again.fetched_windows) == (full.id, full.content_hash, True, 0)

    # A half-filled store: the head of the warm-up, an interior stretch and the tail are missing.
    async with database.pool.acquire() as connection:
        await connection.execute("DELETE FROM dataset_versions")
        await connection.execute("DELETE FROM candles")
    await store.write(as_candles(rows[2_400:3_200] + rows[3_260:3_900], "BTC-USDT", "1h"), "earlier-backfill")
    simulator.request_log.clear()
    half = await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1h", start_ms, end_ms)
    assert half.content_hash == full.content_hash
    assert half.fetched_candles == 400 + 60 + 100
    asked = simulator.requests_to(KLINES)
    probes = [record for record in asked if "startTime" not in record.params]
    assert [record.params["limit"] for record in probes] == ["1"]  # the newest candle, to bound the span
    fetched = [(int(r.params["startTime"]), int(r.params["endTime"])) for r in asked if "startTime" in r.params]
    missing = [
        (rows[2_000].open_time_ms, rows[2_400].open_time_ms),
        (rows[3_200].open_time_ms, rows[3_260].open_time_ms),
        (rows[3_900].open_time_ms, rows[4_000].open_time_ms),
    ]
    assert len(fetched) == len(missing)
    for (asked_from, asked_to), (gap_from, gap_to) in zip(fetched, missing, strict=True):
        assert gap_from <= asked_from
        assert asked_to < gap_to  # endTime is the last open time asked for

    lineage = await datasets.lineage(half.id)
    assert [entry.kind for entry in lineage] == ["source", "fetch", "gap_healed", "fetch"]
    assert lineage[2].details == {"interval": "1h", "missing": 60, "stored": 60, "requests": 1}


async def test_the_payload_reads_back_and_equals_the_reference_features(
    env: tuple[Database, BingXSimulator, BingXRest], rows: list[FileCandle]
) -> None:
    database, _simulator, rest = env
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    built = await build_dataset(
        rest, store, datasets, V2, "BTC-USDT", "1h", rows[1_500].open_time_ms, rows[2_000].open_time_ms
    )
    version = await datasets.get(built.id)
    assert version is not None
    assert (version.row_count, version.feature_set, version.schema_hash) == (500, "v2", V2.schema_hash)
    assert version.storage_uri == f"db://dataset_payloads/{built.id}"
    assert version.normalization["names"] == list(V2.market_features)
    content = await datasets.load(version)
    assert content.feature_names == V2.market_features
    assert content.candles.open_time_ms[0] == rows[1_500].open_time_ms
    whole = await store.read_columns("BTC-USDT", "1h", rows[500].open_time_ms, rows[2_000].open_time_ms)
    reference = batch_features(V2, whole)[1_000:]
    assert np.allclose(content.features, reference, rtol=1e-9, atol=1e-12)


async def test_spans_that_cannot_be_datasets_are_refused(
    env: tuple[Database, BingXSimulator, BingXRest], rows: list[FileCandle]
) -> None:
    database, _simulator, rest = env
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    with pytest.raises(DatasetBuildError, match="needs 1000 1h candles before --from"):
        await build_dataset(rest, store, datasets, V2, "BTC-USDT", "1h", rows[10].open_time_ms, rows[20].open_time_ms)
    with pytest.raises(DatasetBuildError, match="newest final candle"):
        await build_dataset(
            rest, store, datasets, V2, "BTC-USDT", "1h", rows[-5].open_time_ms, rows[-1].open_time_ms + 5 * HOUR
        )
    async with database.pool.acquire() as connection:  # nothing was recorded for refused builds
        assert await connection.fetchval("SELECT count(*) FROM dataset_versions") == 0
    assert ms_to_datetime(rows[0].open_time_ms).year == 2024


async def test_context_candles_are_fetched_like_the_base_ones_and_join_without_look_ahead(
    env: tuple[Database, BingXSimulator, BingXRest], rows: list[FileCandle]
) -> None:
    """1h candles with 4h context: 1000 4h candles of warm-up come from the store or the venue too."""
    database, simulator, rest = env
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    spec = V2.with_context(["4h"])
    start_ms, end_ms = rows[7_000].open_time_ms, rows[7_300].open_time_ms
    full = await build_dataset(rest, store, datasets, spec, "BTC-USDT", "1h", start_ms, end_ms)
    assert (full.rows, full.reused) == (300, False)
    version = await datasets.get(full.id)
    assert version is not None
    assert (version.feature_set, version.schema_hash) == ("v2+4h", spec.schema_hash)
    lineage = await datasets.lineage(full.id)
    sources = [entry for entry in lineage if entry.kind == "source"]
    assert [(entry.details["interval"], entry.details["rows_read"]) for entry in sources] == [
        ("1h", 1_300),
        ("4h", 1_074),  # 1000 up to the one closed at --from, then 74 closed by the last row's open
    ]
    four_hours = 4 * HOUR
    first_used = start_ms // four_hours * four_hours - four_hours  # closed when the first row opens
    assert sources[1].start_ms == first_used - 999 * four_hours

    # The context columns are the 4h features of the newest 4h candle closed by each row's open.
    content = await datasets.load(version)
    assert content.feature_names == spec.market_features
    context = await store.read_columns("BTC-USDT", "4h", sources[1].start_ms or 0, sources[1].end_ms or 0)
    context_features = batch_features(V2, context)[:, [V2.interval_features.index(n) for n in V2.context_sources]]
    used = np.searchsorted(context.open_time_ms + four_hours, content.candles.open_time_ms, side="right") - 1
    assert (context.open_time_ms[used] + four_hours <= content.candles.open_time_ms).all()
    own = len(V2.interval_features)
    # The batch starts at the window's first candle, the engine after 1000 of warm-up: within 1e-9.
    assert np.allclose(content.features[:, own:], context_features[used], rtol=1e-9, atol=1e-12)

    # The oldest 499 4h candles missing from the store: only they are fetched, and the hash is the same.
    async with database.pool.acquire() as connection:
        await connection.execute("DELETE FROM dataset_versions")
        await connection.execute(
            "DELETE FROM candles WHERE interval = '4h' AND open_time < to_timestamp($1::bigint / 1000.0)",
            first_used - 500 * four_hours,
        )
    simulator.request_log.clear()
    half = await build_dataset(rest, store, datasets, spec, "BTC-USDT", "1h", start_ms, end_ms)
    assert (half.content_hash, half.fetched_windows, half.fetched_candles) == (full.content_hash, 1, 499)
    asked = [r.params for r in simulator.requests_to(KLINES) if "startTime" in r.params]
    assert {params["interval"] for params in asked} == {"4h"}

    # Context the venue has no history for is refused, naming the interval.
    with pytest.raises(DatasetBuildError, match="needs 1000 4h candles before --from"):
        await build_dataset(
            rest, store, datasets, spec, "BTC-USDT", "1h", rows[2_000].open_time_ms, rows[2_100].open_time_ms
        )
    with pytest.raises(DatasetBuildError, match="must be longer than the base interval 4h"):
        await build_dataset(rest, store, datasets, spec, "BTC-USDT", "4h", start_ms, end_ms)
