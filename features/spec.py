"""What a feature set is: its ordered feature names, parameters and warm-up, and the schema hash that
ties a trained model to exactly this definition (names, order, parameters, window lengths).

A model trained on one schema must never be fed another: the hash is recorded in
`feature_set_versions` and with every dataset and artifact, and compared at load time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from domain.candles import interval_ms
from domain.market import Interval, parse_interval

STATE_FEATURES = ("position_side", "position_size", "unrealized_pnl", "time_in_position")
"""Appended after the market features by whoever holds the position (the environment in training,
the policy actor live): side -1/0/1, size as a fraction of the maximum position, unrealised PnL as a
fraction of equity, and bars since entry divided by 1440."""


CONTEXT_SEPARATOR = "+"


@dataclass(frozen=True)
class FeatureSetSpec:
    name: str
    """`v2`, or with context intervals `v2+5m+1h`: one string names the whole definition."""
    interval_features: tuple[str, ...]
    """Computed by the engine from the candles of the dataset's (or the live pair's) own interval."""
    parameters: Mapping[str, int | float]
    warmup_bars: int
    """Candles an engine is opened with before its features are trusted: enough for every window, and
    for every exponential recursion (EMA, Wilder smoothing) to forget its seed to the last bit."""
    critical: frozenset[str]
    """Features whose absence forces a HOLD (counted against `RL_FEATURE_MAX_MISSING_CRITICAL`)."""
    context_sources: tuple[str, ...] = ()
    """The interval features each context interval contributes (calendar encodings would repeat the
    base candle's own)."""
    context: tuple[Interval, ...] = ()
    """Higher intervals whose features sit beside the own ones, shortest first. Each is computed by
    the same engine over that interval's candles (with the same warm-up, in its own bars) and used
    only once its candle has closed (`features.context`)."""
    state_features: tuple[str, ...] = field(default=STATE_FEATURES)

    def __post_init__(self) -> None:
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError(f"feature set {self.name} names a feature twice")
        if not self.critical <= set(self.interval_features):
            raise ValueError(f"feature set {self.name}: critical features must be interval features")
        if not set(self.context_sources) <= set(self.interval_features):
            raise ValueError(f"feature set {self.name}: context sources must be interval features")

    @property
    def market_features(self) -> tuple[str, ...]:
        """Every feature derived from market data, in model-input order: own, then context."""
        return self.interval_features + self.context_features

    @property
    def context_features(self) -> tuple[str, ...]:
        return tuple(context_name(interval, source) for interval in self.context for source in self.context_sources)

    @property
    def names(self) -> tuple[str, ...]:
        return self.market_features + self.state_features

    def with_context(self, intervals: Iterable[Interval]) -> FeatureSetSpec:
        """This feature set with context intervals (none: itself). Context is added once, to a plain set."""
        ordered = tuple(sorted(set(intervals), key=_fixed_ms))
        if not ordered:
            return self
        if self.context:
            raise ValueError(f"feature set {self.name} already has context")
        if not self.context_sources:
            raise ValueError(f"feature set {self.name} has no features to offer as context")
        return replace(self, name=CONTEXT_SEPARATOR.join((self.name, *ordered)), context=ordered)

    def without_context(self) -> FeatureSetSpec:
        """The plain set the context engines run, one per context interval."""
        return replace(self, name=self.name.split(CONTEXT_SEPARATOR)[0], context=())

    def check_interval(self, interval: Interval) -> None:
        """Refuse a base interval that a context interval equals, or that a context interval does not
        divide (a shorter context) or is not a whole multiple of (a longer one)."""
        base = _fixed_ms(interval)
        for context in self.context:
            step = _fixed_ms(context)
            if step == base or (step > base and step % base) or (step < base and base % step):
                raise ValueError(
                    f"context interval {context} must be longer than the base interval {interval} and a "
                    f"whole multiple of it, or shorter and a whole fraction of it"
                )

    def schema(self) -> dict[str, object]:
        return {
            "name": self.name,
            "features": list(self.names),
            "parameters": dict(sorted(self.parameters.items())),
            "warmup_bars": self.warmup_bars,
            "context": list(self.context),
        }

    @property
    def schema_hash(self) -> str:
        canonical = json.dumps(self.schema(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def context_name(interval: Interval, feature: str) -> str:
    return f"ctx_{interval}_{feature}"


def split_name(name: str) -> tuple[str, tuple[Interval, ...]]:
    """`v2+5m+1h` -> (`v2`, (`5m`, `1h`)); ValueError on an unknown interval."""
    base, *context = name.split(CONTEXT_SEPARATOR)
    return base, tuple(parse_interval(part) for part in context)


def _fixed_ms(interval: Interval) -> int:
    try:
        return interval_ms(interval)
    except ValueError:
        raise ValueError(f"context interval {interval} has no fixed length") from None
