"""The execution actor's Ray shell: restores its stage (`pipeline.execution.stage`: the pure core, the
journal and the venue) in `ready()`, then records plans in order and tells the risk guard, the
policy and the account guard about every position change."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from actors.shell import ActorShell, Inbox, WorkerEnv, fatal
from actors.transport import AccountHandle, Peers, PolicyHandle, RiskHandle
from domain.fills import FillRules
from domain.messages import OrderPlan, PositionReport
from observability import get_logger
from pipeline.execution.core import ExecutionCore
from pipeline.execution.stage import ExecutionStage
from storage.checkpoints import CheckpointStore
from storage.journal import TradingJournal
from trading.context import PairContext

log = get_logger("tradingd.execution")
Operation = Callable[[], Awaitable[Any]]


class ExecutionActor(ActorShell):
    def __init__(self, env: WorkerEnv, context: PairContext, rules: FillRules) -> None:
        super().__init__(env)
        self.context = context
        self.rules = rules
        self.stage: ExecutionStage | None = None
        self.risk: RiskHandle | None = None
        self.policy: PolicyHandle | None = None
        self.account: AccountHandle | None = None
        self.inbox: Inbox[OrderPlan | tuple[Operation, asyncio.Future[Any]]] = Inbox("execution", self._handle, fatal)

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.risk, self.policy, self.account = peers.risk, peers.policy, peers.account
        if self.stage is None:
            self.database = await self.env.open_database()
            pool = self.database.pool
            stage = ExecutionStage(self.context, self.rules, TradingJournal(pool), CheckpointStore(pool))
            submitted = await stage.restore()
            self.stage = stage
            core = stage.core
            if submitted:
                log.warning("intents_submitted_after_restart", pair=self.context.pair, client_order_ids=submitted)
            if core.adopted is not None:
                log.warning("position_adopted", run_id=self.context.run_id, **core.adopted.to_json())
            self.inbox.start()
            log.info("actor_ready", role="execution", pair=self.context.pair, run_id=self.context.run_id)
        return {"pid": os.getpid(), "report": self._core().report()}

    def set_account(self, account: AccountHandle) -> None:
        """The supervisor restarted the account guard: its new handle."""
        self.account = account

    def report(self) -> PositionReport:
        return self._core().report()

    async def on_plan(self, plan: OrderPlan) -> None:
        self.inbox.put(plan)

    async def close_trade(self, trade_id: str) -> str:
        stage = self._stage()
        return str(await self._serialised(lambda: stage.close_trade(uuid.UUID(trade_id))))

    async def cancel_trade(self, trade_id: str) -> list[str]:
        stage = self._stage()
        cancelled: list[str] = await self._serialised(lambda: stage.cancel_trade(uuid.UUID(trade_id)))
        return cancelled

    async def flatten(self) -> dict[str, Any]:
        """`runs stop --flatten`: opening orders cancelled, the position closed reduce-only (see the core)."""
        flatness: dict[str, Any] = await self._serialised(self._stage().flatten)
        return flatness

    async def flatness(self) -> dict[str, Any]:
        return self._core().flatness()

    async def status(self) -> dict[str, Any]:
        core = self._core()
        return {**core.status(), "equity": str(core.equity()), "inbox": self.inbox.status()}

    # ---------------------------------------------------------------- internals

    def _stage(self) -> ExecutionStage:
        assert self.stage is not None, "ready() first"
        return self.stage

    def _core(self) -> ExecutionCore:
        return self._stage().core

    async def _serialised(self, operation: Operation) -> Any:
        """Run an operator action between plans, never during one."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inbox.put((operation, done))
        return await done

    async def _handle(self, message: OrderPlan | tuple[Operation, asyncio.Future[Any]]) -> None:
        core = self._core()
        if isinstance(message, tuple):
            operation, done = message
            try:
                done.set_result(await operation())
            except KeyError as error:  # an unknown trade: the operator is told, nothing changed
                done.set_exception(error)
                return
            except BaseException as error:  # the caller hears of it before the inbox ends the worker
                done.set_exception(error)
                raise
            self._tell(core.report())
            return
        recorded = await self._stage().on_plan(message)
        if recorded is None:
            self._tell(core.report())  # a plan decided before: the risk guard may drop what it kept for it
            return
        self._tell(recorded.report)
        for trade in recorded.closed_trades:
            if self.account is not None:  # in order: the circuit breaker counts losses in a row
                await self.account.trade_closed(
                    trade.net_pnl, self.context.pair, str(trade.id), message.decision.input.trace_id
                )
        log.info("decision", **recorded.log)

    def _tell(self, report: PositionReport) -> None:
        for peer in (self.risk, self.policy, self.account):
            if peer is not None:
                peer.report(report)
