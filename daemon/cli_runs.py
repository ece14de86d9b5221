"""`tradingd runs list` and `tradingd runs stop RUN_ID`: a data directory's runs, without the daemon.

Offline, the database is the truth: `runs list` shows every recent run with what it holds (its
position per pair, from its fills; its working orders; its open trades) and the positions waiting to
be adopted. `runs stop` follows the rule `ctl runs stop` follows: refused while the run holds a
position, unless `--keep` (the run stops; the next run on the pair adopts the position, its open
trade and working orders). `--flatten` needs the venue, so it is refused here: with the daemon
running, `tradingd ctl runs stop --flatten` closes the positions first. While the daemon answers on
its control socket, `runs stop` is refused (the daemon's actors own the run's state then).

The parser is cheap to build; the database and the daemon's modules are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daemon import exit_codes

if TYPE_CHECKING:
    from config import Settings
    from storage.database import Database
    from storage.runs import Holding, StoppedRun

STOP_HELP = "stop a run in the database (refused while it holds positions, unless --keep)"


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id (a UUID; `tradingd runs list` shows them)"
        ) from None


def add_run_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = commands.add_parser("runs", help="list or stop paper runs in the database (works without the daemon)")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="recent runs, what each holds, and positions waiting to be adopted")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--limit", type=int, default=20, help="how many runs (newest first)")
    stop = sub.add_parser("stop", help=STOP_HELP)
    stop.add_argument("run_id", metavar="RUN_ID", type=_run_id)
    stop.add_argument("--reason", default="operator", help="recorded with the run and its run_stopped event")
    rule = stop.add_mutually_exclusive_group()
    rule.add_argument(
        "--keep", action="store_true", help="stop it and hand its positions over: the next run on the pair adopts them"
    )
    rule.add_argument(
        "--flatten",
        action="store_true",
        help="refused offline (closing needs the venue): `tradingd ctl runs stop --flatten` with the daemon running",
    )


def run_run_command(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    if args.runs_command == "stop" and args.flatten:
        print(
            "tradingd: --flatten closes positions with market orders, so the daemon must be running: start it "
            "(`tradingd run`, with --resume-as-is if the run no longer matches the configuration) and run "
            "`tradingd ctl runs stop --flatten`; or stop offline with --keep (the next run adopts the positions)",
            file=sys.stderr,
        )
        return exit_codes.UNAVAILABLE
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.cli_db import open_migrated_database

    if args.runs_command == "stop":
        running = await _daemon_pid(settings)
        if running is not None:
            print(
                f"tradingd: the daemon is running ({running}): stop its run through it, "
                "`tradingd ctl runs stop [--flatten | --keep]`",
                file=sys.stderr,
            )
            return exit_codes.FAILURE
    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        if args.runs_command == "list":
            return await _list(database, args)
        return await _stop(database, args)
    finally:
        await database.close()


async def _daemon_pid(settings: Settings) -> str | None:
    """Who answers on the control socket ("pid N"), or None when no daemon does."""
    from daemon.control_client import ControlClient, ControlClientError

    path = settings.control.resolved_socket_path(settings.storage.resolved_data_dir())
    if not path.exists():
        return None
    token = settings.control.api_token
    try:
        async with ControlClient(path, None if token is None else token.get_secret_value(), 5.0) as client:
            answer = await client.request("status")
    except (ControlClientError, TimeoutError, OSError):
        return None
    daemon = answer.get("daemon")
    pid = daemon.get("pid") if isinstance(daemon, Mapping) else None
    return f"pid {pid}" if pid is not None else f"on {path}"


async def _list(database: Database, args: argparse.Namespace) -> int:
    from storage.runs import RunStore

    store = RunStore(database.pool)
    rows: list[dict[str, Any]] = []
    for run in await store.runs(args.limit):
        holdings = await store.holdings(run.id)
        rows.append(
            {
                "id": str(run.id),
                "status": run.status,
                "policy": run.policy,
                "pairs": list(run.pairs),
                "interval": run.interval,
                "feature_set": run.feature_set,
                "started_at": run.started_at.isoformat(timespec="seconds"),
                "stopped_at": None if run.stopped_at is None else run.stopped_at.isoformat(timespec="seconds"),
                "stop_reason": run.stop_reason,
                "holdings": [h.to_json() for h in holdings],
            }
        )
    handovers = [
        {
            "pair": h.pair,
            "position": h.position,
            "from_run": str(h.from_run),
            "trades": list(h.trades),
            "stopped_at": h.stopped_at,
        }
        for h in await store.handovers()
    ]
    if args.json:
        print(json.dumps({"runs": rows, "handovers": handovers}, indent=2))
        return exit_codes.OK
    if not rows:
        print("no runs yet")
    for row in rows:
        stopped = f"  stopped {row['stopped_at']} ({row['stop_reason']})" if row["stopped_at"] else ""
        print(
            f"{row['id']}  {row['status']:<8} {row['policy']}  {','.join(row['pairs'])}  {row['interval']}  "
            f"started {row['started_at']}{stopped}"
        )
        for held in row["holdings"]:
            orders = ", ".join(held["working_orders"]) or "-"
            trades = ", ".join(held["open_trades"]) or "-"
            print(f"    {held['pair']:<12} position {held['position']}  working orders {orders}  open trades {trades}")
    if handovers:
        print("positions waiting for the next run on their pair:")
        for handover in handovers:
            print(
                f"    {handover['pair']:<12} {handover['position']} from run {handover['from_run']} "
                f"(stopped {handover['stopped_at']})"
            )
    return exit_codes.OK


async def _stop(database: Database, args: argparse.Namespace) -> int:
    from storage.runs import OpenPositionsError, RunNotActiveError, RunStore

    store = RunStore(database.pool)
    try:
        stopped = await store.stop(args.run_id, args.reason, keep=args.keep)
    except OpenPositionsError as error:
        print(f"tradingd: {stop_refusal(error.run_id, error.holdings)}", file=sys.stderr)
        return exit_codes.FAILURE
    except RunNotActiveError as error:
        run = await store.get(args.run_id)
        if run is not None:  # stopped (or failed) already: nothing to do
            print(json.dumps({"stopped": None, "detail": str(error)}))
            return exit_codes.OK
        print(f"tradingd: {error} (`tradingd runs list` shows the runs)", file=sys.stderr)
        return exit_codes.FAILURE
    await record_run_stopped(database, stopped, args.reason, actor="cli")
    print(
        json.dumps({"stopped": str(stopped.run.id), "reason": args.reason, "positions": stopped.positions()}, indent=2)
    )
    return exit_codes.OK


def stop_refusal(run_id: uuid.UUID, holdings: tuple[Holding, ...]) -> str:
    held = "; ".join(h.describe() for h in holdings)
    return (
        f"run {run_id} holds {held}: stop it with --keep (the next run on the pair adopts the position), or close "
        "it first with the daemon running: `tradingd ctl runs stop --flatten`"
    )


async def record_run_stopped(
    database: Database,
    stopped: StoppedRun,
    reason: str,
    *,
    actor: str,
    flattened: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `run_stopped` event: a log line, an audit row (`ops_audit_events`) and an info alert, with the
    run, the reason and what happened to each pair it held: `kept` (handed over to the next run),
    `flattened` (closed before the stop, with the quantity closed), `orders_cancelled` (flat, its
    working orders cancelled). Returns the positions as recorded."""
    from observability import get_logger
    from storage.ops import OpsStore

    positions: dict[str, Any] = {
        pair: {"position": "0", "closed": closed, "outcome": "flattened"} for pair, closed in (flattened or {}).items()
    }
    positions.update(stopped.positions())
    run_id = stopped.run.id
    get_logger("tradingd.daemon").info("run_stopped", run_id=str(run_id), reason=reason, positions=positions)
    ops = OpsStore(database.pool)
    kept = [f"{pair} {positions[pair]['position']}" for pair in stopped.kept]
    detail = f"run {run_id} stopped ({reason})" + (f"; kept for the next run: {', '.join(kept)}" if kept else "")
    await ops.audit(
        "run_stopped",
        {"run_id": str(run_id), "reason": reason, "positions": positions},
        "accepted",
        detail,
        actor=actor,
        target=str(run_id),
    )
    await ops.raise_alert("info", "run_stopped", detail, run_id=run_id, details={"positions": positions})
    return positions
