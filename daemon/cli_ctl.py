"""`tradingd ctl ...`: the control socket's client. Readable output on a terminal, `--json` for scripts
(the daemon's answer as it came). Exit codes: 0 done, 1 refused (the answer says why; also `resume` while
trading is still blocked), 69 no daemon."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from daemon import exit_codes

if TYPE_CHECKING:
    from config import Settings


ANSWER_SEC = 60.0
SWITCH_SEC = 300.0
"""`runs live` / `runs paper` stop every pair and start it again on the other venue (a live pair reconciles
first): on a busy machine that takes longer than a minute."""


def add_ctl_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ctl = commands.add_parser("ctl", help="talk to the running daemon over its control socket")
    ctl.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    ctl.add_argument(
        "--timeout", type=float, default=None, metavar="SEC",
        help=f"how long to wait for an answer (default {ANSWER_SEC:g} s; {SWITCH_SEC:g} s for `runs live` and `runs "
        "paper`, which restart every pair)",
    )  # fmt: skip
    # The same options after the command (`ctl status --json`); given there, they win.
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the answer as JSON")
    options.add_argument("--timeout", type=float, default=argparse.SUPPRESS, metavar="SEC", help="answer deadline")
    sub = ctl.add_subparsers(dest="ctl_command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[options])

    command("status", "the run, the account's equity and balance, per pair state, position and PnL, open trades")
    pause = command("pause", "stop new orders (all pairs, or one)")
    pause.add_argument("pair", nargs="?")
    pause.add_argument("--reduce-only", action="store_true", help="still allow orders that reduce a position")
    pause.add_argument("--reason")
    resume = command(
        "resume", "allow orders again (all pairs also closes a cooled-down breaker); exit 1 while still blocked"
    )
    resume.add_argument("pair", nargs="?")
    command("risk", "the account's exposure, daily PnL, circuit breaker, and the limits")
    runs = command("runs", "list, start or stop runs; switch the active run to live or back to paper")
    runs.add_argument("action", choices=("list", "start", "stop", "live", "paper"), nargs="?", default="list")
    runs.add_argument("run", nargs="?", metavar="RUN_ID", help="live, paper: the active run's id")
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
    backfill = command("backfill", "make sure of a pair's recent candles now")
    backfill.add_argument("pair")
    backfill.add_argument("--interval")
    backfill.add_argument("--bars", type=int, default=1440)
    command("reconcile", "health-check now, restart FAULTED pairs, and reconcile each live pair with the venue")
    close = command("close-trade", "close an open trade with a reduce-only market order (ids: `ctl status`)")
    close.add_argument("trade", metavar="TRADE_ID", help="the trade's id, as `ctl status` lists it")
    cancel = command("cancel-trade", "cancel a trade's working orders (ids: `ctl status`)")
    cancel.add_argument("trade", metavar="TRADE_ID", help="the trade's id, as `ctl status` lists it")
    close_all = command(
        "close-all",
        "emergency flatten: pause, cancel opening orders, close positions reduce-only, wait until flat "
        "(waits up to --timeout); the run stays, HALTED",
    )
    which = close_all.add_mutually_exclusive_group(required=True)
    which.add_argument("pair", nargs="?", help="the pair to flatten")
    which.add_argument("--all", action="store_true", help="every pair")
    close_all.add_argument("--reason")
    command("retry-queue", "failed market-data jobs waiting for a retry")
    alerts = command("alerts", "recent alerts")
    alerts.add_argument("--limit", type=int, default=20)
    command("shutdown", "stop the daemon as SIGTERM does")


def request_of(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    """The command and its arguments, from the parsed command line."""
    command: str = args.ctl_command
    if args.timeout is None:
        switching = command == "runs" and args.action in ("live", "paper")
        args.timeout = SWITCH_SEC if switching else ANSWER_SEC
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
        if args.action in ("live", "paper"):
            fields["run"] = args.run
    elif command == "backfill":
        fields = {"pair": args.pair, "interval": args.interval, "bars": args.bars}
    elif command in ("close-trade", "cancel-trade"):
        fields = {"trade": args.trade}  # not "id": the protocol's request id
    elif command == "close-all":
        fields = {"pair": args.pair, "all": args.all, "reason": args.reason, "wait_sec": max(1.0, args.timeout - 10)}
    elif command == "alerts":
        fields = {"limit": args.limit}
    return command, {key: value for key, value in fields.items() if value is not None}


def run_ctl(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.control_client import ControlClientError, call

    path = settings.control.resolved_socket_path(settings.storage.resolved_data_dir())
    token = settings.control.api_token
    command, fields = request_of(args)
    try:
        answer = call(
            path, None if token is None else token.get_secret_value(), command, timeout_sec=args.timeout, **fields
        )
    except (ControlClientError, TimeoutError, OSError) as error:
        if isinstance(error, TimeoutError) and not str(error):
            said = f"the daemon did not answer {command} within {args.timeout:g} s (--timeout SEC waits longer)"
        else:
            said = str(error) or type(error).__name__
        print(f"tradingd: {said}", file=sys.stderr)
        return exit_codes.UNAVAILABLE
    if args.json:
        print(json.dumps(answer, indent=2))
    elif answer.get("ok"):
        print(render(command, answer))
    if not answer.get("ok"):
        if not args.json:
            print(f"tradingd: {command} refused ({answer.get('code')}): {answer.get('error')}", file=sys.stderr)
        return exit_codes.FAILURE
    failed = answer.get("failed") if command == "reconcile" else None
    if isinstance(failed, list) and failed:
        said = ", ".join(str(pair) for pair in failed)
        print(f"tradingd: reconcile: {said} disagree with the venue (HALTED until it passes)", file=sys.stderr)
        return exit_codes.FAILURE
    if command == "close-all" and not answer.get("flat"):
        print("tradingd: close-all: not every pair could be closed (see not_closed)", file=sys.stderr)
        return exit_codes.FAILURE
    if command == "resume" and answer.get("blocked"):
        # What could be resumed was; trading is still blocked (the answer's `still_blocked` says by what).
        print("tradingd: resume: trading is still blocked", file=sys.stderr)
        return exit_codes.FAILURE
    return exit_codes.OK


def render(command: str, answer: Mapping[str, Any]) -> str:
    body = {key: value for key, value in answer.items() if key not in ("ok", "id")}
    if command == "status":
        return _status(body)
    if command in ("close-trade", "cancel-trade"):
        return _trade_action(command, body)
    if command == "resume":
        return _resume(body)
    if command == "close-all":
        return _closed_all(body)
    return _tree(body)


def _resume(body: Mapping[str, Any]) -> str:
    lines = [f"{pair}: {state}" for pair, state in (body.get("pairs") or {}).items()]
    account = body.get("account")
    if account:
        lines.append(f"account: {account.get('trading_state')}, circuit breaker {account.get('circuit_breaker')}")
    still = body.get("still_blocked") or []
    if still:
        lines.append("still blocked:")
        lines += [f"  {line}" for line in still]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- status


def _status(body: Mapping[str, Any]) -> str:
    run = body.get("run") or {}
    since = f"  since {_utc_iso(run['started_at'])}" if run.get("started_at") else ""
    daemon = body.get("daemon") or {}
    lines = [
        f"run {run.get('id', '-')}  {run.get('policy', 'no run')}  {run.get('status', '')}{since}".rstrip(),
        f"daemon pid {daemon.get('pid', '-')}, up {_duration(daemon.get('uptime_sec'))}"
        + ("  (stopping)" if daemon.get("stopping") else ""),
    ]
    account = body.get("account") or {}
    if account:
        lines.append(_account(account))
    pairs: Mapping[str, Any] = body.get("pairs") or {}
    if pairs:
        lines.append("")
        lines.extend(_pairs_table(pairs))
    database = body.get("database") or {}
    if database.get("reachable") is False:
        lines.insert(2, f"database UNREACHABLE ({database.get('error')}): what the actors hold is shown")
    if body.get("run"):
        lines.append("")
        trades = body.get("open_trades")
        if trades is None:
            lines.append("open trades: unknown until the database answers")
        else:
            lines.extend(_trades_table(trades, pairs))
    return "\n".join(lines)


def _account(account: Mapping[str, Any]) -> str:
    if "error" in account and "trading_state" not in account:
        head = f"account ?  ({account['error']})"
    else:
        breaker = "OPEN" if account.get("breaker_open") else "closed"
        head = (
            f"account {account.get('trading_state', '?')}  daily PnL {_usdt(account.get('daily_pnl'), signed=True)}  "
            f"gross exposure {_usdt(account.get('gross_exposure'))}  breaker {breaker}"
        )
    if account.get("equity_source") == "venue" and account.get("venue_equity") is not None:
        read_at = str(account.get("venue_equity_read_at") or "")
        return (
            f"{head}\n"
            f"  equity {_usdt(account.get('equity'))}  balance {_usdt(account.get('balance'))}  "
            f"unrealised PnL {_usdt(account.get('unrealised_pnl'), signed=True)}  "
            f"(the venue's, read {read_at[11:19]} UTC)  drawdown {_usdt(account.get('drawdown'))}"
        )
    if "initial_equity" not in account:
        return head
    return (
        f"{head}\n"
        f"  equity {_usdt(account.get('equity'))}  balance {_usdt(account.get('balance'))}  "
        f"unrealised PnL {_usdt(account.get('unrealised_pnl'), signed=True)}  "
        f"(started with {_usdt(account.get('initial_equity'))})"
    )


def _pairs_table(pairs: Mapping[str, Any]) -> list[str]:
    rows = [("pair", "state", "trading", "desired", "last candle", "lag", "position", "net PnL", "actors")]
    for pair, view in sorted(pairs.items()):
        position = view.get("position") or {}
        actors = view.get("actors", {})
        alive = sum(1 for actor in actors.values() if actor.get("alive"))
        lag = view.get("lag_sec")
        step = (view.get("contract") or {}).get("step")
        quantity = position.get("position")
        rows.append(
            (
                pair,
                _pair_state(view),
                str(view.get("effective_state") or view.get("trading_state", "?")),
                _desired(view.get("desired")),
                _utc_ms(view.get("last_candle_open_ms")),
                "-" if lag is None else f"{float(lag):.1f} s",
                "-" if quantity is None else f"{_fixed(quantity, _places(step, 4))} {_base(pair)}",
                _usdt(position.get("net_pnl"), signed=True),
                f"{alive}/{len(actors)}",
            )
        )
    return _table(rows, right={5, 6, 7})


def _pair_state(view: Mapping[str, Any]) -> str:
    """The pair's supervision state, and what its start waits for (the venue, the database), if anything."""
    state = str(view.get("state", "?"))
    return f"{state} (waits for {view['waiting_on']})" if view.get("waiting_on") else state


def _desired(desired: object) -> str:
    """The operator's desired state; `(pending)` until the pair's risk guard has it (while it restarts)."""
    if not isinstance(desired, Mapping):
        return "-"
    text = str(desired.get("trading_state", "?"))
    if desired.get("reason"):
        text += f" ({desired['reason']})"
    return text if desired.get("applied", True) else f"{text} (pending)"


def _trades_table(trades: list[Mapping[str, Any]], pairs: Mapping[str, Any]) -> list[str]:
    if not trades:
        return ["open trades: none"]
    rows = [
        (
            "open trade (id for close-trade)",
            "pair",
            "side",
            "status",
            "quantity",
            "entry (USDT)",
            "mark (USDT)",
            "unrealised PnL",
            "opened",
        )
    ]
    for trade in trades:
        pair = str(trade.get("pair", "?"))
        contract = (pairs.get(pair) or {}).get("contract") or {}
        price_places = _places(contract.get("tick"), 2)
        rows.append(
            (
                str(trade.get("id")),
                pair,
                str(trade.get("side", "?")),
                str(trade.get("status", "?")),
                f"{_fixed(trade.get('quantity'), _places(contract.get('step'), 4))} {_base(pair)}",
                _price(trade.get("entry_price"), price_places),
                _price(trade.get("mark"), price_places),
                _usdt(trade.get("unrealised_pnl"), signed=True),
                _utc_iso(trade.get("opened_at"), seconds=False),
            )
        )
    table = _table(rows, right={4, 5, 6, 7})
    if any(trade.get("entry_price") is None for trade in trades):
        table.append("(an entry of - is an opening order that has not filled yet)")
    return table


def _closed_all(body: Mapping[str, Any]) -> str:
    lines = [
        f"{pair}: flat (closed {view['closed']})" if view.get("flat") else f"{pair}: not flat"
        for pair, view in (body.get("pairs") or {}).items()
    ]
    lines += [f"{pair}: {why}" for pair, why in (body.get("not_closed") or {}).items()]
    if body.get("not_saved"):
        lines.append(str(body["not_saved"]))
    lines.append(f"the pairs stay HALTED ({body.get('reason') or 'operator_close_all'}): `ctl resume` trades again")
    return "\n".join(lines)


def _trade_action(command: str, body: Mapping[str, Any]) -> str:
    trade = body.get("trade", "?")
    status = body.get("status")
    if command == "close-trade":
        if body.get("order") is None:
            return f"trade {trade} is already {status}: nothing to close"
        return (
            f"trade {trade}: closing with reduce-only market order {body['order']}\n"
            "it fills at the next candle's open on paper, at once on a live venue; `ctl status` shows the trade until "
            "then"
        )
    cancelled = body.get("cancelled") or []
    if status in ("closed", "cancelled"):
        return f"trade {trade} is already {status}: nothing to cancel"
    if not cancelled:
        return f"trade {trade}: no working orders to cancel"
    return f"trade {trade}: cancelled {len(cancelled)} working order(s): {', '.join(map(str, cancelled))}"


def _table(rows: Sequence[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------- other answers


def _tree(value: Any, indent: int = 0, key: str = "") -> str:
    pad = "  " * indent
    if isinstance(value, Mapping):
        if not value:
            return pad + "(none)"
        lines = []
        for name, item in value.items():
            if isinstance(item, Mapping | list) and item:
                lines.append(f"{pad}{name}:")
                lines.append(_tree(item, indent + 1, str(name)))
            else:
                # The values of a mapping of pairs (exposures) take the mapping's unit.
                unit_key = key if key in _USDT_MAPPINGS else str(name)
                lines.append(f"{pad}{name}: {_scalar(item, unit_key)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "(none)"
        parts = [_tree(item, indent) if isinstance(item, Mapping) else f"{pad}- {_scalar(item)}" for item in value]
        # Records (alerts, runs, jobs) are separated by a blank line; plain values stay one per line.
        return ("\n\n" if any(isinstance(item, Mapping) for item in value) else "\n").join(parts)
    return pad + _scalar(value, key)


_EPOCH_MS_FLOOR = 10**11
"""A `*_ms` value this large is a time (after 1973), not a duration such as `latency_ms`."""
_USDT_MAPPINGS = frozenset({"exposures"})
_USDT_KEYS = frozenset(
    {
        "equity",
        "balance",
        "initial_equity",
        "fees",
        "daily_loss_limit",
        "drawdown",
        "breaker_max_drawdown",
        "venue_equity",
        "venue_balance",
        "available",
    }
)
_USDT_SUFFIXES = ("_exposure", "_notional", "_pnl")


def _scalar(value: Any, key: str = "") -> str:
    """One value, with its unit from its key: epoch ms (`*_ms`) and ISO times (`*_at`, `*_until`) as
    UTC, `*_sec` in seconds, money in USDT to 2 decimals."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return "(none)" if not value else ", ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return "(none)"
    if isinstance(value, bool):
        return str(value)
    if key.endswith("_ms") and isinstance(value, int) and value >= _EPOCH_MS_FLOOR:
        return _utc_ms(value)
    if key.endswith(("_at", "_until")) and isinstance(value, str):
        return _utc_iso(value)
    if key.endswith("_sec") and isinstance(value, int | float):
        return f"{value} s"
    if (key in _USDT_KEYS or key in _USDT_MAPPINGS or key.endswith(_USDT_SUFFIXES)) and _is_number(value):
        return _usdt(value, signed=key.endswith("_pnl"))
    return str(value)


# ---------------------------------------------------------------------------------------------- formats


def _utc_ms(value: object) -> str:
    """An epoch-milliseconds time (a candle's open) as `2025-03-01 12:34 UTC`."""
    if not isinstance(value, int) or isinstance(value, bool):
        return "-"
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _utc_iso(value: object, *, seconds: bool = True) -> str:
    """An ISO time as `2025-03-01 12:34:56 UTC` (the text as it is if it is not one)."""
    if not isinstance(value, str):
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value  # a date, or a time without a zone: no claim about UTC
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def _duration(value: object) -> str:
    if not _is_number(value):
        return "-"
    total = int(float(str(value)))
    if total < 120:
        return f"{float(str(value)):.0f} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return Decimal(str(value)).is_finite()
    except InvalidOperation:
        return False


def _places(grid: object, default: int) -> int:
    """The decimals of a contract's grid (tick 0.1 -> 1, step 0.0001 -> 4)."""
    if not _is_number(grid) or Decimal(str(grid)) <= 0:
        return default
    return max(0, -int(Decimal(str(grid)).normalize().as_tuple().exponent))


def _fixed(value: object, places: int, *, signed: bool = False) -> str:
    if not _is_number(value):
        return "-"
    number = Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    if number == 0:
        number = abs(number)  # no "-0.00"
    return f"{number:+f}" if signed else f"{number:f}"


def _usdt(value: object, *, signed: bool = False) -> str:
    return "-" if not _is_number(value) else f"{_fixed(value, 2, signed=signed)} USDT"


def _price(value: object, places: int) -> str:
    return _fixed(value, places)


def _base(pair: str) -> str:
    """The base asset of a pair: BTC of BTC-USDT."""
    return pair.split("-", 1)[0]
