"""The policy actor's core: market features and the position (as execution last reported it) in, a
decision with its provenance out.

A forced HOLD from the gates passes through untouched (the policy is not asked). With
`enforce_provenance` (RL_ENFORCE_PROVENANCE) a decision without its provenance (the input snapshot,
the registered feature-set version, and for an agent its artifact and dataset) is refused: HOLD with
`provenance_missing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from domain.fills import FillRules
from domain.limit_orders import EntryKind
from domain.messages import MarketInput, PolicyDecision, PositionReport
from policies.baselines import Policy
from trading.context import PairContext
from trading.kernel import Book, observation, project

PROVENANCE_MISSING = "provenance_missing"


@dataclass(frozen=True)
class ModelProvenance:
    """Where an agent's policy came from; all None for a baseline."""

    agent_version_id: str | None = None
    model_artifact_id: str | None = None
    dataset_version_id: str | None = None

    @property
    def is_agent(self) -> bool:
        return self.agent_version_id is not None


class PolicyCore:
    def __init__(
        self,
        policy: Policy,
        context: PairContext,
        *,
        provenance: ModelProvenance = ModelProvenance(),
        enforce_provenance: bool = False,
        rules: FillRules | None = None,
    ) -> None:
        """`rules`: the contract's fill rules, to see the working orders filled at the decision candle's
        open as the risk guard and training do; without them they count as filled at the last price."""
        self.policy = policy
        self.rules = rules
        self.context = context
        self.provenance = provenance
        self.enforce_provenance = enforce_provenance
        self.position: PositionReport | None = None

    def on_report(self, report: PositionReport) -> None:
        if self.position is None or report.version > self.position.version:
            self.position = report

    def decide(self, market: MarketInput) -> PolicyDecision:
        if market.forced_hold is not None:
            return self._decision(market, None, 1.0, None, market.forced_hold)
        if self.enforce_provenance and not self._provenance_complete(market):
            return self._decision(market, None, 1.0, None, PROVENANCE_MISSING)
        decision = self.policy.decide(np.asarray(market.features, dtype=np.float64), self._state(market))
        return self._decision(
            market, decision.target, decision.confidence, decision.action, decision.hold_reason, decision.entry
        )

    def _decision(
        self,
        market: MarketInput,
        target: float | None,
        confidence: float,
        action: int | None,
        hold: str | None,
        entry: EntryKind = "market",
    ) -> PolicyDecision:
        return PolicyDecision(
            market,
            self.policy.name,
            target,
            confidence,
            action,
            hold,
            self.provenance.agent_version_id,
            self.provenance.model_artifact_id,
            self.provenance.dataset_version_id,
            entry,
        )

    def _state(self, market: MarketInput) -> np.ndarray:
        """The position as the agent saw it in training (`trading.kernel.observation`): with the fill
        rules, the working orders filled at this candle's open, as the paper venue fills them;
        otherwise counted as filled without their cost."""
        mark = Decimal(repr(market.candle.close))
        report = self.position
        if report is None:
            return observation(Book(), mark, self.context.sizing)
        book = Book(report.quantity, report.entry_price, report.realised, report.fees, report.bars_held, report.working)
        if self.rules is not None and report.last_sequence < market.sequence:
            fills = [(report.working, Decimal(repr(market.candle.open)))]
            book = project(book, [fills], self.rules)
        return observation(book, mark, self.context.sizing)

    def _provenance_complete(self, market: MarketInput) -> bool:
        snapshot = market.snapshot
        if snapshot is None or snapshot.feature_set_version_id is None:
            return False
        if self.provenance.is_agent:
            return self.provenance.model_artifact_id is not None and self.provenance.dataset_version_id is not None
        return True
