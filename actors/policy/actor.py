"""The policy actor's Ray shell: a baseline, or a trained agent's verified artifact, deciding in order."""

from __future__ import annotations

import os
from typing import Any

from actors.shell import ActorShell, Inbox, WorkerEnv, fatal
from actors.transport import ExecutionHandle, Peers, RiskHandle
from domain.fills import FillRules
from domain.messages import MarketInput, PositionReport
from observability import get_logger
from pipeline.policy.core import PolicyCore
from pipeline.policy.source import PolicySource
from trading.context import PairContext

log = get_logger("tradingd.policy")


class PolicyActor(ActorShell):
    def __init__(
        self,
        env: WorkerEnv,
        context: PairContext,
        source: PolicySource,
        enforce_provenance: bool,
        rules: FillRules | None = None,
    ) -> None:
        """`rules`: the contract's fill rules, so the agent's position state sees the orders sent since
        execution's last report filled at the next open, as in training (the trading kernel's projection)."""
        super().__init__(env)
        self.context = context
        self.core = PolicyCore(
            source.load(context.feature_set),
            context,
            provenance=source.provenance,
            enforce_provenance=enforce_provenance,
            rules=rules,
        )
        self.risk: RiskHandle | None = None
        self.inbox: Inbox[MarketInput] = Inbox("policy", self._handle, fatal)

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.risk = peers.get("risk", RiskHandle)
        self.core.on_report(await peers.get("execution", ExecutionHandle).report_now())
        self.inbox.start()
        log.info("actor_ready", role="policy", pair=self.context.pair, policy=self.core.policy.name)
        return {"pid": os.getpid(), "policy": self.core.policy.name}

    async def on_input(self, market: MarketInput) -> None:
        self.inbox.put(market)

    def on_report(self, report: PositionReport) -> None:
        self.core.on_report(report)

    def status(self) -> dict[str, Any]:
        return {"policy": self.core.policy.name, "inbox": self.inbox.status()}

    async def _handle(self, market: MarketInput) -> None:
        assert self.risk is not None
        await self.risk.on_decision(self.core.decide(market))  # awaited: keeps the order
