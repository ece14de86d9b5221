"""Which policy a pair's run trades: a baseline by name, or a trained agent's artifact verified against the
checksum its version row holds. Pure: the daemon reads the row, the policy actor loads the policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.definitions import feature_set
from pipeline.policy.core import ModelProvenance
from policies.artifact import load_artifact
from policies.baselines import ArtifactPolicy, Policy, baseline


@dataclass(frozen=True)
class PolicySource:
    """A baseline by name, or an artifact's bytes with the checksum its row holds."""

    baseline: str | None = None
    artifact: bytes | None = None
    checksum: str | None = None
    provenance: ModelProvenance = field(default_factory=ModelProvenance)
    decision_threshold: float | None = None
    name: str | None = None
    """An agent's `agent:<agent>@<version>`, from its version record."""

    def load(self, feature_set_name: str) -> Policy:
        spec = feature_set(feature_set_name)
        if self.baseline is not None:
            return baseline(self.baseline, spec)
        if self.artifact is None or self.checksum is None:
            raise ValueError("a policy source is a baseline or an artifact with its checksum")
        artifact = load_artifact(self.artifact, self.checksum, spec)
        return ArtifactPolicy(artifact, spec, self.decision_threshold, self.name)
