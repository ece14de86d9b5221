"""Funding rates stored with each dataset, on a real PostgreSQL and the simulator's funding history: a
dataset of imported candles carries the offline preset (BingX's base rate at 00:00, 08:00 and 16:00 UTC)
with no venue call, or a funding file's rates; one built online carries the venue's history, paged; a
malformed file is refused naming its line; a dataset keeps the rates it was first built with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from config import load_settings
from daemon import exit_codes
from daemon.cli import build_parser
from daemon.cli_datasets import funding_file, run_dataset_command
from domain.funding import FUNDING_INTERVAL_MS, FundingSchedule
from exchange.bingx import rest as rest_module
from exchange.bingx.rest import BingXRest
from exchange.sim.candle_file import FileCandle, as_columns, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, SimulatorOptions
from features.definitions import V1
from learning.datasets import build_dataset
from storage.candles import CandleStore
from storage.database import Database
from storage.datasets import DatasetStore
from tests.integration.test_dataset_contracts import closed_port_url, no_sleep

PAIR = "BTC-USDT"
MINUTE = 60_000
FUNDING = "/openApi/swap/v2/quote/fundingRate"


@pytest.fixture
def rows(shared_candles: Path) -> list[FileCandle]:
    return load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[:4_000]


def funding_times(start: int, end: int) -> list[int]:
    """Every multiple of 8 hours in (start, end]: the funding times rows opening in [start, end) hold."""
    return [t for t in range(start - start % FUNDING_INTERVAL_MS, end + 1, FUNDING_INTERVAL_MS) if start < t <= end]


async def test_imported_candles_carry_the_preset_or_a_funding_file_s_rates(
    database: Database, rows: list[FileCandle], tmp_path: Path
) -> None:
    await CandleStore.of(database).import_series([as_columns(rows, PAIR, "1m")], "file:btc", {"test": True})
    store, datasets = CandleStore.of(database), DatasetStore(database.pool)
    start, end = rows[1_000].open_time_ms, rows[3_900].open_time_ms
    async with BingXRest(closed_port_url(), sleep=no_sleep) as nowhere:
        built = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", start, end)
        assert built.venue_requests == 0
        assert built.funding is not None
        expected = funding_times(start, end)
        assert len(expected) >= 5  # 2,900 minutes: about six funding times
        assert (built.funding.source, built.funding.times_ms.tolist()) == ("preset:base_rate", expected)
        assert built.funding.rates.tolist() == [0.0001] * len(expected)
        stored = await datasets.get(built.id)
        assert stored is not None
        assert stored.funding is not None
        assert stored.funding.times_ms.tolist() == expected

        # A funding file's rates, cut to the span; the same span again keeps the rates it was built with.
        path = tmp_path / "funding.csv"
        lines = [f"{t},{rate}" for rate, t in enumerate([start - FUNDING_INTERVAL_MS, *expected])]
        path.write_text("funding_time_ms,rate\n" + "\n".join(lines) + "\n")
        mine = funding_file(path)
        other = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", start, rows[3_800].open_time_ms,
                                    funding=mine)  # fmt: skip
        assert other.funding is not None
        assert other.funding.source == f"file:{path}"
        assert other.funding.times_ms.tolist() == funding_times(start, rows[3_800].open_time_ms)
        assert other.funding.rates.tolist()[0] == 1.0, "the time before the span (rate 0) was left out"
        again = await build_dataset(nowhere, store, datasets, V1, PAIR, "1m", start, end, funding=mine)
        assert (again.id, again.reused) == (built.id, True)
        assert again.funding is not None
        assert again.funding.source == "preset:base_rate"


def test_a_malformed_funding_file_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    for body, message in [
        ("time,rate\n1,0.1\n", "the first line must be the header funding_time_ms,rate"),
        ("funding_time_ms,rate\n1,0.1\nx,0.1\n", "bad.csv:3: expected funding_time_ms,rate"),
        ("funding_time_ms,rate\n1,nan\n", "bad.csv:2: rates must be finite"),
        ("funding_time_ms,rate\n5,0.1\n5,0.2\n", "bad.csv:3: rates must be finite and times ascending"),
        ("funding_time_ms,rate\n5,0.1,3\n", "bad.csv:2: expected"),
    ]:
        path.write_text(body)
        with pytest.raises(ValueError, match=message):
            funding_file(path)
    with pytest.raises(ValueError, match="cannot read"):
        funding_file(tmp_path / "missing.csv")


async def test_the_cli_refuses_a_malformed_funding_file_before_anything_is_built(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("funding_time_ms,rate\n1,zero\n")
    settings = load_settings(environ={"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path)})
    args = build_parser().parse_args(
        ["dataset", "build", "--pair", PAIR, "--interval", "1m", "--from", "0", "--to", "60000", "--funding", str(bad)]
    )
    assert await run_dataset_command(settings, args) == exit_codes.DATA_ERROR
    assert "bad.csv:2: expected funding_time_ms,rate" in capsys.readouterr().err


@pytest.fixture
async def venue(rows: list[FileCandle]) -> AsyncIterator[tuple[BingXSimulator, BingXRest]]:
    simulator = BingXSimulator(
        [ReplaySeries(PAIR, "1m", rows)],
        ReplayClock(rows[-1].open_time_ms + MINUTE // 2),
        options=SimulatorOptions(funding_rate="-0.00025"),
    )
    await simulator.start()
    rest = BingXRest(simulator.rest_url, sleep=no_sleep)
    yield simulator, rest
    await rest.close()
    await simulator.stop()


async def test_online_datasets_carry_the_venue_s_funding_history_paged(
    database: Database, rows: list[FileCandle], venue: tuple[BingXSimulator, BingXRest], monkeypatch: pytest.MonkeyPatch
) -> None:
    simulator, rest = venue
    start, end = rows[1_000].open_time_ms, rows[3_900].open_time_ms
    expected = funding_times(start, end)
    # The venue's pages hold 2 here (1,000 on BingX), so the client pages by startTime.
    monkeypatch.setattr(rest_module, "FUNDING_MAX_LIMIT", 2)
    history = await rest.funding_rates(PAIR, start + 1, end)
    assert [t for t, _ in history] == expected
    assert {str(rate) for _, rate in history} == {"-0.00025"}
    assert len(simulator.requests_to(FUNDING)) == len(expected) // 2 + 1
    monkeypatch.undo()

    simulator.request_log.clear()
    built = await build_dataset(rest, CandleStore.of(database), DatasetStore(database.pool), V1, PAIR, "1m", start, end)
    assert built.funding is not None
    assert (built.funding.source, built.funding.times_ms.tolist()) == ("venue", expected)
    assert np.allclose(built.funding.rates, -0.00025)
    assert len(simulator.requests_to(FUNDING)) == 1
    # The venue's history answers only what has happened: nothing after its clock, nothing before its data.
    assert (
        await rest.funding_rates(
            PAIR, rows[-1].open_time_ms + FUNDING_INTERVAL_MS, rows[-1].open_time_ms + 2 * FUNDING_INTERVAL_MS
        )
        == []
    )
    schedule = FundingSchedule(built.funding.times_ms, built.funding.rates, "venue")
    assert schedule.per_bar(np.array([expected[0] - MINUTE], np.int64), MINUTE).tolist() == [-0.00025]
