"""The supervisor: one account guard, and for every pair of the run its five actors, started in
dependency order with readiness checks, kept alive by a reconcile loop, and kept at the operator's
desired state.

Start order, per pair (`actors.transport.START`): execution (restores its book, submits intents a crash
left unsent), risk guard (HALTED, restores its checkpoint), policy, feed (warms up the history, then
streams), feature actor (opens on the stored history and resumes after the last decision); then the
risk guard is told the operator's desired state, and only then learns that execution has reconciled
(which lifts the start-up halt), so a pair paused by the operator never trades on an older checkpoint.

Desired state: `set_desired` writes the operator's wish (ACTIVE, REDUCING or HALTED with its reason,
per pair or for the whole account) to the database first, then brings the running pairs to it; a pair
that is starting, restarting or FAULTED gets it when it is back, and so does every pair after a daemon
restart. The reconcile loop applies whatever a pair has not acknowledged yet.

Health: an actor that died (or whose feed stopped) fails its pair at once; an actor that does not answer
a ping in `health_timeout_sec` has missed it, and `health_misses` misses within `health_window_sec` fail
the pair. A failed pair's five actors are restarted together, after a backoff that doubles with each
restart in `restart_window_sec`: they share in-flight messages, and a restart from checkpoints is one
path for all of them. After `max_restarts` in the window the pair is FAULTED (logged, alerted, shown in
status) and left alone; the other pairs trade on. `reconcile` retries FAULTED pairs.

A start that failed only because something outside us was unavailable (the venue rate-limiting or down,
the database unreachable: `waiting_on`) is not a fault of the pair: it is tried again after the same
doubling backoff, for as long as it takes, without spending the restart budget (a 60 s database outage
or a 429 burst must not fault every pair). The first such failure is alerted (`pair_waiting`), and the
start that succeeds after it too (`pair_recovered`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from actors.shell import WorkerEnv
from actors.transport import (
    DRAIN,
    ROLES,
    START,
    AccountHandle,
    ActorUnavailable,
    PairActors,
    PairPlan,
    Peers,
    StageHandle,
    Transport,
    describe,
)
from config.settings import DaemonSettings
from daemon.progress_watch import ProgressWatch
from daemon.unsaved_desired import UnsavedDesiredFile, newer_than_stored
from domain.candles import interval_ms
from domain.errors import TemporaryVenueError
from exchange.bingx.rest import Credentials
from observability import get_logger
from observability.alert_outbox import PendingAlert
from pipeline.risk.account import AccountPolicy
from pipeline.risk.blocks import effective, not_running
from pipeline.risk.venue_equity import VenueEquitySource
from storage.availability import database_unreachable, within
from storage.desired_state import ACCOUNT, DesiredState

__all__ = ["ROLES", "DesiredStateNotSaved", "PairPlan", "PairSlot", "Supervisor", "describe"]

log = get_logger("tradingd.supervisor")

PairState = Literal["starting", "running", "restarting", "faulted", "stopped"]
AlertCallback = Callable[[str, str, str, str | None], Awaitable[None]]
"""(severity, kind, message, pair)"""
AdoptAlerts = Callable[[list[PendingAlert]], object]
"""Takes alerts an actor kept (its database writes failed) into the daemon's outbox: `AlertOutbox.adopt`."""
T = TypeVar("T")


DESIRED_SAVE_SEC = 5.0
"""A save of desired state gives up past this (a frozen database answers nothing for asyncpg's 60 s):
a pause is then applied and kept, a resume refused."""


class DesiredStateNotSaved(Exception):
    """A resume the database could not store, refused (the message says why the database did not answer)."""


class DesiredStates(Protocol):
    """Where desired state is kept (`storage.desired_state.DesiredStateStore`)."""

    async def load(self, run_id: uuid.UUID) -> dict[str, DesiredState]: ...

    async def save(
        self, run_id: uuid.UUID, states: Mapping[str, DesiredState], updated_by: str
    ) -> dict[str, DesiredState]: ...


@dataclass
class PairSlot:
    plan: PairPlan
    state: PairState = "starting"
    actors: PairActors | None = None
    pids: dict[str, int] = field(default_factory=dict)
    restarts: deque[float] = field(default_factory=deque)
    misses: dict[str, deque[float]] = field(default_factory=dict)
    """Each role's missed health pings (monotonic times) within `health_window_sec`."""
    last_error: str | None = None
    started_at: float | None = None
    task: asyncio.Task[None] | None = None
    stale: bool = False
    desired_version: int = 0
    """Goes up by one with every change of the pair's desired state."""
    applied_version: int = -1
    """The version the risk guard was last told (the pair is at its desired state when equal)."""
    risk_ready: bool = False
    """The risk guard of the actors now starting or running is ready (it can be told desired state)."""
    restarts_total: int = 0
    """Restarts since the daemon started (the metrics endpoint's counter; `restarts` is the window's)."""
    waiting_on: str | None = None
    """What the pair's last start waited for ("the venue", "the database"); None once it started."""
    waits: int = 0
    """Starts in a row that failed waiting on something outside (they back off, uncounted)."""

    @property
    def pair(self) -> str:
        return self.plan.context.pair


class Supervisor:
    def __init__(
        self,
        transport: Transport,
        env: WorkerEnv,
        account_policy: AccountPolicy,
        plans: list[PairPlan],
        settings: DaemonSettings,
        alert: AlertCallback,
        desired: DesiredStates,
        adopt_alerts: AdoptAlerts | None = None,
        unsaved_file: UnsavedDesiredFile | None = None,
        account_venue: VenueEquitySource | None = None,
    ) -> None:
        self.transport = transport
        self.account_venue = account_venue
        """On a live run, where the account guard reads the venue's equity."""
        self.adopt_alerts = adopt_alerts
        self.unsaved_file = unsaved_file
        self.env = env
        self.account_policy = account_policy
        self.settings = settings
        self.alert = alert
        self.store = desired
        self.slots = {plan.context.pair: PairSlot(plan) for plan in plans}
        self.run_id = uuid.UUID(plans[0].context.run_id) if plans else None
        self.desired: dict[str, DesiredState] = {}
        self.account: AccountHandle | None = None
        self._breaker_acted: str | None = None
        """The breaker trip (its time) whose orders were cancelled (`_act_on_breaker`)."""
        self.account_pid: int | None = None
        self.account_misses: deque[float] = deque()
        self.progress = ProgressWatch(settings.stall_after_sec)
        self.unsaved: dict[str, tuple[DesiredState, str]] = {}
        """Pauses applied while the database was unreachable, to be stored (scope -> (state, by)); on disk
        too (`unsaved_file`), so a crash before the database answers does not forget them."""
        self._lock = asyncio.Lock()
        self._stopping = False
        """Set first thing in `stop`: from then on no restart is scheduled or started (a reconcile pass
        that was waiting on pings when the stop began must not bring the pair back)."""

    # ---------------------------------------------------------------- start and stop

    async def start(self) -> None:
        if self.run_id is not None:
            self.desired = await self.store.load(self.run_id)
            self._recover_unsaved(self.run_id)
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
        self._stopping = True

        def left() -> float:
            return max(0.1, end - time.monotonic())

        for slot in self.slots.values():
            if slot.task is not None:
                slot.task.cancel()
        running = [(slot, slot.actors) for slot in self.slots.values() if slot.actors is not None]
        for _, actors in running:
            actors.risk.halt_for_shutdown()
        clean = True
        for role in DRAIN:
            stages = [_stage(actors[role]) for _, actors in running]
            drained = await _quietly([stage.drain(left(), wait_sec=left()) for stage in stages], False)
            clean = clean and all(drained)
        for role in reversed(ROLES):
            await _quietly([actors[role].close(wait_sec=left()) for _, actors in running], None)
        if self.account is not None:
            await _quietly([self.account.save(wait_sec=5.0), self.account.close(wait_sec=5.0)], None)
        for slot, _ in running:
            self._kill(slot)
            slot.state = "stopped"
        for slot in self.slots.values():
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()  # scheduled while the stop ran (it is refused now, but be sure)
            if slot.state in ("starting", "restarting"):
                self._kill(slot)
                slot.state = "stopped"
        if self.account is not None:
            self.account.kill()
        return clean

    async def _start_account(self) -> None:
        self.account = self.transport.account(self.env, self.account_policy, self.account_venue)
        self.account_misses.clear()
        ready = await self._call(self.account.ready(Peers(), wait_sec=self._timeout(False)), "account ready")
        self.account_pid = ready["pid"]

    async def _start_pair(self, slot: PairSlot) -> None:
        plan = slot.plan
        slot.state = "starting"
        slot.misses.clear()
        slot.applied_version = -1  # new actors: none has been told anything yet
        actors = self.transport.pair(self.env, plan)
        slot.actors = actors
        try:
            for step in START:
                peers = actors.peers(step.peers, self.account)
                ready = await self._call(actors[step.role].ready(peers, wait_sec=self._timeout(step.slow)), step.what)
                slot.pids[step.role] = ready["pid"]
                if step.role == "execution" and self.account is not None:
                    self.account.report(ready["report"])
                slot.risk_ready = slot.risk_ready or step.role == "risk"
            # The operator's desired state before the start-up halt is lifted: it wins over the checkpoint
            # (from here on, a command applies it at once too).
            while slot.applied_version != slot.desired_version:
                await self._apply_desired(slot, actors, wait_sec=self._timeout(False))
            trading_state = await self._call(actors.risk.reconciled(wait_sec=self._timeout(False)), "reconciled")
        except BaseException:
            self._kill(slot)
            raise
        slot.state = "running"
        slot.started_at = time.monotonic()
        log.info(
            "pair_started",
            pair=plan.context.pair,
            run_id=plan.context.run_id,
            trading_state=trading_state,
            desired=self.desired_of(slot.pair).to_json(),
            pids=slot.pids,
        )

    def _timeout(self, slow: bool) -> float:
        """A start-up step: a cold worker on a busy machine takes seconds (16 pairs start 80 at once)."""
        return self.settings.start_timeout_sec * (2 if slow else 1)

    def _kill(self, slot: PairSlot) -> None:
        if slot.actors is not None:
            slot.actors.kill()
        slot.actors = None
        slot.risk_ready = False

    async def _call(self, answer: Awaitable[T], what: str) -> T:
        try:
            return await answer
        except ActorUnavailable as error:
            if error.failure == "late":
                raise TimeoutError(f"{what} did not answer: {error.detail}") from None
            raise

    # ---------------------------------------------------------------- desired state

    def _desired_now(self, scope: str) -> DesiredState:
        """The scope's own desired state as it holds now (ACTIVE when nothing was asked of it)."""
        return self.desired.get(scope) or DesiredState("ACTIVE")

    def desired_of(self, pair: str) -> DesiredState:
        """The pair's desired state: its own, else the account's, else ACTIVE (nothing asked yet)."""
        return self.desired.get(pair) or self.desired.get(ACCOUNT) or DesiredState("ACTIVE")

    async def set_desired(self, pair: str | None, desired: DesiredState, by: str) -> dict[str, str | None]:
        """The operator's command: stored first, then applied to the running pairs (the others get it when
        they are back). Each named pair's trading state now, None for one that is not running."""
        if pair is not None and pair not in self.slots:
            raise KeyError(pair)
        targets = [pair] if pair is not None else list(self.slots)
        scopes = dict.fromkeys(targets, desired)
        if pair is None:
            scopes[ACCOUNT] = desired
        if self.run_id is not None:
            scopes = await self._save_desired(scopes, by)
        self.desired.update(scopes)
        slots = [self.slots[name] for name in targets]
        for slot in slots:
            slot.desired_version += 1
        running = [
            (slot, slot.actors)
            for slot in slots
            if (slot.state == "running" or slot.risk_ready) and slot.actors is not None
        ]
        answers = await asyncio.gather(
            *(self._apply_desired(slot, actors, wait_sec=self.settings.health_timeout_sec) for slot, actors in running),
            return_exceptions=True,
        )
        states: dict[str, str | None] = {slot.pair: None for slot in slots}
        for (slot, _), answer in zip(running, answers, strict=True):
            if isinstance(answer, ActorUnavailable):  # the reconcile loop tries again, or the restart applies it
                log.warning("desired_state_not_applied", pair=slot.pair, error=describe(answer))
            elif isinstance(answer, BaseException):
                raise answer
            else:
                states[slot.pair] = answer
        return states

    async def _save_desired(self, scopes: dict[str, DesiredState], by: str) -> dict[str, DesiredState]:
        """Store the scopes' desired states. With the database unreachable a pause (HALTED, REDUCING) is
        applied all the same and kept to be stored by the reconcile loop, since stopping new entries must
        not wait on the database; a resume is refused (`DesiredStateNotSaved`): trading again is never
        ordered on a wish that a restart would forget."""
        assert self.run_id is not None
        try:
            stored = await within(self.store.save(self.run_id, scopes, by), DESIRED_SAVE_SEC, "the desired state")
        except Exception as error:
            if not database_unreachable(error):
                raise
            if any(state.trading_state == "ACTIVE" for state in scopes.values()):
                if isinstance(error, TimeoutError):
                    # A frozen database may still commit the refused resume when it thaws: what holds now
                    # is stored again after it by the reconcile loop, so a restart cannot revive it.
                    for scope in scopes:
                        self.unsaved.setdefault(scope, (self._desired_now(scope), by))
                    self._unsaved_changed()
                raise DesiredStateNotSaved(describe(error)) from None
            now = datetime.now(UTC)
            kept = {scope: DesiredState(state.trading_state, state.reason, now, by) for scope, state in scopes.items()}
            self.unsaved.update({scope: (state, by) for scope, state in kept.items()})
            self._unsaved_changed()
            log.error("desired_state_not_saved", scopes=sorted(kept), error=describe(error))
            return kept
        if any(scope in self.unsaved for scope in stored):
            for scope in stored:
                self.unsaved.pop(scope, None)
            self._unsaved_changed()
        return stored

    async def _save_unsaved(self) -> None:
        """The reconcile loop: store the pauses an outage kept (the newest wish of each scope)."""
        if not self.unsaved or self.run_id is None:
            return
        pending = dict(self.unsaved)
        try:
            for by in {by for _, by in pending.values()}:
                batch = {s: state for s, (state, b) in pending.items() if b == by}
                await within(self.store.save(self.run_id, batch, by), DESIRED_SAVE_SEC, "the kept desired state")
        except Exception as error:
            if not database_unreachable(error):
                log.error("desired_state_not_saved", scopes=sorted(pending), error=describe(error))
            return
        for scope, kept in pending.items():
            if self.unsaved.get(scope) == kept:
                del self.unsaved[scope]
        self._unsaved_changed()
        log.info("desired_state_saved", scopes=sorted(pending))

    def _unsaved_changed(self) -> None:
        if self.unsaved_file is not None and self.run_id is not None:
            self.unsaved_file.write(self.run_id, self.unsaved)

    def _recover_unsaved(self, run_id: uuid.UUID) -> None:
        """At start: pauses a previous process applied and could not store (it crashed before the database
        answered) hold again, and are stored by the reconcile loop; a row stored after them wins."""
        if self.unsaved_file is None:
            return
        recovered = newer_than_stored(self.unsaved_file.read(run_id), self.desired)
        if not recovered:
            self._unsaved_changed()  # nothing left to keep: the file goes
            return
        self.unsaved.update(recovered)
        self.desired.update({scope: state for scope, (state, _) in recovered.items()})
        self._unsaved_changed()
        log.warning(
            "desired_state_recovered",
            scopes={scope: state.trading_state for scope, (state, _) in sorted(recovered.items())},
        )

    async def _apply_desired(self, slot: PairSlot, actors: PairActors, *, wait_sec: float) -> str | None:
        """Tell the pair's risk guard its desired state (unless nothing was ever asked: the checkpoint
        of a run from before desired state stands); its trading state then."""
        version = slot.desired_version
        if slot.pair not in self.desired and ACCOUNT not in self.desired:
            slot.applied_version = version
            return None
        desired = self.desired_of(slot.pair)
        state = await actors.risk.operator(desired.trading_state, desired.reason, wait_sec=wait_sec)
        slot.applied_version = version
        return state

    # ---------------------------------------------------------------- the reconcile loop

    async def reconcile_once(self) -> None:
        """Health-check every running pair and the account guard; restart what failed; bring every
        running pair to its desired state."""
        async with self._lock:
            await self._save_unsaved()
            if self.account is not None and not await self._account_healthy(self.account):
                await self._restart_account()
            await self._act_on_breaker()
            for slot in self.slots.values():
                actors = slot.actors
                if self._stopping:
                    return  # a stop began while this pass waited: it owns the actors now
                if slot.state != "running" or actors is None:
                    continue
                failure = await self._health(slot, actors)
                if failure is not None:
                    role, error = failure
                    await self._failed(slot, role, error)
                    continue
                if self._stopping or slot.actors is not actors:
                    continue
                if slot.applied_version != slot.desired_version:
                    try:
                        await self._apply_desired(slot, actors, wait_sec=self.settings.health_timeout_sec)
                    except ActorUnavailable as error:
                        log.warning("desired_state_not_applied", pair=slot.pair, error=describe(error))
                await self._check_freshness(slot, actors)

    async def _act_on_breaker(self) -> None:
        """Once per trip of the account's circuit breaker: every running pair's opening orders cancelled,
        and with `account.flatten_on_trip` its position closed reduce-only (the protective stops stay).
        A pair that did not answer is asked again at the next pass."""
        if self.account is None:
            return
        try:
            summary = await self.account.summary(wait_sec=self.settings.health_timeout_sec)
        except ActorUnavailable:
            return
        tripped = summary.get("breaker_tripped_at")
        if not summary.get("breaker_open") or tripped is None:
            self._breaker_acted = None
            return
        if tripped == self._breaker_acted:
            return
        flatten = self.account_policy.flatten_on_trip
        slots = self.running(None)
        answers = await asyncio.gather(
            *(
                self.actors_of(slot).execution.breaker_tripped(flatten, wait_sec=self.settings.health_timeout_sec)
                for slot in slots
            ),
            return_exceptions=True,
        )
        failed = {
            slot.pair: describe(a) for slot, a in zip(slots, answers, strict=True) if isinstance(a, BaseException)
        }
        log.warning(
            "breaker_acted", tripped_at=tripped, flatten=flatten, pairs=[s.pair for s in slots if s.pair not in failed],
            failed=failed,
        )  # fmt: skip
        if not failed:
            self._breaker_acted = tripped

    def _missed(self, misses: deque[float]) -> bool:
        """One more missed ping: True when that makes `health_misses` within `health_window_sec`."""
        now = time.monotonic()
        misses.append(now)
        while misses and now - misses[0] > self.settings.health_window_sec:
            misses.popleft()
        return len(misses) >= self.settings.health_misses

    async def _health(self, slot: PairSlot, actors: PairActors) -> tuple[str, BaseException] | None:
        """The role that failed its pair, and why: dead, its feed stopped, or too many missed pings."""
        timeout = self.settings.health_timeout_sec
        answers = await asyncio.gather(*(actors[role].ping(wait_sec=timeout) for role in ROLES), return_exceptions=True)
        failed: tuple[str, BaseException] | None = None
        for role, answer in zip(ROLES, answers, strict=True):
            if isinstance(answer, ActorUnavailable):
                if answer.failure == "late":
                    misses = slot.misses.setdefault(role, deque())
                    too_many = self._missed(misses)
                    log.warning(
                        "health_ping_missed", pair=slot.pair, role=role, misses=len(misses), error=answer.detail
                    )
                    if too_many and failed is None:
                        failed = (
                            role,
                            RuntimeError(f"the {role} actor missed {len(misses)} health pings: {answer.detail}"),
                        )
                elif failed is None:
                    failed = role, RuntimeError(f"the {role} actor stopped answering ({answer.detail})")
            elif isinstance(answer, BaseException):
                raise answer
            else:
                self._adopt(answer)
                if role == "feed" and not answer.get("running", True) and failed is None:
                    failed = role, RuntimeError("the feed stopped")
        return failed

    def _adopt(self, answer: dict[str, Any]) -> None:
        kept = answer.get("kept_alerts")
        if kept and self.adopt_alerts is not None:
            self.adopt_alerts(kept)

    async def _account_healthy(self, account: AccountHandle) -> bool:
        try:
            self._adopt(await account.ping(wait_sec=self.settings.health_timeout_sec))
        except ActorUnavailable as error:
            if error.failure != "late":
                return False
            log.warning("health_ping_missed", role="account", error=error.detail)
            return not self._missed(self.account_misses)
        return True

    async def _check_freshness(self, slot: PairSlot, actors: PairActors) -> None:
        """A source silent for `stale_after_sec` pauses the pair (automatically); data resumes it. And the
        watchdog's view: the newest candle the feed holds beside the newest one decided."""
        timeout = self.settings.health_timeout_sec
        try:
            status, execution = await asyncio.gather(
                actors.feed.status(wait_sec=timeout), actors.execution.status(wait_sec=timeout)
            )
            topic = status["topics"].get(f"{slot.pair}@kline_{slot.plan.context.interval}", {})
            last_sequence = int(execution["last_sequence"])
            decided = last_sequence * interval_ms(slot.plan.context.interval) if last_sequence >= 0 else None
            self.progress.observe(slot.pair, topic.get("last_final_open_ms"), decided, time.monotonic())
            silent = topic.get("silent_sec")
            started = slot.started_at or time.monotonic()
            quiet = silent if silent is not None else time.monotonic() - started
            stale = quiet > self.settings.stale_after_sec
            # The risk guard logs and alerts the pause and its end (`pair_halted`, `pair_resumed`), once each.
            await actors.risk.source(stale, quiet, self.settings.stale_after_sec, wait_sec=timeout)
            slot.stale = stale
        except (ActorUnavailable, KeyError):
            return

    async def _failed(self, slot: PairSlot, role: str, error: BaseException) -> None:
        if self._stopping:
            log.info("pair_not_restarted", pair=slot.pair, role=role, reason="the supervisor is stopping")
            self._kill(slot)
            slot.state = "stopped"
            return
        now = time.monotonic()
        window = self.settings.restart_window_sec
        while slot.restarts and now - slot.restarts[0] > window:
            slot.restarts.popleft()
        slot.last_error = f"{role}: {describe(error)}"
        self._kill(slot)
        self.progress.forget(slot.pair)
        waiting = waiting_on(error)
        if waiting is not None:
            await self._wait(slot, waiting)
            return
        slot.waiting_on, slot.waits = None, 0
        if len(slot.restarts) >= self.settings.max_restarts:
            slot.state = "faulted"
            message = f"{slot.pair} FAULTED after {len(slot.restarts)} restarts in {window:.0f} s: {slot.last_error}"
            log.critical("pair_faulted", pair=slot.pair, restarts=len(slot.restarts), error=slot.last_error)
            await self._alert("critical", "pair_faulted", message, slot.pair)
            return
        slot.restarts.append(now)
        slot.restarts_total += 1
        delay = min(
            self.settings.restart_backoff_sec * 2 ** (len(slot.restarts) - 1), self.settings.restart_backoff_max_sec
        )
        slot.state = "restarting"
        log.error("pair_restarting", pair=slot.pair, role=role, error=slot.last_error, in_sec=delay)
        # Scheduled before the alert: a restart never waits on (or dies with) the database.
        slot.task = asyncio.get_running_loop().create_task(self._restart_later(slot, delay))
        await self._alert("warning", "actor_restarted", f"{slot.pair}: {slot.last_error}; restarting", slot.pair)

    async def _wait(self, slot: PairSlot, waiting: str) -> None:
        """A start that failed on something outside: try again later, without spending the budget."""
        first = slot.waiting_on is None
        slot.waiting_on = waiting
        slot.waits += 1
        backoff = self.settings.restart_backoff_sec * 2 ** min(slot.waits - 1, 30)
        delay = min(backoff, self.settings.restart_backoff_max_sec)
        slot.state = "restarting"
        log.warning("pair_waiting", pair=slot.pair, on=waiting, error=slot.last_error, attempt=slot.waits, in_sec=delay)
        slot.task = asyncio.get_running_loop().create_task(self._restart_later(slot, delay))
        if first:
            message = f"{slot.pair} cannot start until {waiting} answers: {slot.last_error}"
            await self._alert("warning", "pair_waiting", message, slot.pair)

    async def _restart_later(self, slot: PairSlot, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping:
            return
        try:
            await self._start_pair(slot)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            async with self._lock:
                await self._failed(slot, "restart", error)
            return
        if slot.waiting_on is not None:
            waited, slot.waiting_on, slot.waits = slot.waiting_on, None, 0
            log.info("pair_recovered", pair=slot.pair, waited_on=waited)
            await self._alert("info", "pair_recovered", f"{slot.pair} started again ({waited} answers)", slot.pair)

    async def _alert(self, severity: str, kind: str, message: str, pair: str | None) -> None:
        """An alert that cannot be raised is logged: recovery goes on whatever the alert sink does."""
        try:
            await self.alert(severity, kind, message, pair)
        except Exception as error:
            log.error("alert_not_raised", kind=kind, pair=pair, error=describe(error))

    async def _restart_account(self) -> None:
        log.error("account_guard_restarting")
        await self._alert("warning", "actor_restarted", "the account guard stopped answering; restarting", None)
        if self.account is not None:
            self.account.kill()
        await self._start_account()
        account = self.account
        assert account is not None
        for slot in self.slots.values():
            if slot.state == "running" and slot.actors is not None:
                slot.actors.risk.set_account(account)
                slot.actors.execution.set_account(account)
                try:
                    account.report(await slot.actors.execution.report_now(wait_sec=5))
                except ActorUnavailable:
                    continue

    def stalled(self) -> dict[str, float]:
        """Every running pair and how long it has held an undecided candle, when all of them have for
        `stall_after_sec` (see `daemon.progress_watch`); else empty."""
        running = [slot.pair for slot in self.slots.values() if slot.state == "running"]
        return self.progress.stalled(running, time.monotonic())

    async def rotate_credentials(
        self, api_key: str, secret_key: str, wait_sec: float
    ) -> tuple[list[str], dict[str, str]]:
        """The account's new keys (`tradingd secrets rotate`, checked already): every actor started from now
        on gets them (the plans, and the workers' redactor), and each running live pair's execution actor
        signs with them at once. The live pairs swapped, and those whose actor did not answer (they sign
        with the old keys until restarted)."""
        self.env = replace(self.env, secrets=(*self.env.secrets, api_key, secret_key))
        credentials = Credentials(api_key, secret_key)
        if self.account_venue is not None:
            self.account_venue = replace(self.account_venue, credentials=credentials)
        for slot in self.slots.values():
            live = slot.plan.live
            if live is not None:
                slot.plan = replace(slot.plan, live=replace(live, credentials=credentials))
        swapped: list[str] = []
        missed: dict[str, str] = {}
        if self.account is not None and self.account_venue is not None:
            try:
                await self.account.rotate_credentials(api_key, secret_key, wait_sec=wait_sec)
            except ActorUnavailable as error:
                missed["account"] = str(error)
        for slot in self.running(None):
            if slot.plan.live is None:
                continue
            try:
                await self.actors_of(slot).execution.rotate_credentials(api_key, secret_key, wait_sec=wait_sec)
            except ActorUnavailable as error:
                missed[slot.pair] = str(error)
            else:
                swapped.append(slot.pair)
        return swapped, missed

    async def retry_faulted(self) -> list[str]:
        """`reconcile`: FAULTED pairs get a fresh start (and a fresh restart budget)."""
        if self._stopping:
            return []
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

    def actors_of(self, slot: PairSlot) -> PairActors:
        """A running pair's actors (`running()` gives the pairs that have them)."""
        if slot.actors is None:
            raise ActorUnavailable("pair", "actors", "dead", f"{slot.pair} is {slot.state}")
        return slot.actors

    async def pair_status(self, slot: PairSlot) -> dict[str, Any]:
        actors = slot.actors
        status: dict[str, Any] = {
            "state": slot.state.upper() if slot.state == "faulted" else slot.state,
            "restarts": len(slot.restarts),
            "waiting_on": slot.waiting_on,
            "last_error": slot.last_error,
            "desired": {
                **self.desired_of(slot.pair).to_json(),
                "applied": slot.state == "running" and slot.applied_version == slot.desired_version,
            },
            "actors": {role: {"pid": slot.pids.get(role), "alive": actors is not None} for role in ROLES},
        }
        if slot.state != "running" or actors is None:
            status["trading_state"] = "HALTED"
            status["effective_state"] = f"HALTED ({slot.state})"
            status["blocked_by"] = [not_running(slot.state).to_json()]
            return status
        timeout = self.settings.health_timeout_sec
        account = self.account
        parts = await _quietly(
            [
                actors.risk.status(wait_sec=timeout),
                actors.execution.status(wait_sec=timeout),
                actors.features.status(wait_sec=timeout),
                actors.feed.status(wait_sec=timeout),
                *([] if account is None else [account.summary(wait_sec=timeout)]),
            ],
            None,
        )
        risk, execution, features, feed = parts[:4]
        account_view = parts[4] if len(parts) > 4 else None
        if risk is not None:
            # The state that governs orders: the strictest of the pair's own and the account's.
            blocked_by = list(risk["blocked_by"]) + list((account_view or {}).get("blocked_by", []))
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


def waiting_on(error: BaseException) -> str | None:
    """What a failed start waited for, when an actor's start failed only because the venue ("the
    venue") or the database ("the database") was unavailable; None for anything else (a fault of ours,
    an actor that died or did not answer in time)."""
    if not isinstance(error, ActorUnavailable) or error.failure != "failed" or error.cause is None:
        return None
    if isinstance(error.cause, TemporaryVenueError):
        return "the venue"
    if database_unreachable(error.cause):
        return "the database"
    return None


def _stage(handle: object) -> StageHandle:
    assert isinstance(handle, StageHandle)
    return handle


async def _quietly(calls: list[Awaitable[Any]], default: Any) -> list[Any]:
    """Await actor calls together; one that failed or was late gives `default`."""

    async def one(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except ActorUnavailable:
            return default

    return list(await asyncio.gather(*(one(call) for call in calls)))
