"""The risk guard's and the account guard's Ray shells.

Every automatic halt is logged and alerted once when it begins and once when it clears: a pair's
automatic pause (`pair_halted` / `pair_resumed`: a failed gate, a stale source) by its risk guard, the
account's daily loss limit and circuit breaker (`account_halted` / `account_resumed`, and
`circuit_breaker_cooled_down` when `resume` may close the breaker) by the account guard."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from actors.shell import ActorShell, Inbox, WorkerEnv, fatal
from actors.transport import AccountHandle, ActorUnavailable, ExecutionHandle, Peers
from domain.errors import VenueError
from domain.fills import FillRules
from domain.messages import PolicyDecision, PositionReport
from domain.trading_state import StateChange, TradingState
from exchange.bingx.rest import Credentials
from observability import get_logger, register_secrets
from pipeline.risk.account import AccountPolicy, AccountVerdict
from pipeline.risk.announcements import account_announcement, pair_announcement
from pipeline.risk.blocks import ACCOUNT_UNAVAILABLE, AccountView, Transition
from pipeline.risk.core import CHECKPOINT_VERSION, RiskCore
from pipeline.risk.desk import AccountDesk
from pipeline.risk.venue_equity import VenueEquity, VenueEquitySource
from storage.checkpoints import ActorState, CheckpointStore
from storage.risk import RiskStore
from trading.context import PairContext
from trading.limits import RiskLimits

log = get_logger("tradingd.risk")
ROLE = "risk"


class RiskActor(ActorShell):
    """One pair's risk guard. Starts HALTED; `reconciled()` (after execution is ready) lifts that."""

    def __init__(self, env: WorkerEnv, context: PairContext, limits: RiskLimits, rules: FillRules) -> None:
        super().__init__(env)
        self.context = context
        self.account: AccountHandle | None = None
        self.core = RiskCore(context, limits, rules, _AccountLink(self))
        self.execution: ExecutionHandle | None = None
        self.state: ActorState | None = None
        self.inbox: Inbox[PolicyDecision] = Inbox("risk", self._handle, fatal)

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.execution = peers.get("execution", ExecutionHandle)
        self.account = peers.get("account", AccountHandle)
        if self.database is None:
            self.database = await self.env.open_database()
            self.state = ActorState(
                CheckpointStore(self.database.pool),
                self.context.actor_key(ROLE),
                ROLE,
                self.context.pair,
                CHECKPOINT_VERSION,
            )
            saved = await self.state.load()
            if saved is not None:
                self.core.restore(dict(saved.state))
            self.core.on_report(await self.execution.report_now())
            for state, reason in await self.execution.take_venue_holds():
                await self._changed(self.core.venue_outcome(state, reason))
            self.inbox.start()
            log.info("actor_ready", role=ROLE, pair=self.context.pair, **self.core.status())
        return {"pid": os.getpid(), **self.core.status()}

    def set_account(self, account: AccountHandle) -> None:
        """The supervisor restarted the account guard: its new handle."""
        self.account = account

    async def reconciled(self) -> str:
        await self._changed(self.core.reconciled())
        return self.core.trading_state

    async def operator(self, state: TradingState, reason: str | None) -> str:
        """The operator's desired state, as the supervisor keeps it (it wins over an older checkpoint)."""
        await self._changed(self.core.operator(state, reason))
        return self.core.trading_state

    async def pause(self, reason: str, reduce_only: bool = False) -> str:
        await self._changed(self.core.pause(reason, reduce_only=reduce_only))
        return self.core.trading_state

    async def venue_outcome(self, state: TradingState, reason: str) -> str:
        """Execution says an order's outcome on the live venue holds the pair (it alerts, with the trace)."""
        await self._changed(self.core.venue_outcome(state, reason))
        return self.core.trading_state

    async def settled(self, timeout_sec: float) -> bool:
        """Once the decision being planned now, if any, has gone on to execution: after a pause, nothing
        planned before it is still on its way (`runs stop --flatten` closes only after this). False on
        timeout."""
        return await self.inbox.between_messages(timeout_sec)

    async def resume(self, account: AccountView | None = None) -> dict[str, Any]:
        """The operator's resume of this pair; what governs its orders afterwards, and what still blocks
        them (the account's blocks as `account` gives them, or as the account guard tells now)."""
        await self._changed(self.core.resume())
        if account is None:
            account = await self._account().view()
        state, name, blocks = self.core.effective(account)
        return {
            "trading_state": state,
            "effective_state": name,
            "pair_state": self.core.trading_state,
            "blocked_by": [block.to_json() for block in blocks],
        }

    async def source(self, stale: bool, silent_sec: float | None = None, limit_sec: float | None = None) -> str:
        """The supervisor's freshness check: a stale source pauses the pair, data flowing resumes it."""
        await self._changed(self.core.source(stale, silent_sec, limit_sec))
        await self._announce(self.core.changes())
        return self.core.trading_state

    def halt_for_shutdown(self) -> None:
        self.core.halt_for_shutdown()

    async def on_decision(self, decision: PolicyDecision) -> None:
        self.inbox.put(decision)

    def on_report(self, report: PositionReport) -> None:
        self.core.on_report(report)

    def status(self) -> dict[str, Any]:
        return {**self.core.status(), "inbox": self.inbox.status()}

    def _account(self) -> AccountHandle:
        assert self.account is not None, "ready() first"
        return self.account

    async def _handle(self, decision: PolicyDecision) -> None:
        before = self.core.to_json()
        plan, change = await self.core.plan(decision)
        await self._changed(change, decision.input.trace_id)
        await self._announce(self.core.changes(), decision.input.trace_id)
        if change is None and self.core.to_json() != before:  # the held target or the resting entry moved
            await self._checkpoint()
        if not plan.risk.allowed:
            log.info(
                "order_denied",
                pair=self.context.pair,
                trace_id=decision.input.trace_id,
                reason=plan.risk.reason,
                details=dict(plan.risk.details),
            )
        assert self.execution is not None
        await self.execution.on_plan(plan)  # awaited: Ray does not keep the order of async calls

    async def _announce(self, transitions: list[Transition], trace_id: str | None = None) -> None:
        """An automatic pause began or cleared: one event and one alert each."""
        for transition in transitions:
            said = pair_announcement(self.context.pair, transition)
            log.warning(said.event, trace_id=trace_id, **said.fields)
            await self.raise_alert(
                said.severity,
                said.event,
                said.message,
                pair=self.context.pair,
                run_id=_uuid(self.context.run_id),
                trace_id=trace_id,
                details=said.details,
            )

    async def _changed(self, change: StateChange | None, trace_id: str | None = None) -> None:
        """Log a trading-state change and checkpoint it at once (it must survive a restart)."""
        if change is None:
            return
        log.warning(
            "trading_state_changed",
            pair=self.context.pair,
            before=change.before,
            after=change.after,
            reason=change.reason,
            origin=change.origin,
            trace_id=trace_id,
        )
        await self._checkpoint()

    async def _checkpoint(self) -> None:
        if self.state is not None:
            await self.state.save(self.core.to_json())


class _AccountLink:
    """The risk core's line to the account guard, through whichever handle the actor holds now."""

    def __init__(self, actor: RiskActor) -> None:
        self.actor = actor

    async def observe(self, at_ms: int) -> AccountView:
        try:
            return await self.actor._account().observe(at_ms)
        except ActorUnavailable:  # the supervisor is restarting the account guard: nothing new until it is back
            log.warning("account_guard_unavailable", pair=self.actor.context.pair)
            return AccountView("HALTED", (ACCOUNT_UNAVAILABLE,))

    async def check(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        return await self.actor._account().check(pair, after, reduces_only)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class AccountActor(ActorShell):
    """The account guard: one for the whole account, asked by every pair's risk guard."""

    def __init__(self, env: WorkerEnv, policy: AccountPolicy, venue: VenueEquitySource | None = None) -> None:
        """`venue`: on a live run, where the venue's equity is read (`pipeline.risk.venue_equity`), on which
        the drawdown breaker is then measured; None on paper (the pairs' marked value)."""
        super().__init__(env)
        self.policy = policy
        self.desk: AccountDesk | None = None
        self.store: RiskStore | None = None
        self.venue_source = venue
        self.venue: VenueEquity | None = None
        self._venue_failing = False
        self._watch: asyncio.Task[None] | None = None

    async def ready(self, peers: Peers | None = None) -> dict[str, Any]:
        if self.desk is None:
            self.database = await self.env.open_database()
            self.store = RiskStore(self.database.pool)
            source = "book" if self.venue_source is None else "venue"
            self.desk = AccountDesk(self.policy, await self.store.account_state(), datetime.now(UTC), source)
            await self._save()
            if self.venue_source is not None:
                self.venue = VenueEquity(self.venue_source)
                await self._read_venue()
                self._watch = asyncio.get_running_loop().create_task(self._watch_venue(), name="venue-equity")
            log.info("actor_ready", role="account", **self.desk.summary())
        return {"pid": os.getpid(), **self.desk.summary()}

    async def _watch_venue(self) -> None:
        """Read the venue's equity every `every_sec`, for as long as the actor lives."""
        assert self.venue_source is not None
        while True:
            await asyncio.sleep(self.venue_source.every_sec)
            try:
                await self._read_venue()
            except Exception as error:  # the database, say: the next reading tries again
                log.warning("venue_equity_not_recorded", error=f"{type(error).__name__}: {error}"[:300])

    async def _read_venue(self) -> None:
        """One reading: the desk measures the drawdown on it (and trips the breaker); a venue that does not
        answer is said once per outage (the drawdown stays measured on the last reading meanwhile)."""
        assert self.venue is not None
        desk = self._desk()
        try:
            read = await self.venue.read()
        except VenueError as error:
            if not self._venue_failing:
                self._venue_failing = True
                said = (
                    f"the account guard cannot read the venue's equity ({error}); the drawdown breaker keeps the "
                    "last reading until it can"
                )
                log.warning("venue_equity_unavailable", error=str(error)[:300])
                await self.raise_alert("warning", "venue_equity_unavailable", said[:500])
            return
        if self._venue_failing:
            self._venue_failing = False
            log.info("venue_equity_available", equity=str(read.equity))
        if desk.venue_equity(read.equity, read.balance, datetime.now(UTC)):
            await self._tripped(None, None, None)
        else:
            await self._save()

    async def rotate_credentials(self, api_key: str, secret_key: str) -> bool:
        """`tradingd secrets rotate`: the venue's equity is read with the new keys; False on paper."""
        register_secrets((api_key, secret_key))
        if self.venue_source is None:
            return False
        credentials = Credentials(api_key, secret_key)
        self.venue_source = replace(self.venue_source, credentials=credentials)
        if self.venue is not None:
            self.venue.use_credentials(credentials)
        return True

    async def stop_tasks(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self.venue is not None:
            await self.venue.close()
            self.venue = None

    async def observe(self, at_ms: int) -> AccountView:
        """A pair decides the candle closing at `at_ms` (venue time): the account's clock moves on, the
        trading day may roll over (a daily loss halt clears), and the view then."""
        desk = self._desk()
        day = desk.guard.state.trading_day
        view = desk.observe(datetime.fromtimestamp(at_ms / 1000, UTC))
        transitions = desk.changes()
        if transitions or desk.guard.state.trading_day != day:
            await self._save()
            await self._announce(transitions)
            view = desk.view()
        return view

    def view(self) -> AccountView:
        return self._desk().view()

    def check(self, pair: str, after: str, reduces_only: bool) -> AccountVerdict:
        desk = self._desk()
        return desk.check(pair, Decimal(after), reduces_only, desk.now)

    async def on_report(self, report: PositionReport) -> None:
        desk = self._desk()
        if desk.on_report(report):
            await self._tripped(report.pair, None, None)

    async def _tripped(self, pair: str | None, trade_id: str | None, trace_id: str | None) -> None:
        """The breaker tripped: saved, logged critical and announced (the supervisor's health pass then
        cancels the pairs' opening orders, and flattens them with `flatten_on_trip`)."""
        desk = self._desk()
        await self._save()
        log.critical("circuit_breaker_tripped", pair=pair, trade_id=trade_id, trace_id=trace_id, **desk.summary())
        await self._announce(desk.changes(), pair=pair, trade_id=trade_id, trace_id=trace_id)

    async def trade_closed(self, net_pnl: str, pair: str, trade_id: str, trace_id: str | None = None) -> None:
        desk = self._desk()
        if desk.trade_closed(Decimal(net_pnl), desk.now):
            await self._tripped(pair, trade_id, trace_id)
            return
        await self._save()
        await self._announce(desk.changes(), pair=pair, trade_id=trade_id, trace_id=trace_id)

    async def resume(self) -> dict[str, Any]:
        """The operator's resume: the breaker closes if it has cooled down; what still halts the account."""
        desk = self._desk()
        refusal = desk.resume(desk.now)
        await self._save()
        await self._announce(desk.changes())
        view = desk.view()
        return {
            "trading_state": view.trading_state,
            "refusal": refusal,
            "circuit_breaker": "open" if desk.guard.state.breaker_open else "closed",
            "view": view,
        }

    async def _announce(
        self,
        transitions: list[Transition],
        *,
        pair: str | None = None,
        trade_id: str | None = None,
        trace_id: str | None = None,
    ) -> None:
        """The account's halt began or cleared (or the breaker cooled down): one event and one alert each."""
        if not transitions:
            return
        market_time = self._desk().now.isoformat()
        for transition in transitions:
            said = account_announcement(transition, market_time, pair, trade_id)
            if said.level == "critical":
                log.critical(said.event, trace_id=trace_id, **said.fields)
            else:
                log.warning(said.event, **said.fields)
            await self.raise_alert(
                said.severity, said.event, said.message, pair=pair, trace_id=trace_id, details=said.details
            )

    def summary(self) -> dict[str, Any]:
        return self._desk().summary()

    async def save(self) -> None:
        await self._save()

    def _desk(self) -> AccountDesk:
        assert self.desk is not None, "ready() first"
        return self.desk

    async def _save(self) -> None:
        assert self.store is not None
        await self.store.save_account_state(self._desk().row())
