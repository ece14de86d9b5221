"""The two gates between candles and a decision.

- The data-integrity gate judges a window of candles before features are computed from it: grid
  alignment, gaps, ordering, duplicates, invalid values, and drift against a second source.
- The feature-quality gate judges a feature vector: missing critical features, values far outside the
  distribution the model was trained on, and staleness. Failing it forces a HOLD.

Both return a `GateVerdict` whose reasons and details go into the decision's provenance. Pure: the
caller logs (`candles_unsorted`, ...) from the verdict's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from features.normalization import NormalizationStats
from features.spec import FeatureSetSpec

# Reasons, stable strings: dashboards and tests match on them.
UNALIGNED = "unaligned_candles"
GAP = "gap_in_window"
DUPLICATES_DISAGREE = "duplicates_disagree"
INVALID_VALUES = "invalid_candle_values"
SOURCE_DRIFT = "source_drift"
EMPTY = "empty_window"
MISSING_CRITICAL = "missing_critical_features"
OUT_OF_DISTRIBUTION = "out_of_distribution"
STALE = "stale_features"
UNSORTED_WARNING = "candles_unsorted"
DUPLICATED_WARNING = "candles_duplicated"


@dataclass(frozen=True)
class GateVerdict:
    gate: str
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.reasons

    @property
    def reason(self) -> str | None:
        """The first reason: what a forced HOLD is named after."""
        return self.reasons[0] if self.reasons else None

    def provenance(self) -> dict[str, object]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "details": self.details,
        }


@dataclass(frozen=True)
class IntegrityResult:
    verdict: GateVerdict
    window: CandleColumns
    """The window sorted and de-duplicated (what features may be computed from, if the verdict passed)."""


def check_integrity(
    window: CandleColumns, *, reference: CandleColumns | None = None, max_drift: float = 0.002
) -> IntegrityResult:
    """Judge a window of candles. `reference` holds the same interval's candles from a second source
    (the REST candle beside the websocket one, or another venue); an OHLC value more than `max_drift`
    (relative) away from the reference's for the same open time fails the window."""
    reasons: list[str] = []
    warnings: list[str] = []
    details: dict[str, object] = {"candles": len(window)}
    if len(window) == 0:
        return IntegrityResult(GateVerdict("integrity", (EMPTY,), (), details), window)
    if not window.is_sorted():
        warnings.append(UNSORTED_WARNING)
    repaired = window.sorted_unique()
    duplicates = len(window) - len(repaired)
    if duplicates:
        details["duplicates"] = duplicates
        if _duplicates_disagree(window, repaired):
            reasons.append(DUPLICATES_DISAGREE)
        else:
            warnings.append(DUPLICATED_WARNING)
    times = repaired.open_time_ms
    details["first_open_ms"], details["last_open_ms"] = int(times[0]), int(times[-1])
    problems = repaired.problems()
    unaligned = [row for row, reason in problems if "not aligned" in reason]
    if unaligned:
        reasons.append(UNALIGNED)
        details["unaligned_open_ms"] = [int(times[row]) for row in unaligned[:5]]
    invalid = [(row, reason) for row, reason in problems if "not aligned" not in reason]
    if invalid:
        reasons.append(INVALID_VALUES)
        details["invalid"] = [{"open_ms": int(times[row]), "reason": reason} for row, reason in invalid[:5]]
    if repaired.interval != "1M" and not unaligned:
        step = interval_ms(repaired.interval)
        jumps = np.flatnonzero(np.diff(times) > step)
        if len(jumps):
            reasons.append(GAP)
            details["missing_candles"] = int(((np.diff(times) // step) - 1)[jumps].sum())
            details["first_missing_ms"] = int(times[jumps[0]] + step)
    if reference is not None and len(reference):
        drift = _drift(repaired, reference.sorted_unique())
        if drift is not None:
            details["max_drift"], details["drift_open_ms"] = drift
            if drift[0] > max_drift:
                reasons.append(SOURCE_DRIFT)
                details["max_drift_allowed"] = max_drift
    return IntegrityResult(GateVerdict("integrity", tuple(reasons), tuple(warnings), details), repaired)


def check_quality(
    spec: FeatureSetSpec,
    market_features: npt.NDArray[np.float64],
    *,
    candle_close_ms: int,
    now_ms: int,
    stats: NormalizationStats | None,
    ood_zscore_limit: float,
    max_missing_critical: int,
    max_freshness_sec: float,
) -> GateVerdict:
    """Judge the market features of the latest candle (which closed at `candle_close_ms`)."""
    reasons: list[str] = []
    details: dict[str, object] = {}
    names = spec.market_features
    missing = [name for name, value in zip(names, market_features, strict=True) if not np.isfinite(value)]
    missing_critical = [name for name in missing if name in spec.critical]
    if missing:
        details["missing"] = missing
    if len(missing_critical) > max_missing_critical:
        reasons.append(MISSING_CRITICAL)
        details["missing_critical"] = missing_critical
    if stats is not None:
        z = stats.zscores(names, market_features)
        worst = int(np.nanargmax(np.abs(z))) if np.isfinite(z).any() else None
        if worst is not None:
            details["max_abs_zscore"] = round(float(abs(z[worst])), 3)
            details["max_zscore_feature"] = names[worst]
            if abs(z[worst]) > ood_zscore_limit:
                reasons.append(OUT_OF_DISTRIBUTION)
                details["ood_zscore_limit"] = ood_zscore_limit
    age_sec = (now_ms - candle_close_ms) / 1000
    details["age_sec"] = round(age_sec, 3)
    if age_sec > max_freshness_sec:
        reasons.append(STALE)
        details["max_freshness_sec"] = max_freshness_sec
    return GateVerdict("feature_quality", tuple(reasons), (), details)


def _duplicates_disagree(given: CandleColumns, kept: CandleColumns) -> bool:
    """Does any row carry other values than the row kept for its open time?"""
    position = np.searchsorted(kept.open_time_ms, given.open_time_ms)
    return any(
        not np.array_equal(getattr(given, name), getattr(kept, name)[position])
        for name in ("open", "high", "low", "close", "volume")
    )


def _drift(window: CandleColumns, reference: CandleColumns) -> tuple[float, int] | None:
    common, mine, theirs = np.intersect1d(window.open_time_ms, reference.open_time_ms, return_indices=True)
    if not len(common):
        return None
    worst, at = 0.0, int(common[0])
    for name in ("open", "high", "low", "close"):
        a, b = getattr(window, name)[mine], getattr(reference, name)[theirs]
        relative = np.abs(a - b) / np.abs(b)
        index = int(np.argmax(relative))
        if relative[index] > worst:
            worst, at = float(relative[index]), int(common[index])
    return worst, at
