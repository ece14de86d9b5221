"""`tradingd candles import`: a candle file straight into the candle store, as a named test source.

The parser is built from the standard library and `domain.market` alone; the store, numpy and the file
reader are imported when the command runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import exit_codes
from domain.market import INTERVALS, Interval, is_valid_pair, parse_interval

if TYPE_CHECKING:
    from config import Settings
    from domain.candle_columns import CandleColumns

SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LATEST_OPEN_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def add_candle_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    candles = commands.add_parser("candles", help="the candle store: import candle files")
    sub = candles.add_subparsers(dest="candles_command", required=True, metavar="SUBCOMMAND")
    importer = sub.add_parser(
        "import",
        help="import a candle file (CSV: open_time_ms,open,high,low,close,volume) into the store as the test "
        "source file:NAME; every row checked, all or nothing, idempotent",
    )
    importer.add_argument("--pair", required=True, help="the pair the file's candles are stored as, e.g. BTC-USDT")
    importer.add_argument("--interval", required=True, choices=INTERVALS, help="the file's interval")
    importer.add_argument(
        "--source",
        type=_source_name,
        metavar="NAME",
        help="the candles' source becomes file:NAME (default: the file name without .csv)",
    )
    importer.add_argument(
        "--derive",
        type=_intervals,
        default=(),
        metavar="INTERVALS",
        help="also store these longer intervals, aggregated from the file (as `tradingd sim --derive`), e.g. 5m,1h",
    )
    importer.add_argument("file", type=Path, metavar="FILE")


def _source_name(text: str) -> str:
    name = text.removeprefix("file:")
    if not SOURCE_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a source name: letters, digits, '.', '_' and '-', at most 64, starting with a "
            "letter or digit"
        )
    return name


def _intervals(text: str) -> tuple[Interval, ...]:
    try:
        return tuple(parse_interval(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def default_source_name(path: Path) -> str:
    """The file name without its suffix, other characters than a source name allows replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip("._-")[:64]
    return name or "candles"


async def run_candle_command(settings: Settings, args: argparse.Namespace) -> int:
    if not is_valid_pair(args.pair):
        print(f"tradingd: {args.pair!r} is not a BingX swap symbol such as BTC-USDT (upper case)", file=sys.stderr)
        return exit_codes.DATA_ERROR
    if settings.storage.disable_test_data_in_db:
        print(
            "tradingd: DISABLE_TEST_DATA_IN_DB is set and candles imported from a file are test data: "
            "refusing to import them",
            file=sys.stderr,
        )
        return exit_codes.CONFIG
    for longer in args.derive:
        if longer == "1M" or args.interval == "1M" or not _derivable(args.interval, longer):
            print(f"tradingd: {longer} candles cannot be made from {args.interval} ones", file=sys.stderr)
            return exit_codes.USAGE
    return await _import(settings, args)


def _derivable(interval: Interval, longer: Interval) -> bool:
    from domain.candles import interval_ms

    step, size = interval_ms(longer), interval_ms(interval)
    return step > size and step % size == 0


@dataclass(frozen=True)
class _Series:
    interval: Interval
    columns: CandleColumns | None
    """None: no complete candle of this (derived) interval can be made from the file."""


@dataclass(frozen=True)
class _Checked:
    series: list[_Series]
    sha256: str
    resolved: str


def _read_and_check(path: Path, pair: str, interval: Interval, derive: tuple[Interval, ...]) -> _Checked | str:
    """The file's candles, every row checked (and the derived intervals), or why it cannot be imported."""
    import hashlib

    from exchange.sim.candle_file import CandleFileError, aggregate, as_columns, load_candle_file

    try:
        rows = load_candle_file(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    except CandleFileError as error:
        return str(error)
    outside = next((number for number, row in enumerate(rows, 2) if not 0 <= row.open_time_ms <= LATEST_OPEN_MS), None)
    if outside is not None:
        return f"{path}: line {outside}: the open time is not from 1970 to 9999"
    base = as_columns(rows, pair, interval)
    if (fault := _first_fault(path, base)) is not None:
        return fault
    series = [_Series(interval, base)]
    for longer in derive:
        made = aggregate(rows, interval, longer)
        series.append(_Series(longer, as_columns(made, pair, longer) if made else None))
    return _Checked(series, digest, str(path.resolve()))


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from daemon.cli_db import open_migrated_database
    from domain.candles import ms_to_datetime
    from storage.candles import FILE_SOURCE_PREFIX, CandleStore

    pair: str = args.pair
    checked = _read_and_check(args.file, pair, args.interval, args.derive)
    if isinstance(checked, str):
        print(f"tradingd: {checked}; nothing imported", file=sys.stderr)
        return exit_codes.DATA_ERROR
    source = FILE_SOURCE_PREFIX + (args.source or default_source_name(args.file))
    stored = [found for found in checked.series if found.columns is not None]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def iso(ms: int) -> str:
        return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")

    details = {
        f"{pair} {found.interval}": {
            "file": checked.resolved,
            "sha256": checked.sha256,
            "derived_from": None if found.interval == args.interval else args.interval,
            "rows": len(found.columns),
            "first_candle": iso(int(found.columns.open_time_ms[0])),
            "last_candle": iso(int(found.columns.open_time_ms[-1])),
            "imported_at": now,
        }
        for found in stored
        if found.columns is not None
    }
    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        results = await CandleStore.of(database).import_series(
            [found.columns for found in stored if found.columns is not None], source, details
        )
    finally:
        await database.close()
    written = []
    for found, result in zip(stored, results, strict=True):
        written.append(
            details[f"{pair} {found.interval}"]
            | {
                "interval": found.interval,
                "inserted": result.inserted,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "kept": result.kept,
            }
        )
        if result.kept:
            print(
                f"tradingd: {result.kept} {pair} {found.interval} candles were already stored from another source "
                "and were kept as they are",
                file=sys.stderr,
            )
    for found in checked.series:
        if found.columns is None:
            print(f"tradingd: no complete {found.interval} candle can be made from the file", file=sys.stderr)
    print(json.dumps({"source": source, "pair": pair, "series": written}))
    return exit_codes.OK


def _first_fault(path: Path, columns: CandleColumns) -> str | None:
    """The first row the candle rules refuse (`CandleColumns.problems`: prices, volume, high/low, the
    interval grid), by its line in the file (line 1 is the header), with how many more there are."""
    problems = columns.problems()
    if not problems:
        return None
    row, reason = problems[0]
    more = f" ({len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
    return f"{path}: line {row + 2}: {reason}{more}"
