"""The control socket's commands. Idempotent: pausing a paused pair, resuming an active one, closing a
trade that is already closing, all answer with the state as it is. Every accepted (or refused, or
failed) command lands in `ops_audit_events`: while the database is away, the event is kept in memory and
written when it is back (`DaemonState.audits`), with the time the command ran."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from actors.transport import ActorUnavailable, PairActors, describe
from daemon.control_protocol import CommandError, ControlRequest
from daemon.control_server import ControlServer
from daemon.live_switch import live_refusals, paper_refusals
from daemon.risk_limits import risk_limits
from daemon.run_setup import RunSetupError
from daemon.run_state import DaemonState
from daemon.secrets_rotation import SECRET_ARGS, RotationRefused, check_new_keys, fingerprint, shape_refusal
from daemon.supervisor import DesiredStateNotSaved
from domain.market import INTERVALS
from exchange.bingx.rest import Credentials
from observability import get_logger, register_secrets
from pipeline.execution.core import NotClosableError
from pipeline.risk.blocks import not_running
from storage.availability import database_unreachable, within
from storage.desired_state import ACCOUNT, DesiredState
from storage.ops import AuditEvent, OpenTrade, OpsStore
from storage.retry_queue import RetryQueue
from storage.runs import OpenPositionsError, RunConflictError, RunStore
from trading.limits import limits_json

log = get_logger("tradingd.control")
Command = Callable[[DaemonState, Mapping[str, object]], Awaitable[Mapping[str, object]]]
CALL_TIMEOUT_SEC = 30.0
RECONCILE_TIMEOUT_SEC = 90.0
"""A live pair's reconciliation reads every working order (an unanswered one with bounded retries)."""
DATABASE_READ_SEC = 5.0
"""Status's and the audit's bound on the database: one that is frozen (not refused) answers nothing until
asyncpg's 60 s command timeout, and the operator's `ctl` would give up first. Past it the database
counts as unreachable."""


async def open_control(state: DaemonState, path: Path) -> ControlServer:
    async def handle(request: ControlRequest) -> Mapping[str, object]:
        return await COMMANDS[request.cmd](state, request.args)

    async def audit(request: ControlRequest, outcome: str, detail: str | None) -> None:
        target = request.args.get("pair") or request.args.get("trade")
        event = AuditEvent(
            request.cmd,
            audited_args(request.args),
            outcome,  # type: ignore[arg-type]
            detail,
            actor="control-socket",
            target=None if target is None else str(target),
        )
        try:
            await within(state.audits.submit(event, command=request.cmd), DATABASE_READ_SEC, "the audit")
        except TimeoutError as error:  # kept: the write goes on in the background, or a later flush does it
            log.warning("audit_event_kept", command=request.cmd, error=str(error))

    token = state.settings.control.api_token
    server = ControlServer(
        path,
        handle,
        COMMANDS,
        token=None if token is None else token.get_secret_value(),
        audit=audit,
    )
    await server.start()
    return server


# ---------------------------------------------------------------------------------------------- helpers


def audited_args(args: Mapping[str, object]) -> dict[str, object]:
    """A request's arguments as the audit keeps them: a key pair (`secrets-rotate`) by its fingerprint."""
    kept: dict[str, object] = {}
    for key, value in args.items():
        if key not in SECRET_ARGS:
            kept[key] = value
        elif key == "api_key" and isinstance(value, str) and value:
            kept[key] = fingerprint(value)
        else:
            kept[key] = "[REDACTED]"
    return kept


def _text(args: Mapping[str, object], key: str, *, required: bool = False) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise CommandError("bad_args", f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise CommandError("bad_args", f"{key} must be a non-empty string")
    return value


def _flag(args: Mapping[str, object], key: str) -> bool:
    value = args.get(key, False)
    if not isinstance(value, bool):
        raise CommandError("bad_args", f"{key} must be true or false")
    return value


def _slots(state: DaemonState, pair: str | None) -> list[Any]:
    supervisor = state.require_supervisor()
    if pair is not None and pair not in supervisor.slots:
        raise CommandError("unknown_pair", f"{pair} is not a pair of run {state.run_id}")
    return supervisor.running(pair)


async def _call[T](answer: Awaitable[T]) -> T:
    """An actor's answer (the handle's call was made with `CALL_TIMEOUT_SEC`), or the command's error."""
    try:
        return await answer
    except ActorUnavailable as error:
        if isinstance(error.cause, KeyError):
            raise CommandError("not_found", str(error.cause).strip("'\"")) from None
        if isinstance(error.cause, NotClosableError):
            raise CommandError("not_closable", str(error.cause)) from None
        raise CommandError("unavailable", f"the {error.role} actor did not answer: {error.detail}") from None


def _actors(state: DaemonState, slot: Any) -> PairActors:
    try:
        return state.require_supervisor().actors_of(slot)
    except ActorUnavailable as error:
        raise CommandError("not_running", error.detail) from None


def _uuid(args: Mapping[str, object]) -> uuid.UUID:
    """The trade an operator names, under `trade` (`id` is the protocol's request id)."""
    text = _text(args, "trade", required=True)
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CommandError("bad_args", f"trade {text!r} is not a trade id (a UUID; `ctl status` lists them)") from None


# ---------------------------------------------------------------------------------------------- commands


async def status(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    supervisor = state.supervisor
    pairs: dict[str, object] = {}
    account: object = None
    if supervisor is not None:
        slots = list(supervisor.slots.values())
        views = await asyncio.gather(*(supervisor.pair_status(slot) for slot in slots))
        pairs = {slot.pair: view for slot, view in zip(slots, views, strict=True)}
        if supervisor.account is not None:
            try:
                account = await supervisor.account.summary(wait_sec=CALL_TIMEOUT_SEC)
            except ActorUnavailable:
                account = {"error": "the account guard did not answer"}
            account = {**account, "desired": supervisor.desired_of(ACCOUNT).to_json()}
    open_trades: list[dict[str, object]] | None = []
    database: dict[str, object] = {"reachable": True}
    if supervisor is not None and state.run is not None:
        account = await _money(state, supervisor, account, pairs)
        try:
            trades = await within(
                OpsStore(state.database.pool).open_trades(state.run.id), DATABASE_READ_SEC, "open trades"
            )
        except Exception as error:
            # During an outage status still answers with what the actors know; the trades are read later.
            if not database_unreachable(error):
                raise
            open_trades, database = None, {"reachable": False, "error": describe(error)}
        else:
            open_trades = [_open_trade(trade, _mark(pairs.get(trade.pair))) for trade in trades]
    return {
        "daemon": {
            "pid": os.getpid(),
            "uptime_sec": round(time.monotonic() - state.started_monotonic, 1),
            "stopping": state.stop.is_set(),
        },
        "run": state.run_view(),
        "account": account,
        "pairs": pairs,
        "open_trades": open_trades,
        "database": database,
    }


def _mark(view: object) -> Decimal | None:
    position = view.get("position") if isinstance(view, Mapping) else None
    return Decimal(position["mark"]) if isinstance(position, Mapping) else None


async def _money(state: DaemonState, supervisor: Any, account: object, pairs: dict[str, Any]) -> object:
    """Status's money: each pair's contract grid (for display), the account's balance and equity (the
    open trades, with their unrealised PnL at the pair's last mark, are read beside it).

    The pairs of a paper run trade one paper account of `run.initial_equity`: its balance is that plus
    every pair's realised PnL less fees and funding, its equity the balance plus the open positions'
    unrealised PnL.
    Both are None while a pair's execution actor does not answer (its PnL is unknown then). A live run's
    are the venue's, as the account guard last read them (`venue_equity_read_at`)."""
    assert state.run is not None
    initial: Decimal | None = None
    balance, unrealised, known = Decimal(0), Decimal(0), True
    for slot in supervisor.slots.values():
        initial = slot.plan.context.initial_equity
        view = pairs[slot.pair]
        view["contract"] = {"tick": str(slot.plan.rules.tick), "step": str(slot.plan.rules.step)}
        position = view.get("position")
        if not isinstance(position, Mapping):
            known = False
            continue
        balance += Decimal(position["realised_pnl"]) - Decimal(position["fees"]) - Decimal(position.get("funding", 0))
        unrealised += Decimal(position["unrealised_pnl"])
    venue = account.get("venue_equity") if isinstance(account, Mapping) else None
    if isinstance(account, Mapping) and venue is not None:  # live: the venue's word
        balance_text = account.get("venue_balance")
        return {
            **account,
            "equity": venue,
            "balance": balance_text,
            "unrealised_pnl": None if balance_text is None else str(Decimal(venue) - Decimal(balance_text)),
        }
    if initial is not None:
        money = {
            "initial_equity": str(initial),
            "balance": str(initial + balance) if known else None,
            "unrealised_pnl": str(unrealised) if known else None,
            "equity": str(initial + balance + unrealised) if known else None,
        }
        account = {**account, **money} if isinstance(account, Mapping) else money
    return account


def _open_trade(trade: OpenTrade, mark: Decimal | None) -> dict[str, object]:
    pnl: Decimal | None = None
    if trade.entry_price is not None and mark is not None and mark > 0:
        pnl = (mark - trade.entry_price) * trade.quantity * (1 if trade.side == "long" else -1)
    return {
        "id": str(trade.id),
        "pair": trade.pair,
        "side": trade.side,
        "status": trade.status,
        "quantity": str(trade.quantity),
        "entry_price": None if trade.entry_price is None else str(trade.entry_price),
        "mark": None if mark is None else str(mark),
        "unrealised_pnl": None if pnl is None else str(pnl),
        "fees": str(trade.fees),
        "opened_at": trade.opened_at.isoformat(),
    }


async def pause(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """The operator's pause (of one pair, or of all): the desired state is stored first, then the running
    pairs are paused. `pairs` maps each named pair to its trading state now (HALTED for one that is not
    running); `kept` says, for each pair that is not running, that the pause applies when it is back."""
    pair = _text(args, "pair")
    reason = _text(args, "reason") or ("operator_reduce_only" if _flag(args, "reduce_only") else "operator_pause")
    reduce_only = _flag(args, "reduce_only")
    _slots(state, pair)
    supervisor = state.require_supervisor()
    desired = DesiredState("REDUCING" if reduce_only else "HALTED", reason)
    states = await supervisor.set_desired(pair, desired, "control-socket")
    kept = {
        name: _kept(supervisor.slots[name].state)
        for name, value in states.items()
        if value is None or supervisor.slots[name].state != "running"
    }
    answer: dict[str, object] = {
        "pairs": {name: value or "HALTED" for name, value in states.items()},
        "desired": {name: supervisor.desired_of(name).to_json() for name in states},
    }
    if kept:
        answer["kept"] = kept
    if any(name in supervisor.unsaved for name in states):
        answer["saved"] = False
        answer["not_saved"] = "the database is unreachable: the pause is applied and is stored when it answers"
    return answer


def _kept(pair_state: str) -> str:
    why = "its risk guard did not answer" if pair_state == "running" else f"the pair is {pair_state}"
    return f"{why}: the pause is kept and applies when the pair is back"


async def resume(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """Lift what an operator can (the pairs' pauses; without a pair, also a cooled-down circuit breaker),
    then say what still blocks trading: `pairs` maps each pair to the state that now governs its orders,
    `blocked` is true when any is not ACTIVE, `blocked_by` lists each such pair's blocks (the daily loss
    limit until the next trading day, the breaker's cooldown, an automatic pause, ...) and `still_blocked`
    says it in sentences. `tradingd ctl resume` exits 1 while `blocked`."""
    pair = _text(args, "pair")
    supervisor = state.require_supervisor()
    _slots(state, pair)
    try:
        await supervisor.set_desired(pair, DesiredState("ACTIVE"), "control-socket")
    except DesiredStateNotSaved as error:
        raise CommandError(
            "database_unreachable",
            f"the database is unreachable ({error}): a resume is refused until it can be stored",
        ) from None
    slots = supervisor.running(pair)
    answer: dict[str, object] = {}
    account_view = None
    if pair is None and supervisor.account is not None:
        outcome = await _call(supervisor.account.resume(wait_sec=CALL_TIMEOUT_SEC))
        account_view = outcome["view"]
        answer["account"] = {
            "trading_state": outcome["trading_state"],
            "circuit_breaker": outcome["circuit_breaker"],
            "still_blocked": outcome["refusal"],
        }
    results = await asyncio.gather(
        *(_call(_actors(state, s).risk.resume(account_view, wait_sec=CALL_TIMEOUT_SEC)) for s in slots)
    )
    views: dict[str, Mapping[str, Any]] = {slot.pair: result for slot, result in zip(slots, results, strict=True)}
    for slot in supervisor.slots.values():  # a pair whose actors are not running cannot trade either
        if (pair is None or slot.pair == pair) and slot.pair not in views:
            views[slot.pair] = {"trading_state": "HALTED", "blocked_by": [not_running(slot.state).to_json()]}
    blocked = {name: list(view["blocked_by"]) for name, view in views.items() if view["trading_state"] != "ACTIVE"}
    answer["pairs"] = {name: view["trading_state"] for name, view in sorted(views.items())}
    answer["blocked"] = bool(blocked)
    answer["blocked_by"] = {name: [block["cause"] for block in blocks] for name, blocks in sorted(blocked.items())}
    lines: list[str] = []  # the account's blocks once, each pair's own under its name
    for name, blocks in sorted(blocked.items()):
        for block in blocks:
            line = f"{'account' if block['scope'] == 'account' else name}: {block['cause']}: {block['detail']}"
            if line not in lines:
                lines.append(line)
    answer["still_blocked"] = lines
    return answer


async def risk(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    supervisor = state.require_supervisor()
    if supervisor.account is None:
        raise CommandError("unavailable", "the account guard is not running")
    account = await _call(supervisor.account.summary(wait_sec=CALL_TIMEOUT_SEC))
    slots = supervisor.running(None)
    views = await asyncio.gather(*(_call(_actors(state, s).risk.status(wait_sec=CALL_TIMEOUT_SEC)) for s in slots))
    return {
        "account": account,
        "limits": limits_json(risk_limits(state.settings)),
        "pairs": {slot.pair: view for slot, view in zip(slots, views, strict=True)},
    }


async def runs(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    action = _text(args, "action") or "list"
    store = RunStore(state.database.pool)
    if action == "list":
        return {"runs": [state.run_row(run) for run in await store.runs()]}
    if action == "stop":
        return await _stop_run(state, args)
    if action == "live":
        return await _switch_run(state, args, "live")
    if action == "paper":
        return await _switch_run(state, args, "paper")
    if action == "start":
        policy = _text(args, "policy") or state.settings.run.policy
        pairs_arg = args.get("pairs")
        if pairs_arg is None:
            pairs = state.settings.market_data.pairs
        elif isinstance(pairs_arg, list) and pairs_arg and all(isinstance(p, str) for p in pairs_arg):
            pairs = tuple(str(p) for p in pairs_arg)
        else:
            raise CommandError("bad_args", "pairs must be a non-empty list of pairs")
        try:
            run = await state.start_run(policy, pairs)
        except RunConflictError as error:
            raise CommandError("run_active", str(error)) from None
        except RunSetupError as error:
            raise CommandError("refused", str(error)) from None
        # A position a stopped run handed over (`runs stop --keep`) is the new run's from its start.
        return {"started": state.run_row(run), "holdings": [h.to_json() for h in await store.holdings(run.id)]}
    raise CommandError("bad_args", f"unknown runs action {action!r}; use list, start, stop, live or paper")


async def _switch_run(
    state: DaemonState, args: Mapping[str, object], mode: Literal["live", "paper"]
) -> Mapping[str, object]:
    """`runs live RUN_ID` / `runs paper RUN_ID`: the active run switched once every condition holds, or
    refused naming each that does not (`daemon.live_switch`)."""
    run = state.run
    wanted = _text(args, "run")
    if run is None or state.supervisor is None:
        raise CommandError("no_run", "no run is active")
    if wanted is None or wanted != str(run.id):
        raise CommandError("bad_args", f"give the active run's id ({run.id}) to switch it")
    if run.mode == mode:
        return {"switched": None, "run": state.run_row(run), "detail": f"run {run.id} trades {mode} already"}
    if mode == "live":
        refusals = await live_refusals(state.settings, state.database, run)
    else:
        refusals = await paper_refusals(state.settings, run)
    if refusals:
        raise CommandError("refused", f"run {run.id} cannot switch to {mode}: " + "; ".join(refusals))
    if mode == "live":
        # The paper book goes live flat: its working orders (an opening order for the next candle) are
        # cancelled with the pairs halted, and one that filled meanwhile is closed, before the switch.
        await _flatten(state, run.id, FLATTEN_WAIT_SEC)
    switched = await state.switch_mode(mode, _text(args, "reason") or "operator")
    return {"switched": mode, "run": state.run_row(switched)}


FLATTEN_WAIT_SEC = 50.0
FLATTEN_POLL_SEC = 0.5
SETTLE_SEC = 10.0
STOP_RULE = (
    "stop it with --flatten (closes them with reduce-only market orders, then stops) or --keep (stops, and the "
    "next run on the pair adopts them)"
)


async def _stop_run(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """`runs stop`: refused while the run holds positions, unless `flatten` (close them first, and stop
    once flat) or `keep` (hand them over to the next run on the pair); a `run_stopped` event either way."""
    run = state.run
    if state.supervisor is None or run is None:
        return {"stopped": None, "detail": "no run is active"}
    flatten, keep = _flag(args, "flatten"), _flag(args, "keep")
    if flatten and keep:
        raise CommandError("bad_args", "give flatten or keep, not both")
    wait = _wait_sec(args)
    reason = _text(args, "reason") or "operator"
    flattened: dict[str, str] = {}
    if flatten:
        flattened = await _flatten(state, run.id, wait)
    elif not keep:
        held = [h for h in await RunStore(state.database.pool).holdings(run.id) if h.is_open]
        if held:
            raise CommandError(
                "open_positions", f"run {run.id} holds {'; '.join(h.describe() for h in held)}: {STOP_RULE}"
            )
    try:
        done = await state.stop_run(reason, keep=keep, flattened=flattened)
    except OpenPositionsError as error:
        raise CommandError(
            "open_positions", f"{error} (filled while the run stopped; it trades on): {STOP_RULE}"
        ) from None
    if done is None:
        return {"stopped": None, "detail": "no run is active"}
    return {"stopped": str(run.id), "reason": reason, "positions": done[1]}


def _wait_sec(args: Mapping[str, object]) -> float:
    wait = args.get("wait_sec", FLATTEN_WAIT_SEC)
    if not isinstance(wait, int | float) or isinstance(wait, bool) or not 0 < wait <= 3600:
        raise CommandError("bad_args", "wait_sec must be a number of seconds from 0 to 3600")
    return float(wait)


async def _flatten(state: DaemonState, run_id: uuid.UUID, wait_sec: float) -> dict[str, str]:
    """Halt every pair, cancel its opening orders and close its position reduce-only (the execution
    actor's `flatten`), then wait until every pair is flat; the quantities closed, per pair."""
    supervisor = state.require_supervisor()
    held = {h.pair: h for h in await RunStore(state.database.pool).holdings(run_id)}
    stuck = [pair for pair, slot in supervisor.slots.items() if pair in held and slot.state != "running"]
    if stuck:
        raise CommandError(
            "not_running",
            f"{', '.join(stuck)} holds orders or a position but is not running (`ctl status`): `ctl reconcile` "
            "restarts it; or stop with --keep",
        )
    # Every running pair is halted and flattened, not only those holding something when asked: a pair
    # with nothing yet may have an opening order on its way, which would fill after the stop (found by CI).
    slots = supervisor.running(None)
    await asyncio.gather(
        *(_call(_actors(state, slot).risk.pause("run_stopping", False, wait_sec=CALL_TIMEOUT_SEC)) for slot in slots)
    )
    await _close_positions(state, slots, wait_sec)
    return {pair: str(held[pair].position) for pair in held if held[pair].is_open}


async def _close_positions(
    state: DaemonState, slots: list[Any], wait_sec: float, reason: str = "run_stopping"
) -> Sequence[Mapping[str, Any]]:
    """With the pairs already halted: cancel each one's opening orders and close its position reduce-only
    (`reason` recorded on the cancels), then wait until every one is flat; each pair's flatness
    (`ExecutionCore.flatness`). Refused `busy` while a decision planned before the halt is still on its
    way, `not_flat` past `wait_sec`."""
    pairs = [_actors(state, slot) for slot in slots]
    # A decision planned before the pause may still be on its way: it must reach execution before the
    # flatten, or its opening order would follow the close (and the pair count as flat with it working).
    settled = await asyncio.gather(
        *(_call(actors.risk.settled(SETTLE_SEC, wait_sec=CALL_TIMEOUT_SEC)) for actors in pairs)
    )
    if not all(settled):
        busy = ", ".join(slot.pair for slot, done in zip(slots, settled, strict=True) if not done)
        raise CommandError(
            "busy",
            f"{busy}: a decision planned before the pause is still on its way after {SETTLE_SEC:.0f} s; the pairs "
            "are HALTED, nothing was closed. Ask again",
        )
    views = await asyncio.gather(
        *(_call(actors.execution.flatten(reason, wait_sec=CALL_TIMEOUT_SEC)) for actors in pairs)
    )
    deadline = time.monotonic() + wait_sec
    while not all(view["flat"] for view in views):
        if time.monotonic() >= deadline:
            waiting = "; ".join(
                f"{view['pair']} {view['position']} (orders {', '.join(view['working_orders']) or '-'})"
                for view in views
                if not view["flat"]
            )
            raise CommandError(
                "not_flat",
                f"not flat after {wait_sec:.0f} s: {waiting}. The close orders are working (on paper they fill at "
                "the next candle's open); the pairs stay HALTED (`ctl resume` trades on). Ask again to wait until "
                "flat (`ctl --timeout 300 ...` waits longer)",
            )
        await asyncio.sleep(FLATTEN_POLL_SEC)
        views = await asyncio.gather(
            *(_call(_actors(state, slot).execution.flatness(wait_sec=CALL_TIMEOUT_SEC)) for slot in slots)
        )
    return views


async def close_all(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """`close-all PAIR|--all`, the emergency flatten: the pairs are paused first as `pause` does (stored,
    so they stay HALTED through a restart, reason `operator_close_all`), then each running pair's opening
    orders are cancelled and its position closed with a reduce-only market order (its protective stop
    stays on the venue until the position is gone); answers once every pair is flat. The run goes on,
    HALTED: `ctl resume` trades again. A pair that is not running keeps the pause and is named in
    `not_closed`, its position untouched (`ctl reconcile` restarts a FAULTED one; ask again)."""
    pair, every = _text(args, "pair"), _flag(args, "all")
    if (pair is None) == (not every):
        raise CommandError("bad_args", "give a pair or all, not both and not neither")
    wait = _wait_sec(args)
    _slots(state, pair)
    supervisor = state.require_supervisor()
    reason = _text(args, "reason") or "operator_close_all"
    desired = DesiredState("HALTED", reason)
    names = list(await supervisor.set_desired(pair, desired, "control-socket"))
    running = supervisor.running(pair)
    before = {
        slot.pair: await _call(_actors(state, slot).execution.flatness(wait_sec=CALL_TIMEOUT_SEC)) for slot in running
    }
    views = await _close_positions(state, running, wait, reason)
    not_closed = {
        name: f"the pair is {supervisor.slots[name].state}: its position is not closed; the pause applies when it "
        "is back, then ask again"
        for name in names
        if name not in before
    }
    answer: dict[str, object] = {
        "pairs": {view["pair"]: {"closed": before[view["pair"]]["position"], "flat": view["flat"]} for view in views},
        "flat": not not_closed,
        "reason": reason,
    }
    if not_closed:
        answer["not_closed"] = not_closed
    if any(name in supervisor.unsaved for name in names):
        answer["not_saved"] = "the database is unreachable: the pause is applied and is stored when it answers"
    return answer


async def backfill(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    pair = _text(args, "pair", required=True)
    interval = _text(args, "interval") or state.settings.run.interval
    if interval not in INTERVALS:
        raise CommandError("bad_args", f"unknown interval {interval!r}")
    bars = args.get("bars", 1440)
    if not isinstance(bars, int) or isinstance(bars, bool) or not 1 <= bars <= 100_000:
        raise CommandError("bad_args", "bars must be an integer from 1 to 100000")
    (slot,) = _slots(state, pair) or [None]
    if slot is None:
        raise CommandError("not_running", f"{pair} is not running")
    stored = await _call(_actors(state, slot).feed.backfill(interval, bars, wait_sec=CALL_TIMEOUT_SEC))
    return {"pair": pair, "interval": interval, "bars": bars, "stored": stored}


async def reconcile(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """A health pass and FAULTED pairs restarted, then each running pair's book reconciled with its venue
    (a live pair's orders, position and balance; a paper pair's book is its venue: nothing to compare)."""
    supervisor = state.require_supervisor()
    retried = await supervisor.retry_faulted()
    await supervisor.reconcile_once()
    reconciliations: dict[str, Mapping[str, Any]] = {}
    for slot in supervisor.running(None):
        try:
            execution = _actors(state, slot).execution
            reconciliations[slot.pair] = await _call(execution.reconcile(wait_sec=RECONCILE_TIMEOUT_SEC))
        except CommandError as error:
            reconciliations[slot.pair] = {"pair": slot.pair, "ok": False, "error": error.message}
    failed = sorted(pair for pair, result in reconciliations.items() if not result.get("ok"))
    return {
        "retried": retried,
        "pairs": {slot.pair: slot.state for slot in supervisor.slots.values()},
        "reconciliations": reconciliations,
        "failed": failed,
    }


async def _trade_slot(state: DaemonState, trade_id: uuid.UUID) -> Any:
    found = await OpsStore(state.database.pool).trade_pair(trade_id)
    if found is None:
        raise CommandError("not_found", f"no trade {trade_id}")
    run_id, pair, trade_status = found
    if str(run_id) != state.run_id:
        raise CommandError("not_running", f"trade {trade_id} belongs to run {run_id}, which is not active")
    slots = _slots(state, pair)
    if not slots:
        raise CommandError("not_running", f"{pair} is not running")
    return slots[0], trade_status


async def close_trade(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    trade_id = _uuid(args)
    slot, trade_status = await _trade_slot(state, trade_id)
    if trade_status in ("closed", "cancelled"):
        return {"trade": str(trade_id), "status": trade_status, "order": None}
    order = await _call(_actors(state, slot).execution.close_trade(str(trade_id), wait_sec=CALL_TIMEOUT_SEC))
    return {"trade": str(trade_id), "status": "closing", "order": order}


async def cancel_trade(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    trade_id = _uuid(args)
    slot, trade_status = await _trade_slot(state, trade_id)
    if trade_status in ("closed", "cancelled"):
        return {"trade": str(trade_id), "status": trade_status, "cancelled": []}
    cancelled = await _call(_actors(state, slot).execution.cancel_trade(str(trade_id), wait_sec=CALL_TIMEOUT_SEC))
    return {"trade": str(trade_id), "cancelled": cancelled}


async def secrets_rotate(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    """`tradingd secrets rotate`: the account's new key pair checked with a signed read, then swapped in
    (`daemon.secrets_rotation`); refused, naming why, when it fails any check. Never answers a key, only
    the new one's fingerprint."""
    api_key, secret_key = args.get("api_key"), args.get("secret_key")
    refusal = shape_refusal(api_key, secret_key)
    if refusal is not None:
        raise CommandError("bad_args", refusal)
    assert isinstance(api_key, str)
    assert isinstance(secret_key, str)
    register_secrets((api_key, secret_key))  # before anything could log them
    if state.settings.exchange.mode != "live":
        raise CommandError(
            "refused", "exchange.mode is paper: this daemon signs nothing with API keys, so there is nothing to rotate"
        )
    new = Credentials(api_key, secret_key)
    async with state.rotation:
        try:
            checked = await check_new_keys(state.settings.exchange, new)
        except RotationRefused as error:
            raise CommandError("refused", str(error)) from None
        done = await state.rotate_keys(new)
    return {"key": fingerprint(api_key), "account": checked.user_id, "old_keys": checked.old_keys, **done}


async def retry_queue(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    jobs = await RetryQueue(state.database.pool).jobs()
    return {"jobs": [job.summary() for job in jobs]}


async def alerts(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    limit = args.get("limit", 50)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise CommandError("bad_args", "limit must be an integer from 1 to 1000")
    rows = await OpsStore(state.database.pool).alerts(limit)
    return {
        "alerts": [
            {
                "id": alert.id,
                "raised_at": alert.raised_at.isoformat(),
                "severity": alert.severity,
                "kind": alert.kind,
                "pair": alert.pair,
                "message": alert.message,
                "trace_id": alert.trace_id,
                "delivery": alert.delivery + (f" ({', '.join(alert.delivered_to)})" if alert.delivered_to else ""),
            }
            for alert in rows
        ]
    }


async def shutdown(state: DaemonState, args: Mapping[str, object]) -> Mapping[str, object]:
    state.stop.set()
    return {"stopping": True}


COMMANDS: dict[str, Command] = {
    "status": status,
    "pause": pause,
    "resume": resume,
    "risk": risk,
    "runs": runs,
    "backfill": backfill,
    "reconcile": reconcile,
    "close-trade": close_trade,
    "cancel-trade": cancel_trade,
    "close-all": close_all,
    "secrets-rotate": secrets_rotate,
    "retry-queue": retry_queue,
    "alerts": alerts,
    "shutdown": shutdown,
}
