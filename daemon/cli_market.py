"""`tradingd backfill` and `tradingd sim`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daemon import exit_codes
from daemon.cli_db import open_migrated_database
from domain.errors import FatalVenueError, RejectedError, UnknownSymbolError, VenueError
from domain.market import INTERVALS, is_valid_pair, parse_interval

if TYPE_CHECKING:
    from config import Settings
    from daemon.signals import Startup, StopRequest
    from exchange.sim.replay import ReplaySeries

# The feed, the venue client, the simulator and the stores are imported where a command runs: building
# the command line's parser must stay cheap (see daemon/cli.py).


def _log() -> Any:
    from observability import get_logger

    return get_logger("tradingd.cli")


def add_market_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fill = commands.add_parser("backfill", help="fetch past candles back to the earliest the venue has")
    fill.add_argument("--pair", required=True, help="e.g. BTC-USDT")
    fill.add_argument("--interval", required=True, choices=INTERVALS)
    fill.add_argument("--max-batches", type=int, metavar="N", help="stop after N batches (resume by running again)")

    commands.add_parser(
        "ingest",
        help="collect live candles for the configured pairs and intervals (with scheduled backfill, gap "
        "monitor and retries) until stopped",
    )

    queue = commands.add_parser("retry-queue", help="list failed jobs waiting for a retry, and dead ones")
    queue.add_argument("--json", action="store_true", help="machine-readable output")

    sim = commands.add_parser("sim", help="run the BingX-compatible simulator on loopback, replaying candle files")
    sim.add_argument(
        "--candles",
        required=True,
        action="append",
        metavar="PAIR:INTERVAL:FILE",
        help="a series to replay, e.g. BTC-USDT:1m:BTC.csv (repeatable)",
    )
    sim.add_argument(
        "--derive",
        default="",
        metavar="INTERVALS",
        help="also serve these longer intervals, aggregated from each --candles series, e.g. 5m,1h",
    )
    sim.add_argument("--port", type=int, default=0)
    sim.add_argument("--speed", default="1", help="times real time (e.g. 1, 60), or 'fast' (as fast as clients read)")
    sim.add_argument("--start", type=int, metavar="MS", help="simulated start time (default: the first candle)")
    sim.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY:SECRET",
        help="an API key the simulator accepts on signed calls (repeatable); BINGX_API_KEY with BINGX_SECRET_KEY in"
        " the environment is one too. Without any, every signed call answers 100413",
    )
    sim.add_argument(
        "--faults",
        action="store_true",
        help="also serve POST /sim/faults (not a BingX path): 429/5xx bursts, stalls, drops and raw frames for tests",
    )


def sim_api_keys(specs: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """KEY:SECRET pairs (the secret may hold colons), and BINGX_API_KEY with BINGX_SECRET_KEY."""
    keys: dict[str, str] = {}
    for spec in specs:
        key, colon, secret = spec.partition(":")
        if not colon or not key.strip() or not secret:
            raise ValueError("takes KEY:SECRET, both non-empty")
        keys[key.strip()] = secret
    env_key, env_secret = environ.get("BINGX_API_KEY", ""), environ.get("BINGX_SECRET_KEY", "")
    if bool(env_key) != bool(env_secret):
        raise ValueError("BINGX_API_KEY and BINGX_SECRET_KEY go together: one is set without the other")
    if env_key:
        keys[env_key] = env_secret
    return keys


def venue_failure(error: VenueError, command: str, retry_hint: str) -> int:
    """Report a venue error that ended a command: a fatal one is a configuration problem (keys,
    permissions, 78); a refusal of the request itself (an unknown symbol, a bad parameter) is permanent,
    invalid input (65), and running it again cannot help; any other is the venue being unavailable for
    now (69), with `retry_hint`."""
    if isinstance(error, FatalVenueError):
        print(f"tradingd: the venue refused us: {error}", file=sys.stderr)
        return exit_codes.CONFIG
    if isinstance(error, UnknownSymbolError):
        print(f"tradingd: {command}: {error} (the venue lists no such contract)", file=sys.stderr)
        return exit_codes.DATA_ERROR
    if isinstance(error, RejectedError):
        print(f"tradingd: {command}: the venue refused the request: {error}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    print(f"tradingd: {command} stopped: {error}" + (f"; {retry_hint}" if retry_hint else ""), file=sys.stderr)
    return exit_codes.UNAVAILABLE


def refuse_bad_pair(pair: str) -> int | None:
    """A pair that cannot be a BingX symbol is invalid input (65), refused before anything is opened."""
    if is_valid_pair(pair):
        return None
    hint = f"; did you mean {pair.upper()}?" if is_valid_pair(pair.upper()) else ""
    print(
        f"tradingd: {pair!r} is not a BingX symbol: BASE-QUOTE in upper case, e.g. BTC-USDT{hint}",
        file=sys.stderr,
    )
    return exit_codes.DATA_ERROR


def refuse_test_data(settings: Settings) -> int | None:
    """With DISABLE_TEST_DATA_IN_DB, market data from a test source must not be written."""
    from config.guard import test_data_source

    reason = test_data_source(settings)
    if settings.storage.disable_test_data_in_db and reason is not None:
        print(f"tradingd: DISABLE_TEST_DATA_IN_DB is set and {reason}: refusing to write test data", file=sys.stderr)
        return exit_codes.CONFIG
    return None


def refuse_replay_source(settings: Settings, command: str) -> int | None:
    """`market_data.source = "replay"` is served by `tradingd run` alone (its in-process simulator): a
    command that reads the venue would otherwise reach for BingX with a replay config, silently."""
    if settings.market_data.source != "replay":
        return None
    print(
        f'tradingd: market_data.source = "replay" replays candle files inside `tradingd run` only; `tradingd '
        f'{command}` reads a venue: use market_data.source = "bingx", or "simulator" with `tradingd sim`',
        file=sys.stderr,
    )
    return exit_codes.CONFIG


async def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    if args.max_batches is not None and args.max_batches < 1:
        print("tradingd: --max-batches must be at least 1", file=sys.stderr)
        return exit_codes.USAGE
    if (refused := refuse_bad_pair(args.pair)) is not None:
        return refused
    if (refused := refuse_replay_source(settings, "backfill")) is not None:
        return refused
    if (refused := refuse_test_data(settings)) is not None:
        return refused
    from exchange.bingx.rest import BingXRest
    from market_data.backfill import backfill
    from observability.progress import progress
    from storage.candles import CandleStore

    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        async with BingXRest(settings.exchange.rest_url, recv_window_ms=settings.exchange.recv_window_ms) as rest:
            store = CandleStore.of(database)
            result = await backfill(
                rest, store, args.pair, args.interval, max_batches=args.max_batches, progress=progress
            )
    except VenueError as error:
        return venue_failure(error, "backfill", "run it again to resume")
    finally:
        await database.close()
    print(
        json.dumps(
            {
                "pair": args.pair,
                "interval": args.interval,
                "batches": result.batches,
                "written": result.written,
                "rejected": result.rejected,
                "reached_earliest": result.reached_earliest,
                "earliest_ms": result.earliest_ms,
            }
        )
    )
    return exit_codes.OK


async def run_ingest(settings: Settings, stop: StopRequest | None = None) -> int:
    """Ingest until stopped. Signals first (`daemon.signals`): a SIGTERM or SIGINT at any moment, even
    while the database starts, ends the command cleanly, exit 0."""
    from daemon.signals import Startup, StartupStopped, StopRequest

    stop = stop if stop is not None else StopRequest()
    stop.bind(on_signal=lambda signum: _log().info("signal_received", signal=signal.Signals(signum).name))
    try:
        return await _ingest(settings, Startup(stop))
    except StartupStopped as stopped:
        _log().info("ingest_stopped", during_startup=stopped.stage, signal=stop.signal_name)
        return exit_codes.OK
    finally:
        stop.unbind()


async def _ingest(settings: Settings, startup: Startup) -> int:
    if (refused := refuse_replay_source(settings, "ingest")) is not None:
        return refused
    if (refused := refuse_test_data(settings)) is not None:
        return refused
    import asyncio

    from exchange.bingx.rest import BingXRest
    from market_data.live import FeedTopic
    from market_data.runner import FeedRunner, FeedSchedule
    from storage.candles import CandleStore
    from storage.retry_queue import RetryQueue
    from storage.source_status import SourceStatusStore

    database = await startup.finish("opening the database", open_migrated_database(settings))
    if database is None:
        return exit_codes.UNAVAILABLE
    market = settings.market_data
    topics = [FeedTopic(pair, interval) for pair in market.pairs for interval in market.intervals]
    schedule = FeedSchedule(
        backfill_enabled=market.backfill_enabled,
        backfill_max_batches=market.backfill_max_batches,
        gap_monitor_every_sec=market.gap_monitor_interval_min * 60 if market.gap_monitor_interval_min else None,
    )
    try:
        startup.begin("connecting to the venue")
        async with BingXRest(settings.exchange.rest_url, recv_window_ms=settings.exchange.recv_window_ms) as rest:
            runner = FeedRunner(
                rest,
                settings.exchange.ws_url,
                CandleStore.of(database),
                SourceStatusStore(database.pool),
                RetryQueue(database.pool),
                topics,
                schedule,
            )
            startup.begin("ingesting")
            _log().info(
                "ingest_started",
                topics=[topic.name for topic in topics],
                backfill=schedule.backfill_enabled,
                gap_monitor_every_sec=schedule.gap_monitor_every_sec,
            )
            running = asyncio.ensure_future(runner.run())
            stopping = asyncio.ensure_future(startup.stop.event.wait())
            try:
                await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not running.done():
                await runner.stop()
            await running
            _log().info("ingest_stopped")
    except FatalVenueError as error:
        return venue_failure(error, "ingest", "")
    finally:
        await database.close()
    return exit_codes.OK


async def run_retry_queue(settings: Settings, args: argparse.Namespace) -> int:
    from storage.retry_queue import RetryQueue

    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        jobs = await RetryQueue(database.pool).jobs()
    finally:
        await database.close()
    rows = [job.summary() for job in jobs]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("the retry queue is empty")
    else:
        for row in rows:
            print(
                f"{row['id']:>6}  {row['status']:<8} {row['kind']:<10} {row['key']:<40} "
                f"attempt {row['attempts']}/{row['max_attempts']}  next {row['next_attempt_at']}  {row['last_error']}"
            )
    return exit_codes.OK


async def run_simulator(args: argparse.Namespace) -> int:
    import asyncio

    from exchange.sim.candle_file import CandleFileError
    from exchange.sim.replay import ReplayClock
    from exchange.sim.series import series_from_spec
    from exchange.sim.server import BingXSimulator

    series: list[ReplaySeries] = []
    try:
        derive = [parse_interval(part.strip()) for part in args.derive.split(",") if part.strip()]
    except ValueError as error:
        print(f"tradingd: --derive: {error}", file=sys.stderr)
        return exit_codes.USAGE
    for spec in args.candles:
        try:
            series.extend(series_from_spec(spec, derive))
        except (CandleFileError, OSError) as error:
            # The file is invalid input (65); the message names the file and the line at fault.
            reason = str(error) if isinstance(error, CandleFileError) else f"{error.filename}: {error.strerror}"
            print(f"tradingd: --candles: {reason}", file=sys.stderr)
            return exit_codes.DATA_ERROR
        except ValueError as error:
            print(f"tradingd: --candles {spec}: {error}", file=sys.stderr)
            return exit_codes.USAGE
    pace: float | str
    if args.speed == "fast":
        pace = "fast"
    else:
        try:
            pace = float(args.speed)
        except ValueError:
            print("tradingd: --speed takes a number or 'fast'", file=sys.stderr)
            return exit_codes.USAGE
    try:
        api_keys = sim_api_keys(args.api_key, os.environ)
    except ValueError as error:
        print(f"tradingd: --api-key: {error}", file=sys.stderr)
        return exit_codes.USAGE
    if not api_keys:
        print("tradingd: no API key (--api-key KEY:SECRET): signed calls will answer 100413", file=sys.stderr)
    start = args.start if args.start is not None else min(s.first_ms for s in series)
    simulator = BingXSimulator(series, ReplayClock(start), pace=pace, api_keys=api_keys)  # type: ignore[arg-type]
    await simulator.start(port=args.port, faults_route=args.faults)
    # The keys it accepts, never their secrets.
    started = {"rest_url": simulator.rest_url, "ws_url": simulator.ws_url, "api_keys": sorted(api_keys)}
    print(json.dumps(started), flush=True)
    _log().info("simulator_started", rest_url=simulator.rest_url, ws_url=simulator.ws_url, pace=args.speed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await simulator.stop()
    _log().info("simulator_stopped")
    return exit_codes.OK
