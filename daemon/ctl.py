"""`tradingd ctl ...`: the control socket's client. Readable output on a terminal, `--json` for scripts
(the daemon's answer as it came). Exit codes: 0 done, 1 refused (the answer says why), 69 no daemon."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from config import Settings
from daemon import exit_codes
from daemon.control_client import ControlClientError, call


def add_ctl_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ctl = commands.add_parser("ctl", help="talk to the running daemon over its control socket")
    ctl.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    ctl.add_argument("--timeout", type=float, default=60.0, metavar="SEC", help="how long to wait for an answer")
    sub = ctl.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")
    sub.add_parser("status", help="per pair: state, last candle, lag, position, PnL, actor health")
    pause = sub.add_parser("pause", help="stop new orders (all pairs, or one)")
    pause.add_argument("pair", nargs="?")
    pause.add_argument("--reduce-only", action="store_true", help="still allow orders that reduce a position")
    pause.add_argument("--reason")
    resume = sub.add_parser("resume", help="allow orders again (all pairs also closes a cooled-down breaker)")
    resume.add_argument("pair", nargs="?")
    sub.add_parser("risk", help="the account's exposure, daily PnL, circuit breaker, and the limits")
    runs = sub.add_parser("runs", help="list, start or stop paper runs")
    runs.add_argument("action", choices=("list", "start", "stop"), nargs="?", default="list")
    runs.add_argument("--policy", help="hold, momentum, ema_cross or agent:<version id>")
    runs.add_argument("--pairs", help="comma-separated (default: the configured pairs)")
    runs.add_argument("--reason")
    rule = runs.add_mutually_exclusive_group()
    rule.add_argument(
        "--flatten",
        action="store_true",
        help="stop: close the run's positions with reduce-only market orders first, and stop once flat "
        "(waits up to --timeout)",
    )
    rule.add_argument(
        "--keep", action="store_true", help="stop: hand the run's positions over; the next run on the pair adopts them"
    )
    backfill = sub.add_parser("backfill", help="make sure of a pair's recent candles now")
    backfill.add_argument("pair")
    backfill.add_argument("--interval")
    backfill.add_argument("--bars", type=int, default=1440)
    sub.add_parser("reconcile", help="health-check now, and restart FAULTED pairs")
    close = sub.add_parser("close-trade", help="close an open trade with a reduce-only market order")
    close.add_argument("id")
    cancel = sub.add_parser("cancel-trade", help="cancel a trade's working orders")
    cancel.add_argument("id")
    sub.add_parser("retry-queue", help="failed market-data jobs waiting for a retry")
    alerts = sub.add_parser("alerts", help="recent alerts")
    alerts.add_argument("--limit", type=int, default=20)
    sub.add_parser("shutdown", help="stop the daemon as SIGTERM does")


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The command and its arguments, from the parsed command line."""
    command: str = args.ctl_command
    fields: dict[str, object] = {}
    if command == "pause":
        fields = {"pair": args.pair, "reduce_only": args.reduce_only, "reason": args.reason}
    elif command == "resume":
        fields = {"pair": args.pair}
    elif command == "runs":
        pairs = [p.strip() for p in args.pairs.split(",") if p.strip()] if args.pairs else None
        fields = {"action": args.action, "policy": args.policy, "pairs": pairs, "reason": args.reason}
        if args.action == "stop":  # the daemon answers before this client gives up waiting
            fields.update(flatten=args.flatten, keep=args.keep, wait_sec=max(1.0, args.timeout - 10))
    elif command == "backfill":
        fields = {"pair": args.pair, "interval": args.interval, "bars": args.bars}
    elif command in ("close-trade", "cancel-trade"):
        fields = {"id": args.id}
    elif command == "alerts":
        fields = {"limit": args.limit}
    return command, {key: value for key, value in fields.items() if value is not None}


def run_ctl(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.control.resolved_socket_path(settings.storage.resolved_data_dir())
    token = settings.control.api_token
    command, fields = request_of(args)
    try:
        answer = call(
            path, None if token is None else token.get_secret_value(), command, timeout_sec=args.timeout, **fields
        )
    except (ControlClientError, TimeoutError, OSError) as error:
        print(f"tradingd: {error or type(error).__name__}", file=sys.stderr)
        return exit_codes.UNAVAILABLE
    if args.json:
        print(json.dumps(answer, indent=2))
    elif answer.get("ok"):
        print(render(command, answer))
    if not answer.get("ok"):
        if not args.json:
            print(f"tradingd: {command} refused ({answer.get('code')}): {answer.get('error')}", file=sys.stderr)
        return exit_codes.FAILURE
    return exit_codes.OK


def render(command: str, answer: Mapping[str, Any]) -> str:
    body = {key: value for key, value in answer.items() if key not in ("ok", "id")}
    if command == "status":
        return _status(body)
    return _tree(body)


def _status(body: Mapping[str, Any]) -> str:
    run = body.get("run") or {}
    lines = [
        f"run {run.get('id', '-')}  {run.get('policy', 'no run')}  {run.get('status', '')}",
        f"daemon pid {body['daemon']['pid']}, up {body['daemon']['uptime_sec']} s",
    ]
    account = body.get("account") or {}
    if account:
        lines.append(
            f"account {account.get('trading_state')}  gross {account.get('gross_exposure')}  "
            f"daily PnL {account.get('daily_pnl')}  breaker {'OPEN' if account.get('breaker_open') else 'closed'}"
        )
    header = f"{'pair':<12} {'state':<10} {'trading':<9} {'last candle (ms)':<16} {'lag s':>7} {'position':>12} "
    lines.append(header + f"{'net PnL':>12}  actors")
    for pair, view in sorted((body.get("pairs") or {}).items()):
        position = view.get("position") or {}
        actors = view.get("actors", {})
        alive = sum(1 for actor in actors.values() if actor.get("alive"))
        lag = view.get("lag_sec")
        lines.append(
            f"{pair:<12} {view.get('state', '?'):<10} {view.get('trading_state', '?'):<9} "
            f"{view.get('last_candle_open_ms') or '-'!s:<16} {'-' if lag is None else lag:>7} "
            f"{position.get('position', '-'):>12} {position.get('net_pnl', '-'):>12}  {alive}/{len(actors)}"
        )
    return "\n".join(lines)


def _tree(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            return pad + "(none)"
        lines = []
        for key, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(_tree(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "(none)"
        parts = [_tree(item, indent) if isinstance(item, Mapping) else f"{pad}- {_scalar(item)}" for item in value]
        # Records (alerts, runs, jobs) are separated by a blank line; plain values stay one per line.
        return ("\n\n" if any(isinstance(item, Mapping) for item in value) else "\n").join(parts)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "(none)" if not value else ", ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return "(none)"
    return str(value)
