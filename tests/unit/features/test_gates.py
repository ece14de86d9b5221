"""Each gate on crafted bad windows and vectors, with the reason asserted."""

from __future__ import annotations

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from domain.candles import Candle
from features import gates
from features.definitions import V1, V2
from features.normalization import NormalizationStats

M = 60_000
T = 1_700_000_040_000


def window(offsets: list[int], closes: list[float] | None = None) -> CandleColumns:
    closes = closes or [100.0 + i for i in range(len(offsets))]
    return CandleColumns.from_candles(
        [
            Candle("BTC-USDT", "1m", T + offset * M, c, c + 1, c - 1, c, 5.0)
            for offset, c in zip(offsets, closes, strict=True)
        ]
    )


def test_a_clean_window_passes() -> None:
    result = gates.check_integrity(window(list(range(10))))
    assert result.verdict.passed
    assert result.verdict.reason is None
    assert result.verdict.provenance()["passed"] is True


def test_a_gap_fails_with_the_missing_count() -> None:
    verdict = gates.check_integrity(window([0, 1, 2, 5, 6])).verdict
    assert verdict.reasons == (gates.GAP,)
    assert (verdict.details["missing_candles"], verdict.details["first_missing_ms"]) == (2, T + 3 * M)


def test_an_unsorted_window_is_repaired_with_a_warning() -> None:
    result = gates.check_integrity(window([2, 0, 1, 3]))
    assert result.verdict.passed
    assert result.verdict.warnings == (gates.UNSORTED_WARNING,)
    assert result.window.open_time_ms.tolist() == [T + i * M for i in range(4)]


def test_duplicates_that_agree_are_collapsed_and_duplicates_that_disagree_fail() -> None:
    agreeing = gates.check_integrity(window([0, 1, 1, 2], [100.0, 101.0, 101.0, 102.0]))
    assert agreeing.verdict.passed
    assert agreeing.verdict.warnings == (gates.DUPLICATED_WARNING,)
    assert len(agreeing.window) == 3
    disagreeing = gates.check_integrity(window([0, 1, 1, 2], [100.0, 101.0, 109.0, 102.0])).verdict
    assert disagreeing.reasons == (gates.DUPLICATES_DISAGREE,)
    assert disagreeing.details["duplicates"] == 1


def test_unaligned_and_non_finite_candles_fail() -> None:
    unaligned = window([0, 1, 2])
    shifted = CandleColumns(
        unaligned.pair, "1m", unaligned.open_time_ms + np.array([0, 0, 7]), *unaligned_values(unaligned)
    )
    assert gates.check_integrity(shifted).verdict.reasons == (gates.UNALIGNED,)
    broken = window([0, 1, 2])
    broken.close[1] = np.nan
    verdict = gates.check_integrity(broken).verdict
    assert verdict.reasons == (gates.INVALID_VALUES,)
    assert verdict.details["invalid"] == [{"open_ms": T + M, "reason": "non-finite value"}]


def unaligned_values(c: CandleColumns) -> tuple[np.ndarray, ...]:
    return (c.open, c.high, c.low, c.close, c.volume, c.quote_volume)


def test_drift_against_a_second_source_fails_above_the_tolerance() -> None:
    websocket = window([0, 1, 2], [100.0, 101.0, 102.0])
    rest_close = window([0, 1, 2], [100.0, 101.0, 102.05])  # 0.05% on the last candle: within 0.2%
    assert gates.check_integrity(websocket, reference=rest_close).verdict.passed
    rest_far = window([1, 2], [101.0, 103.0])  # ~1%
    verdict = gates.check_integrity(websocket, reference=rest_far, max_drift=0.002).verdict
    assert verdict.reasons == (gates.SOURCE_DRIFT,)
    assert verdict.details["drift_open_ms"] == T + 2 * M
    assert verdict.details["max_drift"] == pytest.approx(1 / 102)  # the low: 101 against 102


def test_an_empty_window_fails() -> None:
    assert gates.check_integrity(CandleColumns.empty("BTC-USDT", "1m")).verdict.reasons == (gates.EMPTY,)


def quality(
    features: np.ndarray, *, age_ms: int = 1_000, stats: NormalizationStats | None = None, **limits: float
) -> gates.GateVerdict:
    options = {"ood_zscore_limit": 8.0, "max_missing_critical": 0, "max_freshness_sec": 120.0} | limits
    return gates.check_quality(
        V2,
        features,
        candle_close_ms=T,
        now_ms=T + age_ms,
        stats=stats,
        ood_zscore_limit=options["ood_zscore_limit"],
        max_missing_critical=int(options["max_missing_critical"]),
        max_freshness_sec=options["max_freshness_sec"],
    )


def typical() -> tuple[np.ndarray, NormalizationStats]:
    rng = np.random.default_rng(7)
    training = rng.normal(0.0, 1.0, size=(500, len(V2.market_features)))
    return training[-1], NormalizationStats.of(V2.market_features, training)


def test_sound_features_pass_the_quality_gate() -> None:
    features, stats = typical()
    verdict = quality(features, stats=stats)
    assert verdict.passed, verdict.details


def test_a_missing_critical_feature_forces_a_hold_and_a_missing_other_one_does_not() -> None:
    features, stats = typical()
    other = features.copy()
    other[V2.market_features.index("day_of_week_sin")] = np.nan
    assert quality(other, stats=stats).passed
    critical = features.copy()
    critical[V2.market_features.index("rsi_14")] = np.nan
    verdict = quality(critical, stats=stats)
    assert verdict.reason == gates.MISSING_CRITICAL
    assert verdict.details["missing_critical"] == ["rsi_14"]
    assert quality(critical, stats=stats, max_missing_critical=1).passed


def test_an_out_of_distribution_spike_forces_a_hold() -> None:
    features, stats = typical()
    spiked = features.copy()
    spiked[V2.market_features.index("ret_1")] = stats.mean[0] + 25 * stats.std[0]
    verdict = quality(spiked, stats=stats)
    assert verdict.reason == gates.OUT_OF_DISTRIBUTION
    assert verdict.details["max_zscore_feature"] == "ret_1"
    assert quality(spiked, stats=stats, ood_zscore_limit=30.0).passed


def test_stale_features_force_a_hold() -> None:
    features, stats = typical()
    verdict = quality(features, stats=stats, age_ms=121_000)
    assert verdict.reason == gates.STALE
    assert verdict.details["age_sec"] == 121.0


def test_normalisation_statistics_round_trip_and_ignore_missing_values() -> None:
    matrix = np.array([[1.0, np.nan, 5.0], [3.0, np.nan, 5.0]])
    stats = NormalizationStats.of(("a", "b", "c"), matrix)
    assert stats.mean[0] == 2.0
    assert stats.std[0] == 1.0
    assert np.isnan(stats.mean[1])
    again = NormalizationStats.from_json(stats.to_json())
    assert again.names == stats.names
    assert np.array_equal(again.mean, stats.mean, equal_nan=True)
    assert np.isnan(again.zscores(("c",), np.array([9.0]))[0])  # no spread: no verdict on scale
    assert V1.names[-4:] == ("position_side", "position_size", "unrealized_pnl", "time_in_position")
