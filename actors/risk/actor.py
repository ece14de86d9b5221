"""The risk guard's and the account guard's Ray shells."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ray

from actors.risk.account import AccountPolicy, AccountVerdict
from actors.risk.core import RiskCore
from actors.risk.desk import AccountDesk
from actors.risk.limits import RiskLimits
from actors.run_context import PairContext
from actors.shell import Inbox, WorkerEnv, fatal
from domain.fills import FillRules
from domain.messages import PolicyDecision, PositionReport
from domain.trading_state import StateChange
from observability import get_logger
from storage.database import Database
from storage.ops import OpsStore
from storage.risk import RiskStore
from storage.trading import Checkpoint, CheckpointStore

log = get_logger("tradingd.risk")
ROLE = "risk"


@ray.remote(num_cpus=0, max_restarts=0)
class RiskActor:
    """One pair's risk guard. Starts HALTED; `reconciled()` (after execution is ready) lifts that."""

    def __init__(
        self, env: WorkerEnv, context: PairContext, limits: RiskLimits, rules: FillRules, account: Any
    ) -> None:
        env.configure_logging()
        self.env = env
        self.context = context
        self.account = account
        self.core = RiskCore(context, limits, rules, self._ask_account)
        self.execution: Any = None
        self.database: Database | None = None
        self.checkpoints: CheckpointStore | None = None
        self.inbox: Inbox[PolicyDecision] = Inbox("risk", self._handle, fatal)

    async def ready(self, execution: Any) -> dict[str, Any]:
        self.execution = execution
        if self.database is None:
            self.database = await self.env.open_database()
            self.checkpoints = CheckpointStore(self.database.pool)
            saved = await self.checkpoints.load(self.context.actor_key(ROLE))
            if saved is not None:
                self.core.restore(dict(saved.state))
            self.core.on_report(await execution.report.remote())
            self.inbox.start()
            log.info("actor_ready", role=ROLE, pair=self.context.pair, **self.core.status())
        return {"pid": os.getpid(), **self.core.status()}

    def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), **self.inbox.status()}

    def set_peers(self, execution: Any, account: Any) -> None:
        self.execution, self.account = execution, account

    async def reconciled(self) -> str:
        await self._changed(self.core.reconciled())
        return self.core.trading_state

    async def pause(self, reason: str, reduce_only: bool = False) -> str:
        await self._changed(self.core.pause(reason, reduce_only=reduce_only))
        return self.core.trading_state

    async def resume(self) -> str:
        await self._changed(self.core.resume())
        return self.core.trading_state

    async def automatic(self, reason: str | None) -> str:
        """The supervisor's freshness check: a reason pauses (a stale source), None resumes."""
        await self._changed(self.core.automatic(reason))
        return self.core.trading_state

    async def source(self, stale: bool) -> str:
        await self._changed(self.core.source(stale))
        return self.core.trading_state

    def halt_for_shutdown(self) -> None:
        self.core.halt_for_shutdown()

    async def on_decision(self, decision: PolicyDecision) -> None:
        self.inbox.put(decision)

    def on_report(self, report: PositionReport) -> None:
        self.core.on_report(report)

    def status(self) -> dict[str, Any]:
        return {**self.core.status(), "inbox": self.inbox.status()}

    async def drain(self, timeout_sec: float) -> bool:
        return await self.inbox.drain(timeout_sec)

    async def close(self) -> None:
        await self.inbox.stop()
        if self.database is not None:
            await self.database.close()

    async def _handle(self, decision: PolicyDecision) -> None:
        held = self.core.held_target
        plan, change = await self.core.plan(decision)
        await self._changed(change, decision.input.trace_id)
        if self.core.held_target != held and change is None:
            await self._checkpoint()
        if not plan.risk.allowed:
            log.info(
                "order_denied",
                pair=self.context.pair,
                trace_id=decision.input.trace_id,
                reason=plan.risk.reason,
                details=dict(plan.risk.details),
            )
        await self.execution.on_plan.remote(plan)  # awaited: Ray does not keep the order of async calls

    async def _ask_account(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        verdict: AccountVerdict = await self.account.check.remote(pair, str(after), reduces_only)
        return verdict

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
        if self.checkpoints is not None:
            await self.checkpoints.save(
                Checkpoint(self.context.actor_key(ROLE), ROLE, self.context.pair, 1, 0, self.core.to_json())
            )


@ray.remote(num_cpus=0, max_restarts=0)
class AccountActor:
    """The account guard: one for the whole account, asked by every pair's risk guard."""

    def __init__(self, env: WorkerEnv, policy: AccountPolicy) -> None:
        env.configure_logging()
        self.env = env
        self.policy = policy
        self.desk: AccountDesk | None = None
        self.store: RiskStore | None = None
        self.database: Database | None = None

    async def ready(self) -> dict[str, Any]:
        if self.desk is None:
            self.database = await self.env.open_database()
            self.store = RiskStore(self.database.pool)
            self.desk = AccountDesk(self.policy, await self.store.account_state(), datetime.now(UTC))
            await self._save()
            log.info("actor_ready", role="account", **self.desk.summary())
        return {"pid": os.getpid(), **self.desk.summary()}

    def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid()}

    def check(self, pair: str, after: str, reduces_only: bool) -> AccountVerdict:
        return self._desk().check(pair, Decimal(after), reduces_only, datetime.now(UTC))

    def on_report(self, report: PositionReport) -> None:
        self._desk().on_report(report)

    async def trade_closed(self, net_pnl: str, pair: str, trade_id: str, trace_id: str | None = None) -> None:
        desk = self._desk()
        tripped = desk.trade_closed(Decimal(net_pnl), datetime.now(UTC))
        await self._save()
        if tripped:
            summary = desk.summary()
            log.critical("circuit_breaker_tripped", pair=pair, trade_id=trade_id, trace_id=trace_id, **summary)
            assert self.database is not None
            await OpsStore(self.database.pool).raise_alert(
                "critical",
                "circuit_breaker_tripped",
                f"the account is HALTED: {summary['breaker_reason']} (last: trade {trade_id} on {pair}); "
                "`resume` closes it after the cooldown",
                pair=pair,
                trace_id=trace_id,
                details={"trade_id": trade_id, "daily_pnl": summary["daily_pnl"]},
            )

    async def resume(self) -> str | None:
        refusal = self._desk().resume(datetime.now(UTC))
        if refusal is None:
            log.warning("circuit_breaker_closed", origin="operator")
        await self._save()
        return refusal

    def summary(self) -> dict[str, Any]:
        return self._desk().summary()

    async def save(self) -> None:
        await self._save()

    async def close(self) -> None:
        if self.database is not None:
            await self.database.close()

    def _desk(self) -> AccountDesk:
        assert self.desk is not None, "ready() first"
        return self.desk

    async def _save(self) -> None:
        assert self.store is not None
        await self.store.save_account_state(self._desk().row())
