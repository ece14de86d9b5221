"""Policies with one interface: market features and position state in, a decision out.

- `ArtifactPolicy`: a trained agent's exported network. Its action is the most probable one; below the
  artifact's `decision_threshold` the decision is HOLD (keep the current position).
- `HoldPolicy`: never trades. `SignPolicy`: long when a feature is positive, short when negative
  (`momentum` on `ret_60`, `ema_cross` on `ema_ratio_9_21`). Honest baselines for every agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.limit_orders import EntryKind
from features.spec import FeatureSetSpec
from policies.artifact import PolicyArtifact
from policies.network import NumpyNetwork, greedy

Floats = npt.NDArray[np.float64]
BELOW_THRESHOLD = "below_decision_threshold"
HOLD_POLICY = "hold_policy"
NO_SIGNAL = "no_signal"


@dataclass(frozen=True)
class Decision:
    target: float | None
    """The target position as a signed fraction of the maximum; None: HOLD (keep the current one)."""
    confidence: float
    action: int | None = None
    """The policy's action index (an artifact's), when it has one."""
    hold_reason: str | None = None
    entry: EntryKind = "market"
    """How a position this decision opens or grows is entered (`domain.limit_orders`)."""

    @property
    def hold(self) -> bool:
        return self.target is None


class Policy(Protocol):
    name: str

    def decide(self, market_features: Floats, state: Floats) -> Decision: ...


class ArtifactPolicy:
    def __init__(
        self,
        artifact: PolicyArtifact,
        spec: FeatureSetSpec,
        decision_threshold: float | None = None,
        name: str | None = None,
    ) -> None:
        """`name`: `agent:<agent>@<version>` as the caller's record knows it (an artifact names its agent
        but not its version: the same training gives the same bytes whichever version it is)."""
        artifact.check_schema(spec)
        provenance = artifact.provenance
        version = f"@{provenance['version']}" if "version" in provenance else ""
        self.name = name or f"agent:{provenance.get('agent', '?')}{version}"
        self.artifact = artifact
        self.threshold = artifact.decision_threshold if decision_threshold is None else decision_threshold
        self._network = NumpyNetwork(artifact.layers)

    def inputs(self, market_features: Floats, state: Floats) -> npt.NDArray[np.float32]:
        """What the network sees: scaled market features, then the state features (rows or a vector)."""
        scaled = self.artifact.normalization.scale(market_features)
        return np.concatenate([scaled, state], axis=-1).astype(np.float32)

    def decide(self, market_features: Floats, state: Floats) -> Decision:
        return self.decide_inputs(self.inputs(market_features, state))

    def decide_inputs(self, inputs: npt.NDArray[np.float32]) -> Decision:
        """The decision rule on the network's inputs (an environment's observation): the most probable
        action, or HOLD below the threshold. Training's rollouts and every run decide with this."""
        action, confidence = greedy(self._network.logits(inputs))
        if confidence < self.threshold:
            return Decision(None, confidence, action, BELOW_THRESHOLD)
        return Decision(self.artifact.targets[action], confidence, action, entry=self.artifact.entry(action))

    def actions(self, observations: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        """Greedy actions for a batch of environment observations (already scaled)."""
        return np.argmax(self._network.logits(observations), axis=-1)


class HoldPolicy:
    name = "hold"

    def decide(self, market_features: Floats, state: Floats) -> Decision:
        return Decision(None, 1.0, hold_reason=HOLD_POLICY)


class SignPolicy:
    """Full long while `feature` > 0, full short while < 0; HOLD at exactly 0 or when it is missing."""

    def __init__(self, name: str, feature: str, spec: FeatureSetSpec) -> None:
        if feature not in spec.market_features:
            raise ValueError(f"baseline {name} needs the feature {feature}, which {spec.name} lacks")
        self.name = name
        self._index = spec.market_features.index(feature)

    def decide(self, market_features: Floats, state: Floats) -> Decision:
        value = float(market_features[self._index])
        if not np.isfinite(value) or value == 0:
            return Decision(None, 1.0, hold_reason=NO_SIGNAL)
        return Decision(1.0 if value > 0 else -1.0, 1.0)


BASELINES = ("hold", "momentum", "ema_cross")


def baseline(name: str, spec: FeatureSetSpec) -> Policy:
    if name == "hold":
        return HoldPolicy()
    if name == "momentum":
        return SignPolicy(name, "ret_60", spec)
    if name == "ema_cross":
        return SignPolicy(name, "ema_ratio_9_21", spec)
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
