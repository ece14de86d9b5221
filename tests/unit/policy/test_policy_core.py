"""The policy actor's core: gates' forced HOLDs pass through, provenance is enforced when asked, the
position as execution reported it becomes the state features, and the decision carries its model ids."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from domain.candles import Candle
from domain.messages import InputSnapshot, MarketInput, PositionReport
from features.definitions import feature_set
from pipeline.policy.core import PROVENANCE_MISSING, ModelProvenance, PolicyCore
from policies.baselines import Decision, HoldPolicy, baseline
from trading.context import PairContext

SPEC = feature_set("v1")
CONTEXT = PairContext("run", "BTC-USDT", "1m", "paper", "v1", "baseline:momentum", Decimal(10_000), Decimal("0.5"))


def market(ret_60: float, *, forced: str | None = None, fsv: str | None = "fsv-1") -> MarketInput:
    values = [0.0] * len(SPEC.market_features)
    values[SPEC.market_features.index("ret_60")] = ret_60
    candle = Candle("BTC-USDT", "1m", 60_000, 100.0, 101.0, 99.0, 100.0, 1.0)
    snapshot = InputSnapshot(0, 60_000, 2, "c", "f", "v1", fsv, SPEC.market_features)
    return MarketInput("run", "BTC-USDT", "1m", 1, "t", candle, tuple(values), forced, {}, snapshot, 0.0)


class Recorder:
    """A policy that remembers what it was shown."""

    name = "recorder"

    def __init__(self) -> None:
        self.states: list[np.ndarray] = []

    def decide(self, market_features: np.ndarray, state: np.ndarray) -> Decision:
        self.states.append(state)
        return Decision(1.0, 0.9, 2)


def test_a_baseline_decides_and_a_forced_hold_passes_through() -> None:
    core = PolicyCore(baseline("momentum", SPEC), CONTEXT)
    assert core.decide(market(0.01)).target == 1.0
    assert core.decide(market(-0.01)).target == -1.0
    held = core.decide(market(0.01, forced="gap_in_window"))
    assert (held.target, held.hold_reason) == (None, "gap_in_window")
    assert PolicyCore(HoldPolicy(), CONTEXT).decide(market(0.01)).hold_reason == "hold_policy"


def test_provenance_is_enforced_when_asked() -> None:
    lax = PolicyCore(baseline("momentum", SPEC), CONTEXT)
    assert lax.decide(market(0.01, fsv=None)).target == 1.0
    strict = PolicyCore(baseline("momentum", SPEC), CONTEXT, enforce_provenance=True)
    assert strict.decide(market(0.01)).target == 1.0
    assert strict.decide(market(0.01, fsv=None)).hold_reason == PROVENANCE_MISSING
    agent = PolicyCore(
        baseline("momentum", SPEC),
        CONTEXT,
        provenance=ModelProvenance("version-1", None, "dataset-1"),
        enforce_provenance=True,
    )
    assert agent.decide(market(0.01)).hold_reason == PROVENANCE_MISSING  # no artifact id
    complete = PolicyCore(
        baseline("momentum", SPEC),
        CONTEXT,
        provenance=ModelProvenance("version-1", "artifact-1", "dataset-1"),
        enforce_provenance=True,
    )
    decision = complete.decide(market(0.01))
    assert (decision.target, decision.agent_version_id, decision.model_artifact_id) == (1.0, "version-1", "artifact-1")


def test_the_reported_position_becomes_the_state_features() -> None:
    policy = Recorder()
    core = PolicyCore(policy, CONTEXT)
    core.decide(market(0.0))
    np.testing.assert_array_equal(policy.states[-1], [0.0, 0.0, 0.0, 0.0])
    # long 20 at 90 (+200 unrealised at 100), 5 more working; realised 50, fees 10
    report = PositionReport(
        "BTC-USDT", Decimal(20), Decimal(90), Decimal(5), 1, Decimal(100), Decimal(50), Decimal(10), 144, 2
    )
    core.on_report(report)
    core.on_report(
        PositionReport("BTC-USDT", Decimal(0), Decimal(0), Decimal(0), 0, Decimal(1), Decimal(0), Decimal(0), 0, 1)
    )
    core.decide(market(0.0))
    equity = 10_000 + 50 - 10 + 200
    np.testing.assert_allclose(policy.states[-1], [1.0, 25 * 100 / (equity * 0.5), 200 / equity, 0.1])
