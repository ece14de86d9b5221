"""The incremental engine against the whole-history reference, on real candles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from domain.candle_columns import CandleColumns
from features.batch import batch_features
from features.definitions import FEATURE_SETS, V1, V2, feature_set
from features.engine import FeatureEngine, InsufficientHistoryError
from features.spec import FeatureSetSpec

Load = Callable[[str], CandleColumns]


def run_engine(spec: FeatureSetSpec, candles: CandleColumns, start: int, stop: int) -> npt.NDArray[np.float64]:
    """Open on the `warmup_bars` candles before `start`, then update through `stop`."""
    engine = FeatureEngine(spec, candles.take(np.arange(start - spec.warmup_bars, start)))
    return engine.run(candles.take(np.arange(start, stop)))


@pytest.mark.parametrize("spec", [V1, V2], ids=lambda s: s.name)
@pytest.mark.parametrize(("name", "start", "stop"), [("BTCUSDT_1m", 20_000, 32_000), ("ETHUSDT_1h", 1_500, 8_400)])
def test_incremental_equals_the_whole_history_batch(
    real_candles: Load, spec: FeatureSetSpec, name: str, start: int, stop: int
) -> None:
    """Within 1e-9 relative (1e-12 absolute for values near zero, such as returns): the engine is opened
    on recent history only, the batch runs from the first candle of the file."""
    candles = real_candles(name)
    incremental = run_engine(spec, candles, start, stop)
    batch = batch_features(spec, candles)[start:stop]
    assert not np.isnan(batch).any(), "after the warm-up every feature has a value"
    for j, feature in enumerate(spec.market_features):
        close = np.isclose(incremental[:, j], batch[:, j], rtol=1e-9, atol=1e-12)
        assert close.all(), f"{feature}: {np.abs(incremental[:, j] - batch[:, j]).max():.3g} apart"


def test_engines_opened_at_different_times_agree_to_the_last_bit(real_candles: Load) -> None:
    """Live opens on recent candles; a dataset was built from earlier ones. After the warm-up both are
    the same numbers, so a model sees live exactly what it was trained on."""
    candles = real_candles("BTCUSDT_1m")
    early = run_engine(V2, candles, 3_000, 9_000)
    late = run_engine(V2, candles, 6_000, 9_000)
    assert np.array_equal(early[3_000:], late)


@pytest.mark.parametrize("spec", [V1, V2], ids=lambda s: s.name)
def test_no_feature_changes_when_later_candles_are_appended(real_candles: Load, spec: FeatureSetSpec) -> None:
    candles = real_candles("BTCUSDT_1h")
    full = batch_features(spec, candles)
    for cut in (1_200, 3_333, 6_000):
        prefix = batch_features(spec, candles.take(np.arange(cut)))
        assert np.array_equal(prefix, full[:cut], equal_nan=True)


def test_features_before_the_warmup_are_missing_not_invented(real_candles: Load) -> None:
    early = batch_features(V2, real_candles("BTCUSDT_4h"))[:10]
    assert np.isnan(early[:, V2.market_features.index("ret_60")]).all()
    assert not np.isnan(early[1:, V2.market_features.index("ret_1")]).any()


def test_an_engine_needs_its_warmup_and_candles_in_order(real_candles: Load) -> None:
    candles = real_candles("BTCUSDT_1h")
    with pytest.raises(InsufficientHistoryError, match="needs 1000 candles"):
        FeatureEngine(V2, candles.take(np.arange(999)))
    engine = FeatureEngine(V1, candles.take(np.arange(100)))
    last = int(candles.open_time_ms[99])
    with pytest.raises(ValueError, match="not after"):
        engine.update(last, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_schema_hash_follows_names_order_and_parameters() -> None:
    assert V1.schema_hash != V2.schema_hash
    assert len({spec.schema_hash for spec in FEATURE_SETS.values()}) == len(FEATURE_SETS)
    reordered = FeatureSetSpec("v1", V1.market_features[::-1], V1.parameters, V1.warmup_bars, V1.critical)
    retuned = FeatureSetSpec("v1", V1.market_features, {**V1.parameters, "volatility_window_60": 61}, 61, V1.critical)
    assert len({V1.schema_hash, reordered.schema_hash, retuned.schema_hash}) == 3
    assert feature_set("v2") is V2
    with pytest.raises(ValueError, match="unknown feature set 'v9'"):
        feature_set("v9")
