"""The policy core: the artifact contract, the numpy network, decisions and baselines."""

from __future__ import annotations

import zipfile
from io import BytesIO

import numpy as np
import pytest

from features.definitions import V1, V2
from features.normalization import NormalizationStats
from policies.artifact import ArtifactError, Layer, PolicyArtifact, checksum, load_artifact
from policies.baselines import BELOW_THRESHOLD, ArtifactPolicy, HoldPolicy, baseline


def artifact(threshold: float = 0.5, seed: int = 0) -> PolicyArtifact:
    rng = np.random.default_rng(seed)
    inputs = len(V1.market_features) + len(V1.state_features)
    layers = (
        Layer(rng.normal(0, 0.3, (inputs, 8)).astype(np.float32), rng.normal(0, 0.1, 8).astype(np.float32), "tanh"),
        Layer(rng.normal(0, 1.0, (8, 3)).astype(np.float32), np.zeros(3, np.float32), "linear"),
    )
    stats = NormalizationStats.of(V1.market_features, rng.normal(0, 1, (100, len(V1.market_features))))
    return PolicyArtifact(
        layers, V1.name, V1.schema_hash, V1.market_features, V1.state_features, stats, (-1.0, 0.0, 1.0), threshold, {}
    )


def test_artifacts_round_trip_to_the_same_bytes_and_decisions() -> None:
    original = artifact()
    content = original.to_bytes()
    assert content == artifact().to_bytes(), "fixed timestamps: the same artifact, the same bytes"
    loaded = load_artifact(content, checksum(content), V1)
    features = np.random.default_rng(1).normal(0, 1, (50, len(V1.market_features)))
    state = np.zeros((50, 4))
    a, b = ArtifactPolicy(original, V1), ArtifactPolicy(loaded, V1)
    assert np.array_equal(a.actions(a.inputs(features, state)), b.actions(b.inputs(features, state)))
    assert a.decide(features[0], state[0]) == b.decide(features[0], state[0])


def test_decisions_below_the_threshold_hold() -> None:
    features = np.random.default_rng(2).normal(0, 1, (200, len(V1.market_features)))
    strict = ArtifactPolicy(artifact(threshold=0.999), V1)
    lenient = ArtifactPolicy(artifact(threshold=0.0), V1)
    decisions = [strict.decide(row, np.zeros(4)) for row in features]
    assert all(d.hold and d.hold_reason == BELOW_THRESHOLD for d in decisions if d.confidence < 0.999)
    acted = [lenient.decide(row, np.zeros(4)) for row in features]
    assert all(not d.hold and d.target == (-1.0, 0.0, 1.0)[d.action or 0] for d in acted)
    assert {d.target for d in acted} >= {-1.0, 1.0}
    overridden = ArtifactPolicy(artifact(threshold=0.0), V1, decision_threshold=1.0)
    assert overridden.decide(features[0], np.zeros(4)).hold


def test_malformed_artifacts_are_refused_with_the_reason() -> None:
    good = artifact().to_bytes()
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_artifact(good, "0" * 64)
    not_zip = b"not an artifact"
    with pytest.raises(ArtifactError, match="not a tradingd-policy/1 artifact"):
        load_artifact(not_zip, checksum(not_zip))
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata.json", '{"format": "other/9"}')
    other = buffer.getvalue()
    with pytest.raises(ArtifactError, match="unknown artifact format 'other/9'"):
        load_artifact(other, checksum(other))
    a = artifact()
    with pytest.raises(ArtifactError, match="outputs for 5 actions"):
        PolicyArtifact(a.layers, "v1", V1.schema_hash, V1.market_features, V1.state_features, a.normalization,
                       (-1.0, -0.5, 0.0, 0.5, 1.0), 0.5, {})  # fmt: skip
    with pytest.raises(ArtifactError, match="takes 20 inputs, not 35"):
        PolicyArtifact(a.layers, "v2", V2.schema_hash, V2.market_features, V2.state_features, a.normalization,
                       a.targets, 0.5, {})  # fmt: skip


def test_baselines_share_the_interface() -> None:
    features = np.zeros(len(V2.market_features))
    assert HoldPolicy().decide(features, np.zeros(4)).hold
    momentum, cross = baseline("momentum", V2), baseline("ema_cross", V2)
    features[V2.market_features.index("ret_60")] = 0.01
    features[V2.market_features.index("ema_ratio_9_21")] = -0.002
    assert (momentum.decide(features, np.zeros(4)).target, cross.decide(features, np.zeros(4)).target) == (1.0, -1.0)
    features[V2.market_features.index("ret_60")] = np.nan
    assert momentum.decide(features, np.zeros(4)).hold
    with pytest.raises(ValueError, match="needs the feature ema_ratio_9_21, which v1 lacks"):
        baseline("ema_cross", V1)
    with pytest.raises(ValueError, match="unknown baseline 'random'"):
        baseline("random", V1)
