"""Contract rules stored with each dataset, on a real PostgreSQL: a dataset of imported candles is built
with no venue call at all and carries the preset (or a contract file's rules); one built online carries
the venue's; `train` and `evaluate` read them from the dataset and ask the venue only for a dataset
built before contracts were stored, which a rebuild of the same span then fills in."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from config import Settings, load_settings
from daemon import exit_codes
from daemon.cli import build_parser
from daemon.cli_agents import dataset_contract
from daemon.cli_datasets import run_dataset_command
from domain.candles import ms_to_datetime
from domain.instruments import Contract
from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import FileCandle, as_columns, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, ContractSpec
from features.definitions import V1
from learning.datasets import (
    PRESET_SOURCE,
    DatasetBuildError,
    RefusedTestDataError,
    build_dataset,
    preset_contract,
)
from storage.candles import CandleStore
from storage.database import Database
from storage.datasets import DatasetStore

PAIR = "BTC-USDT"
MINUTE = 60_000
KLINES = "/openApi/swap/v3/quote/klines"
CONTRACTS = "/openApi/swap/v2/quote/contracts"
EXAMPLE_CONTRACT = Path(__file__).resolve().parents[2] / "config" / "contracts" / "example.toml"
VENUE_SPEC = ContractSpec(price_precision=2, quantity_precision=3, min_notional="5", taker_fee_rate="0.0004")


async def no_sleep(_seconds: float) -> None:
    return None


def closed_port_url() -> str:
    """A loopback URL nothing listens on: any request to it fails."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def rows(shared_candles: Path) -> list[FileCandle]:
    return load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[:2_000]


@pytest.fixture
async def nowhere() -> AsyncIterator[BingXRest]:
    rest = BingXRest(closed_port_url(), sleep=no_sleep)
    yield rest
    await rest.close()


async def imported(database: Database, rows: list[FileCandle]) -> None:
    await CandleStore.of(database).import_series([as_columns(rows, PAIR, "1m")], "file:btc", {"test": True})


def iso(ms: int) -> str:
    return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")


async def test_imported_candles_build_a_dataset_offline_that_carries_its_contract(
    database: Database, rows: list[FileCandle], nowhere: BingXRest, postgres_url: str, tmp_path: Path
) -> None:
    await imported(database, rows)
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    start, end = rows[100].open_time_ms, rows[1_100].open_time_ms

    built = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", start, end)
    assert (built.rows, built.reused, built.venue_requests, built.fetched_windows) == (1_000, False, 0, 0)
    assert (built.contract, built.contract_source) == (preset_contract(PAIR), PRESET_SOURCE)
    stored = await datasets.get(built.id)
    assert stored is not None
    assert (stored.contract, stored.contract_source) == (preset_contract(PAIR), PRESET_SOURCE)
    lineage = await datasets.lineage(built.id)
    assert [entry.kind for entry in lineage] == ["source"]
    assert lineage[0].details["sources"] == {"file:btc": 1_000 + V1.warmup_bars}

    # An explicit contract (a contract file's rules) on another span is stored as given.
    mine = Contract(PAIR, 2, 3, Decimal("0.001"), Decimal("5"), Decimal("0.0001"), Decimal("0.0004"), 20, 10, 1, True)
    other = await build_dataset(
        nowhere, store, datasets, V1, PAIR, "1m", start, rows[1_200].open_time_ms, contract=(mine, "file:mine.toml")
    )
    assert other.venue_requests == 0
    found = await datasets.get(other.id)
    assert found is not None
    assert (found.contract, found.contract_source) == (mine, "file:mine.toml")

    # The same span again with other rules: the dataset keeps those it was built with.
    again = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", start, end, contract=(mine, "file:mine.toml"))
    assert (again.id, again.reused, again.contract_source) == (built.id, True, PRESET_SOURCE)
    assert again.contract == preset_contract(PAIR)

    # train and evaluate read the dataset's rules: the venue (nothing listens there) is never asked.
    offline = load_settings(
        None, {"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path), "BINGX_REST_URL": closed_port_url()}
    )
    assert await dataset_contract(offline, stored, "train") == preset_contract(PAIR)


async def test_a_span_the_imported_candles_do_not_cover_is_refused_with_the_span_they_allow(
    database: Database, rows: list[FileCandle], nowhere: BingXRest
) -> None:
    await imported(database, rows)
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    earliest_from, latest_to = rows[V1.warmup_bars].open_time_ms, rows[-1].open_time_ms + MINUTE
    allowed = f"choose --from at or after {iso(earliest_from)} and --to at or before {iso(latest_to)}"

    with pytest.raises(DatasetBuildError) as early:
        await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", rows[10].open_time_ms, rows[500].open_time_ms)
    assert "never completed from the venue" in str(early.value)
    assert allowed in str(early.value)
    with pytest.raises(DatasetBuildError) as late:
        await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", rows[1_500].open_time_ms, latest_to + MINUTE)
    assert "1 of them are not stored" in str(late.value)
    assert allowed in str(late.value)
    # The widest span allowed is built.
    widest = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", earliest_from, latest_to)
    assert widest.rows == len(rows) - V1.warmup_bars

    async with database.pool.acquire() as connection:
        await connection.execute(
            "DELETE FROM candles WHERE open_time >= $1 AND open_time < $2",
            ms_to_datetime(rows[800].open_time_ms),
            ms_to_datetime(rows[805].open_time_ms),
        )
    with pytest.raises(DatasetBuildError) as holed:
        await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", rows[700].open_time_ms, rows[900].open_time_ms)
    assert f"holes at {iso(rows[800].open_time_ms)}..{iso(rows[805].open_time_ms)}" in str(holed.value)

    with pytest.raises(DatasetBuildError, match="No BTC-USDT 5m candles are stored"):
        await build_dataset(
            nowhere, store, datasets, V1.with_context(("5m",)), PAIR, "1m", rows[1_000].open_time_ms, latest_to
        )


async def test_test_sources_are_refused_when_test_data_is_disabled(
    database: Database, rows: list[FileCandle], nowhere: BingXRest
) -> None:
    await imported(database, rows)
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    with pytest.raises(RefusedTestDataError, match="file:btc"):
        await build_dataset(
            nowhere,
            store,
            datasets,
            V1,
            PAIR,
            "1m",
            rows[100].open_time_ms,
            rows[200].open_time_ms,
            allow_test_sources=False,
        )


@pytest.fixture
async def venue(rows: list[FileCandle]) -> AsyncIterator[tuple[BingXSimulator, BingXRest]]:
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)],
        ReplayClock(rows[-1].open_time_ms + MINUTE // 2),
        contracts={PAIR: VENUE_SPEC},
    )
    await simulator.start()
    rest = BingXRest(simulator.rest_url, sleep=no_sleep)
    yield simulator, rest
    await rest.close()
    await simulator.stop()


async def test_online_datasets_carry_the_venues_contract_and_older_ones_fall_back_to_the_venue(
    database: Database,
    rows: list[FileCandle],
    venue: tuple[BingXSimulator, BingXRest],
    postgres_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    simulator, rest = venue
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    listed = (await rest.contracts(PAIR))[0]
    assert listed.price_precision == 2
    start, end = rows[100].open_time_ms, rows[1_100].open_time_ms

    built = await build_dataset(rest, store, datasets, V1, PAIR, "1m", start, end)
    assert (built.contract, built.contract_source) == (listed, "venue")
    assert built.fetched_windows == 1

    # The store now holds the span: a second build asks the venue for its contract and its funding history,
    # not for candles.
    simulator.request_log.clear()
    inside = await build_dataset(rest, store, datasets, V1, PAIR, "1m", rows[200].open_time_ms, end)
    assert (inside.venue_requests, inside.fetched_windows, inside.contract_source) == (2, 0, "venue")
    assert simulator.requests_to(KLINES) == []
    assert len(simulator.requests_to(CONTRACTS)) == 1

    # A dataset from before migration 0006 carries no rules: train and evaluate ask the venue.
    async with database.pool.acquire() as connection:
        await connection.execute("UPDATE dataset_versions SET contract = NULL, contract_source = NULL")
    legacy = await datasets.get(built.id)
    assert legacy is not None
    assert legacy.contract is None
    online: Settings = load_settings(
        None, {"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path), "BINGX_REST_URL": simulator.rest_url}
    )
    simulator.request_log.clear()
    assert await dataset_contract(online, legacy, "evaluate") == listed
    assert len(simulator.requests_to(CONTRACTS)) == 1
    assert "carries no contract rules" in capsys.readouterr().err

    # Building the same span again fills the rules in.
    rebuilt = await build_dataset(rest, store, datasets, V1, PAIR, "1m", start, end)
    assert (rebuilt.id, rebuilt.reused) == (built.id, True)
    filled = await datasets.get(built.id)
    assert filled is not None
    assert (filled.contract, filled.contract_source) == (listed, "venue")


async def test_dataset_build_takes_a_contract_file_and_refuses_a_bad_one(
    database: Database, rows: list[FileCandle], postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await imported(database, rows)
    settings = load_settings(
        None, {"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path), "BINGX_REST_URL": closed_port_url()}
    )
    contract = tmp_path / "contract.toml"
    contract.write_text(EXAMPLE_CONTRACT.read_text().replace('taker_fee_rate = "0.0005"', 'taker_fee_rate = "0.0007"'))
    build = ["dataset", "build", "--pair", PAIR, "--interval", "1m", "--feature-set", "v1"]
    build += ["--from", str(rows[100].open_time_ms), "--to", str(rows[300].open_time_ms), "--contract", str(contract)]

    assert await run_dataset_command(settings, build_parser().parse_args(build)) == exit_codes.OK
    printed = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith('{"id"')))
    assert (printed["contract_source"], printed["venue_requests"]) == (f"file:{contract}", 0)
    stored = await DatasetStore(database.pool).get(uuid.UUID(printed["id"]))
    assert stored is not None
    assert stored.contract is not None
    assert stored.contract.taker_fee_rate == Decimal("0.0007")

    contract.write_text(EXAMPLE_CONTRACT.read_text().replace("max_short_leverage = 125", "max_short_leverage = 0"))
    assert await run_dataset_command(settings, build_parser().parse_args(build)) == exit_codes.DATA_ERROR
    assert f"{contract}: contract field 'max_short_leverage' must be a whole number" in capsys.readouterr().err
