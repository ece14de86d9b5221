"""What a feature set is: its ordered feature names, parameters and warm-up, and the schema hash that
ties a trained model to exactly this definition (names, order, parameters, window lengths).

A model trained on one schema must never be fed another: the hash is recorded in
`feature_set_versions` and with every dataset and artifact, and compared at load time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

STATE_FEATURES = ("position_side", "position_size", "unrealized_pnl", "time_in_position")
"""Appended after the market features by whoever holds the position (the environment in training,
the policy actor live): side -1/0/1, size as a fraction of the maximum position, unrealised PnL as a
fraction of equity, and bars since entry divided by 1440."""


@dataclass(frozen=True)
class FeatureSetSpec:
    name: str
    market_features: tuple[str, ...]
    parameters: Mapping[str, int | float]
    warmup_bars: int
    """Candles an engine is opened with before its features are trusted: enough for every window, and
    for every exponential recursion (EMA, Wilder smoothing) to forget its seed to the last bit."""
    critical: frozenset[str]
    """Features whose absence forces a HOLD (counted against `RL_FEATURE_MAX_MISSING_CRITICAL`)."""
    state_features: tuple[str, ...] = field(default=STATE_FEATURES)

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"feature set {self.name} names a feature twice")
        if not self.critical <= set(self.market_features):
            raise ValueError(f"feature set {self.name}: critical features must be market features")

    @property
    def names(self) -> tuple[str, ...]:
        return self.market_features + self.state_features

    def schema(self) -> dict[str, object]:
        return {
            "name": self.name,
            "features": list(self.names),
            "parameters": dict(sorted(self.parameters.items())),
            "warmup_bars": self.warmup_bars,
        }

    @property
    def schema_hash(self) -> str:
        canonical = json.dumps(self.schema(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()
