"""The supervisor: one account guard, and for every pair of the run its five actors, started in
dependency order with readiness checks and kept alive by a reconcile loop.

Start order, per pair: execution (restores its book, submits intents a crash left unsent), risk guard
(HALTED, restores the operator's pauses), policy, feature actor (created), feed (warms up the history,
then streams), feature actor (opens on the stored history and resumes after the last decision), and
finally the risk guard learns that execution has reconciled.

When an actor of a pair dies or stops answering its health check, the pair's five actors are
restarted together, after a backoff that doubles with each restart in `restart_window_sec`: they share
in-flight messages, and a restart from checkpoints is one path for all of them. After `max_restarts`
in the window the pair is FAULTED (logged, alerted, shown in status) and left alone; the other pairs
trade on. `reconcile` retries FAULTED pairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.exceptions import RayError

from actors.execution.actor import ExecutionActor
from actors.features.actor import FeatureActor, FeatureSource
from actors.feed.actor import FeedActor, FeedSource
from actors.policy.actor import PolicyActor, PolicySource
from actors.risk.account import AccountPolicy
from actors.risk.actor import AccountActor, RiskActor
from actors.risk.blocks import effective, not_running
from actors.run_context import PairContext
from actors.shell import WorkerEnv
from config.settings import DaemonSettings
from domain.fills import FillRules
from observability import get_logger
from trading.limits import RiskLimits

log = get_logger("tradingd.supervisor")

PairState = Literal["starting", "running", "restarting", "faulted", "stopped"]
ROLES = ("execution", "risk", "policy", "features", "feed")
AlertCallback = Callable[[str, str, str, str | None], Awaitable[None]]
"""(severity, kind, message, pair)"""


@dataclass(frozen=True)
class PairPlan:
    """Everything a pair's actors are built from."""

    context: PairContext
    rules: FillRules
    limits: RiskLimits
    policy: PolicySource
    features: FeatureSource
    feed: FeedSource
    enforce_provenance: bool


@dataclass
class PairSlot:
    plan: PairPlan
    state: PairState = "starting"
    actors: dict[str, Any] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    restarts: deque[float] = field(default_factory=deque)
    last_error: str | None = None
    started_at: float | None = None
    task: asyncio.Task[None] | None = None
    stale: bool = False

    @property
    def pair(self) -> str:
        return self.plan.context.pair


class Supervisor:
    def __init__(
        self,
        env: WorkerEnv,
        account_policy: AccountPolicy,
        plans: list[PairPlan],
        settings: DaemonSettings,
        alert: AlertCallback,
    ) -> None:
        self.env = env
        self.account_policy = account_policy
        self.settings = settings
        self.alert = alert
        self.slots = {plan.context.pair: PairSlot(plan) for plan in plans}
        self.account: Any = None
        self.account_pid: int | None = None
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------- start and stop

    async def start(self) -> None:
        await self._start_account()
        results = await asyncio.gather(
            *(self._start_pair(slot) for slot in self.slots.values()), return_exceptions=True
        )
        for slot, result in zip(self.slots.values(), results, strict=True):
            if isinstance(result, BaseException):
                await self._failed(slot, "start", result)

    async def stop(self, deadline_sec: float) -> bool:
        """Halt every pair, let in-flight decisions land, checkpoint, and stop the actors in reverse
        order; True when everything finished within the deadline."""
        end = time.monotonic() + deadline_sec
        for slot in self.slots.values():
            if slot.task is not None:
                slot.task.cancel()
        running = [slot for slot in self.slots.values() if slot.actors]
        for slot in running:
            if "risk" in slot.actors:  # a pair part-way through its start has no risk guard yet
                with contextlib.suppress(RayError):
                    slot.actors["risk"].halt_for_shutdown.remote()
        clean = True
        for role in ("features", "policy", "risk", "execution"):
            waits = [
                slot.actors[role].drain.remote(max(0.1, end - time.monotonic()))
                for slot in running
                if role in slot.actors
            ]
            drained = await _gather_quietly(waits, max(0.1, end - time.monotonic()))
            clean = clean and all(drained)
        for role in reversed(ROLES):
            closes = [slot.actors[role].close.remote() for slot in running if role in slot.actors]
            await _gather_quietly(closes, max(0.1, end - time.monotonic()))
        if self.account is not None:
            await _gather_quietly([self.account.save.remote(), self.account.close.remote()], 5.0)
        for slot in running:
            self._kill(slot)
            slot.state = "stopped"
        if self.account is not None:
            with contextlib.suppress(RayError):
                ray.kill(self.account)
        return clean

    async def _start_account(self) -> None:
        self.account = AccountActor.remote(self.env, self.account_policy)  # type: ignore[attr-defined]
        ready = await self._call(self.account.ready.remote(), "account ready")
        self.account_pid = ready["pid"]

    async def _start_pair(self, slot: PairSlot) -> None:
        plan = slot.plan
        env, context = self.env, plan.context
        slot.state = "starting"
        actors: dict[str, Any] = {}
        slot.actors = actors
        try:
            actors["execution"] = ExecutionActor.remote(env, context, plan.rules)  # type: ignore[attr-defined]
            ready = await self._call(actors["execution"].ready.remote(), "execution ready")
            slot.pids["execution"] = ready["pid"]
            report = ready["report"]
            actors["risk"] = RiskActor.remote(env, context, plan.limits, plan.rules, self.account)  # type: ignore[attr-defined]
            slot.pids["risk"] = (await self._call(actors["risk"].ready.remote(actors["execution"]), "risk ready"))[
                "pid"
            ]
            actors["policy"] = PolicyActor.remote(env, context, plan.policy, plan.enforce_provenance)  # type: ignore[attr-defined]
            slot.pids["policy"] = (
                await self._call(actors["policy"].ready.remote(actors["risk"], report), "policy ready")
            )["pid"]
            await self._call(
                actors["execution"].set_peers.remote(actors["risk"], actors["policy"], self.account), "wiring"
            )
            self.account.on_report.remote(report)
            actors["features"] = FeatureActor.remote(env, context, plan.features)  # type: ignore[attr-defined]
            actors["feed"] = FeedActor.remote(env, context.pair, plan.feed)  # type: ignore[attr-defined]
            slot.pids["feed"] = (
                await self._call(actors["feed"].ready.remote(actors["features"]), "feed warm-up", slow=True)
            )["pid"]
            slot.pids["features"] = (
                await self._call(actors["features"].ready.remote(actors["policy"]), "features ready", slow=True)
            )["pid"]
            state = await self._call(actors["risk"].reconciled.remote(), "reconciled")
        except BaseException:
            self._kill(slot)
            raise
        slot.state = "running"
        slot.started_at = time.monotonic()
        log.info("pair_started", pair=context.pair, run_id=context.run_id, trading_state=state, pids=slot.pids)

    def _kill(self, slot: PairSlot) -> None:
        for handle in slot.actors.values():
            with contextlib.suppress(RayError, ValueError):
                ray.kill(handle, no_restart=True)
        slot.actors = {}

    async def _call(self, ref: Any, what: str, *, slow: bool = False) -> Any:
        """A start-up step: a cold worker on a busy machine takes seconds (16 pairs start 80 at once)."""
        timeout = self.settings.start_timeout_sec * (2 if slow else 1)
        try:
            return await asyncio.wait_for(ref, timeout)
        except TimeoutError:
            raise TimeoutError(f"{what} did not answer within {timeout:.0f} s") from None

    # ---------------------------------------------------------------- the reconcile loop

    async def reconcile_once(self) -> None:
        """Health-check every running pair and the account guard; restart what failed."""
        async with self._lock:
            if self.account is not None and not await self._healthy(self.account):
                await self._restart_account()
            for slot in self.slots.values():
                if slot.state != "running":
                    continue
                dead = await self._dead_role(slot)
                if dead is not None:
                    await self._failed(slot, dead, RuntimeError(f"the {dead} actor stopped answering"))
                    continue
                await self._check_freshness(slot)

    async def _dead_role(self, slot: PairSlot) -> str | None:
        checks = {role: slot.actors[role].ping.remote() for role in ROLES if role in slot.actors}
        for role, ref in checks.items():
            try:
                answer = await asyncio.wait_for(ref, self.settings.health_timeout_sec)
            except (TimeoutError, RayError):
                return role
            if role == "feed" and not answer.get("running", True):
                return role
        return None

    async def _healthy(self, handle: Any) -> bool:
        try:
            await asyncio.wait_for(handle.ping.remote(), self.settings.health_timeout_sec)
        except (TimeoutError, RayError):
            return False
        return True

    async def _check_freshness(self, slot: PairSlot) -> None:
        """A source silent for `stale_after_sec` pauses the pair (automatically); data resumes it."""
        try:
            status = await asyncio.wait_for(slot.actors["feed"].status.remote(), self.settings.health_timeout_sec)
            topic = status["topics"].get(f"{slot.pair}@kline_{slot.plan.context.interval}", {})
            silent = topic.get("silent_sec")
            started = slot.started_at or time.monotonic()
            quiet = silent if silent is not None else time.monotonic() - started
            stale = quiet > self.settings.stale_after_sec
            # The risk guard logs and alerts the pause and its end (`pair_halted`, `pair_resumed`), once each.
            await asyncio.wait_for(
                slot.actors["risk"].source.remote(stale, quiet, self.settings.stale_after_sec),
                self.settings.health_timeout_sec,
            )
            slot.stale = stale
        except (TimeoutError, RayError, KeyError):
            return

    async def _failed(self, slot: PairSlot, role: str, error: BaseException) -> None:
        now = time.monotonic()
        window = self.settings.restart_window_sec
        while slot.restarts and now - slot.restarts[0] > window:
            slot.restarts.popleft()
        slot.last_error = f"{role}: {describe(error)}"
        self._kill(slot)
        if len(slot.restarts) >= self.settings.max_restarts:
            slot.state = "faulted"
            message = f"{slot.pair} FAULTED after {len(slot.restarts)} restarts in {window:.0f} s: {slot.last_error}"
            log.critical("pair_faulted", pair=slot.pair, restarts=len(slot.restarts), error=slot.last_error)
            await self.alert("critical", "pair_faulted", message, slot.pair)
            return
        slot.restarts.append(now)
        delay = min(
            self.settings.restart_backoff_sec * 2 ** (len(slot.restarts) - 1), self.settings.restart_backoff_max_sec
        )
        slot.state = "restarting"
        log.error("pair_restarting", pair=slot.pair, role=role, error=slot.last_error, in_sec=delay)
        await self.alert("warning", "actor_restarted", f"{slot.pair}: {slot.last_error}; restarting", slot.pair)
        slot.task = asyncio.get_running_loop().create_task(self._restart_later(slot, delay))

    async def _restart_later(self, slot: PairSlot, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            await self._start_pair(slot)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            async with self._lock:
                await self._failed(slot, "restart", error)

    async def _restart_account(self) -> None:
        log.error("account_guard_restarting")
        await self.alert("warning", "actor_restarted", "the account guard stopped answering; restarting", None)
        with contextlib.suppress(RayError):
            ray.kill(self.account, no_restart=True)
        await self._start_account()
        for slot in self.slots.values():
            if slot.state == "running":
                actors = slot.actors
                actors["risk"].set_peers.remote(actors["execution"], self.account)
                actors["execution"].set_peers.remote(actors["risk"], actors["policy"], self.account)
                with contextlib.suppress(RayError, TimeoutError):
                    report = await asyncio.wait_for(actors["execution"].report.remote(), 5)
                    self.account.on_report.remote(report)

    async def retry_faulted(self) -> list[str]:
        """`reconcile`: FAULTED pairs get a fresh start (and a fresh restart budget)."""
        retried = []
        for slot in self.slots.values():
            if slot.state == "faulted":
                slot.restarts.clear()
                slot.state = "restarting"
                slot.task = asyncio.get_running_loop().create_task(self._restart_later(slot, 0))
                retried.append(slot.pair)
        return retried

    # ---------------------------------------------------------------- operator views

    def running(self, pair: str | None) -> list[PairSlot]:
        if pair is not None and pair not in self.slots:
            raise KeyError(pair)
        return [s for s in self.slots.values() if (pair is None or s.pair == pair) and s.state == "running"]

    async def pair_status(self, slot: PairSlot) -> dict[str, Any]:
        status: dict[str, Any] = {
            "state": slot.state.upper() if slot.state == "faulted" else slot.state,
            "restarts": len(slot.restarts),
            "last_error": slot.last_error,
            "actors": {role: {"pid": slot.pids.get(role), "alive": role in slot.actors} for role in ROLES},
        }
        if slot.state != "running":
            status["trading_state"] = "HALTED"
            status["effective_state"] = f"HALTED ({slot.state})"
            status["blocked_by"] = [not_running(slot.state).to_json()]
            return status
        actors = slot.actors
        timeout = self.settings.health_timeout_sec
        parts = await _gather_quietly(
            [
                actors["risk"].status.remote(),
                actors["execution"].status.remote(),
                actors["features"].status.remote(),
                actors["feed"].status.remote(),
                self.account.summary.remote(),
            ],
            timeout,
            default=None,
        )
        risk, execution, features, feed, account = parts
        if risk is not None:
            # The state that governs orders: the strictest of the pair's own and the account's.
            blocked_by = list(risk["blocked_by"]) + list((account or {}).get("blocked_by", []))
            state, name = effective(risk["trading_state"], ((block["state"], block["cause"]) for block in blocked_by))
            status["trading_state"] = state
            status["effective_state"] = name
            status["blocked_by"] = blocked_by
            status["risk"] = risk
        if execution is not None:
            status["position"] = execution
        if features is not None:
            status["last_candle_open_ms"] = features["last_decided_open_ms"]
            status["features"] = features
        if feed is not None:
            topic = feed["topics"].get(f"{slot.pair}@kline_{slot.plan.context.interval}", {})
            status["lag_sec"] = topic.get("silent_sec")
            status["feed"] = feed
        return status


def describe(error: BaseException) -> str:
    """One line: a Ray task error's cause (its text holds the whole remote traceback)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:500]


async def _gather_quietly(refs: list[Any], wait_sec: float, default: Any = False) -> list[Any]:
    """Await Ray calls together; a failed or late one gives `default`."""

    async def one(ref: Any) -> Any:
        try:
            return await asyncio.wait_for(ref, wait_sec)
        except (TimeoutError, RayError):  # RayError covers a dead actor and Ray's own timeouts
            return default

    return list(await asyncio.gather(*(one(ref) for ref in refs)))
