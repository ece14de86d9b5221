"""`tradingd dataset build | list | show`."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from daemon import exit_codes
from daemon.cli_db import open_migrated_database
from daemon.cli_market import refuse_bad_pair, refuse_test_data, venue_failure
from domain.candles import datetime_to_ms, ms_to_datetime
from domain.errors import VenueError
from domain.instruments import Contract
from domain.market import INTERVALS, Interval, parse_interval
from features.definitions import FEATURE_SETS, feature_set

if TYPE_CHECKING:
    from config import Settings
    from domain.funding import FundingSchedule
    from features.spec import FeatureSetSpec
    from storage.datasets import DatasetVersion

# The feature pipeline (TA-Lib, pandas), the venue client and the stores are imported where a command
# runs: building the command line's parser must stay cheap (see daemon/cli.py).


def add_dataset_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dataset = commands.add_parser("dataset", help="versioned datasets of candles and features")
    sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="SUBCOMMAND")
    build = sub.add_parser(
        "build", help="build a dataset from stored candles, fetching only what is missing from the venue"
    )
    build.add_argument("--pair", required=True, help="e.g. BTC-USDT")
    build.add_argument("--interval", required=True, choices=INTERVALS)
    build.add_argument("--from", dest="start", required=True, type=moment, help="first candle (ISO date/time or ms)")
    build.add_argument("--to", dest="end", required=True, type=moment, help="end, exclusive (ISO date/time or ms)")
    build.add_argument("--feature-set", default=None, choices=sorted(FEATURE_SETS), help="default: from config")
    build.add_argument(
        "--context",
        type=intervals,
        default=None,
        metavar="INTERVALS",
        help=(
            "other intervals whose features join the set: longer (5m,1h beside 1m) or 1m beside 5m, 15m, 1h "
            "(default: from config; 'none' for none)"
        ),
    )
    build.add_argument(
        "--contract",
        type=Path,
        metavar="FILE",
        help="contract rules to store with the dataset (TOML, see config/contracts/); default: the venue's, or "
        "the offline preset (the simulator's contract) when every candle was imported from a file",
    )
    build.add_argument(
        "--funding",
        type=Path,
        metavar="FILE",
        help="funding rates to store with the dataset (CSV `funding_time_ms,rate`); default: the venue's "
        "funding history, or the offline preset (BingX's base rate, 0.01%% every 8 h) when every candle was "
        "imported from a file",
    )
    listing = sub.add_parser("list", help="list dataset versions, newest first")
    listing.add_argument("--pair")
    show = sub.add_parser("show", help="one dataset version with its lineage")
    show.add_argument("id", type=uuid.UUID)


def intervals(text: str) -> tuple[Interval, ...]:
    if text.strip().lower() == "none":
        return ()
    try:
        return tuple(parse_interval(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def moment(text: str) -> int:
    """Epoch milliseconds, or an ISO date/time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither epoch milliseconds nor an ISO date/time") from None
    return datetime_to_ms(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def funding_file(path: Path) -> FundingSchedule:
    """The funding rates of a CSV file with the header `funding_time_ms,rate` (times ascending); ValueError
    naming the file and the line at fault."""
    import numpy as np

    from domain.funding import FundingSchedule

    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    if not lines or lines[0].strip() != "funding_time_ms,rate":
        raise ValueError(f"{path}: the first line must be the header funding_time_ms,rate")
    times: list[int] = []
    rates: list[float] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split(",")
        try:
            if len(fields) != 2 or not fields[0].strip().isdigit():
                raise ValueError
            time_ms, rate = int(fields[0]), float(Decimal(fields[1].strip()))
        except (ValueError, ArithmeticError):
            raise ValueError(f"{path}:{number}: expected funding_time_ms,rate, got {line!r}") from None
        if not math.isfinite(rate) or (times and time_ms <= times[-1]):
            raise ValueError(f"{path}:{number}: rates must be finite and times ascending, got {line!r}")
        times.append(time_ms)
        rates.append(rate)
    return FundingSchedule(np.array(times, np.int64), np.array(rates), f"file:{path}")


def contract_file(path: Path, pair: str) -> Contract:
    """The contract rules a TOML file states for `pair` (fields: `Contract.from_json`); ValueError
    naming the file and the field at fault."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: {error}") from None
    try:
        return Contract.from_json(pair, document)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


async def run_dataset_command(settings: Settings, args: argparse.Namespace) -> int:
    spec: FeatureSetSpec | None = None
    contract: tuple[Contract, str] | None = None
    funding: FundingSchedule | None = None
    if args.dataset_command == "build":
        if (refused := refuse_bad_pair(args.pair)) is not None:
            return refused
        if (refused := refuse_test_data(settings)) is not None:
            return refused
        context = settings.features.context if args.context is None else args.context
        try:
            spec = feature_set(args.feature_set or settings.features.feature_set, context)
            spec.check_interval(args.interval)
        except ValueError as error:
            print(f"tradingd: {error}", file=sys.stderr)
            return exit_codes.USAGE
        if args.contract is not None:
            try:
                contract = (contract_file(args.contract, args.pair), f"file:{args.contract}")
            except ValueError as error:
                print(f"tradingd: {error}", file=sys.stderr)
                return exit_codes.DATA_ERROR
        if args.funding is not None:
            try:
                funding = funding_file(args.funding)
            except ValueError as error:
                print(f"tradingd: {error}", file=sys.stderr)
                return exit_codes.DATA_ERROR
    from storage.datasets import DatasetStore

    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    datasets = DatasetStore(database.pool)
    try:
        if args.dataset_command == "list":
            for version in await datasets.versions(args.pair):
                print(json.dumps(_summary(version)))
            return exit_codes.OK
        if args.dataset_command == "show":
            found = await datasets.get(args.id)
            if found is None:
                print(f"tradingd: no dataset {args.id}", file=sys.stderr)
                return exit_codes.DATA_ERROR
            lineage = [
                {
                    "kind": entry.kind,
                    "source": entry.source,
                    "start": _iso(entry.start_ms),
                    "end": _iso(entry.end_ms),
                    "details": entry.details,
                }
                for entry in await datasets.lineage(found.id)
            ]
            rules = None if found.contract is None else found.contract.to_json()
            funded = None if found.funding is None else found.funding.to_json()
            print(json.dumps(_summary(found) | {"contract": rules, "funding": funded, "lineage": lineage}, indent=2))
            return exit_codes.OK
        assert spec is not None
        from exchange.bingx.rest import BingXRest
        from learning.datasets import DatasetBuildError, RefusedTestDataError, build_dataset
        from observability.progress import progress
        from storage.candles import CandleStore

        try:
            async with BingXRest(settings.exchange.rest_url, recv_window_ms=settings.exchange.recv_window_ms) as rest:
                built = await build_dataset(
                    rest,
                    CandleStore.of(database),
                    datasets,
                    spec,
                    args.pair,
                    args.interval,
                    args.start,
                    args.end,
                    contract=contract,
                    funding=funding,
                    allow_test_sources=not settings.storage.disable_test_data_in_db,
                    progress=progress,
                )
        except DatasetBuildError as error:
            print(f"tradingd: {error}", file=sys.stderr)
            return exit_codes.DATA_ERROR
        except RefusedTestDataError as error:
            print(f"tradingd: DISABLE_TEST_DATA_IN_DB is set and {error}: refusing to build", file=sys.stderr)
            return exit_codes.CONFIG
        except VenueError as error:
            return venue_failure(error, "dataset build", "run it again (fetched candles are kept)")
        print(
            json.dumps(
                {
                    "id": str(built.id),
                    "content_hash": built.content_hash,
                    "rows": built.rows,
                    "reused": built.reused,
                    "fetched_windows": built.fetched_windows,
                    "fetched_candles": built.fetched_candles,
                    "contract_source": built.contract_source,
                    "funding_source": None if built.funding is None else built.funding.source,
                    "funding_times": None if built.funding is None else len(built.funding),
                    "venue_requests": built.venue_requests,
                }
            )
        )
        return exit_codes.OK
    finally:
        await database.close()


def _iso(ms: int | None) -> str | None:
    return None if ms is None else ms_to_datetime(ms).isoformat().replace("+00:00", "Z")


def _summary(version: DatasetVersion) -> dict[str, object]:
    return {
        "id": str(version.id),
        "pair": version.pair,
        "interval": version.interval,
        "first_candle": _iso(version.start_ms),
        "last_candle": _iso(version.end_ms),
        "rows": version.row_count,
        "feature_set": version.feature_set,
        "schema_hash": version.schema_hash,
        "content_hash": version.content_hash,
        "storage_uri": version.storage_uri,
        "contract_source": version.contract_source,
        "created_at": version.created_at.isoformat(),
    }
