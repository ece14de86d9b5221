"""`tradingd candles import` on a real PostgreSQL: every row checked against the candle rules before
anything is written (a bad line is named, exit 65, nothing stored), the same file imported twice
changes nothing, a corrected file updates only its own candles, candles of another source are kept,
the source is registered as test data, and DISABLE_TEST_DATA_IN_DB refuses the import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from config import load_settings
from daemon import exit_codes
from daemon.cli import build_parser
from daemon.cli_candles import run_candle_command
from domain.candles import Candle
from exchange.sim.candle_file import FileCandle, aggregate, load_candle_file, write_candle_file
from storage.candles import CandleStore
from storage.database import Database

PAIR = "BTC-USDT"


@pytest.fixture
def rows(shared_candles: Path) -> list[FileCandle]:
    return load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[:600]


async def run(postgres_url: str, tmp_path: Path, *arguments: str, environment: dict[str, str] | None = None) -> int:
    settings = load_settings(
        None, {"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path / "data")} | (environment or {})
    )
    args = build_parser().parse_args(["candles", "import", "--pair", PAIR, "--interval", "1m", *arguments])
    return await run_candle_command(settings, args)


async def stored(database: Database) -> list[tuple[int, float, str]]:
    async with database.pool.acquire() as connection:
        found = await connection.fetch(
            "SELECT (extract(epoch FROM open_time) * 1000)::bigint AS t, close, source FROM candles "
            "WHERE pair = $1 AND interval = '1m' ORDER BY open_time",
            PAIR,
        )
    return [(row["t"], row["close"], row["source"]) for row in found]


@pytest.mark.parametrize(
    ("line", "edit", "reason"),
    [
        (7, lambda r: FileCandle(r.open_time_ms, r.open, r.low, r.high, r.close, r.volume), "high/low inconsistent"),
        (9, lambda r: FileCandle(r.open_time_ms, r.open, r.high, r.low, r.close, "-1"), "negative volume"),
        (12, lambda r: FileCandle(r.open_time_ms + 1, r.open, r.high, r.low, r.close, r.volume), "not aligned"),
        (15, lambda r: FileCandle(r.open_time_ms, "0", r.high, r.low, r.close, r.volume), "non-positive price"),
        (20, lambda r: FileCandle(r.open_time_ms, r.open, r.high, r.low, "nan", r.volume), "not a number"),
    ],
)
async def test_a_bad_line_is_named_and_nothing_is_written(
    database: Database,
    postgres_url: str,
    tmp_path: Path,
    rows: list[FileCandle],
    capsys: pytest.CaptureFixture[str],
    line: int,
    edit: Callable[[FileCandle], FileCandle],
    reason: str,
) -> None:
    bad = list(rows)
    bad[line - 2] = edit(bad[line - 2])  # line 1 is the header
    path = tmp_path / "bad.csv"
    write_candle_file(path, bad)
    assert await run(postgres_url, tmp_path, str(path)) == exit_codes.DATA_ERROR
    error = capsys.readouterr().err
    assert f"{path}: line {line}: " in error
    assert reason in error
    assert "nothing imported" in error
    assert await stored(database) == []
    async with database.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM data_source_configs") == 0


async def test_a_malformed_file_is_refused_with_its_line(
    database: Database, postgres_url: str, tmp_path: Path, rows: list[FileCandle], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.csv"
    write_candle_file(path, rows[:5])
    path.write_text(path.read_text() + "1746373100000,1,2,x,1,1\n")
    assert await run(postgres_url, tmp_path, str(path)) == exit_codes.DATA_ERROR
    assert f"{path}: line 7: not a number" in capsys.readouterr().err
    assert await run(postgres_url, tmp_path, str(tmp_path / "absent.csv")) == exit_codes.DATA_ERROR
    assert "cannot read" in capsys.readouterr().err
    assert await stored(database) == []


async def test_importing_again_is_idempotent_and_other_sources_are_kept(
    database: Database, postgres_url: str, tmp_path: Path, rows: list[FileCandle], capsys: pytest.CaptureFixture[str]
) -> None:
    # Ten candles the venue gave already: the import must not replace them.
    venue = [Candle(PAIR, "1m", r.open_time_ms, 1.0, 2.0, 0.5, 1.5, 3.0) for r in rows[100:110]]
    await CandleStore.of(database).write(venue, "bingx-rest")
    path = tmp_path / "btc.csv"
    write_candle_file(path, rows)

    assert await run(postgres_url, tmp_path, "--source", "btc", "--derive", "5m", str(path)) == exit_codes.OK
    first = json.loads(capsys.readouterr().out)
    assert first["source"] == "file:btc"
    one, five = first["series"]
    assert (one["interval"], one["rows"], one["inserted"], one["kept"], one["unchanged"]) == ("1m", 600, 590, 10, 0)
    assert (five["interval"], five["rows"]) == ("5m", len(aggregate(rows, "1m", "5m")))
    after_first = await stored(database)
    assert len(after_first) == 600
    assert [source for _, _, source in after_first].count("bingx-rest") == 10
    assert after_first[100][1] == 1.5, "the venue's candle is kept"

    assert await run(postgres_url, tmp_path, "--source", "btc", "--derive", "5m", str(path)) == exit_codes.OK
    again = json.loads(capsys.readouterr().out)["series"][0]
    assert (again["inserted"], again["updated"], again["unchanged"], again["kept"]) == (0, 0, 590, 10)
    assert await stored(database) == after_first

    # A corrected file under the same name updates its own candle, and only that one.
    corrected = list(rows)
    r = corrected[300]
    corrected[300] = FileCandle(r.open_time_ms, r.open, r.high, r.low, r.open, r.volume)
    write_candle_file(path, corrected)
    assert await run(postgres_url, tmp_path, "--source", "btc", str(path)) == exit_codes.OK
    fixed = json.loads(capsys.readouterr().out)["series"][0]
    assert (fixed["inserted"], fixed["updated"], fixed["unchanged"]) == (0, 1, 589)
    assert (await stored(database))[300][1] == float(r.open)

    async with database.pool.acquire() as connection:
        registered = await connection.fetchrow("SELECT kind, is_test, settings FROM data_source_configs")
        five_stored = await connection.fetchval("SELECT count(*) FROM candles WHERE interval = '5m'")
    assert (registered["kind"], registered["is_test"]) == ("market_data", True)
    assert registered["settings"][f"{PAIR} 1m"]["rows"] == 600
    assert registered["settings"][f"{PAIR} 5m"]["derived_from"] == "1m"
    assert five_stored == five["rows"]
    sources = await CandleStore.of(database).sources(PAIR, "1m", rows[0].open_time_ms, rows[-1].open_time_ms + 60_000)
    assert [(s.source, s.candles, s.is_test) for s in sources] == [("file:btc", 590, True), ("bingx-rest", 10, False)]


async def test_test_data_is_refused_where_the_config_forbids_it(
    database: Database, postgres_url: str, tmp_path: Path, rows: list[FileCandle], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "btc.csv"
    write_candle_file(path, rows)
    refused = await run(postgres_url, tmp_path, str(path), environment={"DISABLE_TEST_DATA_IN_DB": "true"})
    assert refused == exit_codes.CONFIG
    assert "DISABLE_TEST_DATA_IN_DB is set and candles imported from a file are test data" in capsys.readouterr().err
    assert await stored(database) == []


async def test_a_symbol_the_venue_cannot_have_is_refused(
    postgres_url: str, tmp_path: Path, rows: list[FileCandle], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "btc.csv"
    write_candle_file(path, rows)
    settings = load_settings(None, {"TIMESCALE_URL": postgres_url, "TRADINGD_DATA_DIR": str(tmp_path / "data")})
    args = build_parser().parse_args(["candles", "import", "--pair", "btc-usdt", "--interval", "1m", str(path)])
    assert await run_candle_command(settings, args) == exit_codes.DATA_ERROR
    assert "'btc-usdt' is not a BingX swap symbol" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["candles", "import", "--pair", PAIR, "--interval", "1m", "--source", "a b", "f"])
