"""Feature sets with higher-interval context: the pipeline (the dataset and live path) against the
whole-history batch of each interval joined without look-ahead, on real candles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.market import Interval
from features.batch import batch_features
from features.context import align_context, context_cutoff_ms
from features.definitions import V1, V2, feature_set
from features.engine import FeatureEngine
from features.pipeline import FeaturePipeline
from features.spec import FeatureSetSpec

from .resampling import resample

Load = Callable[[str], CandleColumns]
Floats = npt.NDArray[np.float64]


def open_pipeline(
    spec: FeatureSetSpec, base: CandleColumns, context: dict[Interval, CandleColumns], start: int
) -> tuple[FeaturePipeline, dict[Interval, CandleColumns]]:
    """Open as a dataset build does: on the `warmup_bars` base candles before row `start`, and for each
    context interval on the `warmup_bars` candles ending with the last one closed by then. Returns the
    pipeline and the context candles still to be fed."""
    history = base.take(np.arange(start - spec.warmup_bars, start))
    opened_at = int(base.open_time_ms[start])
    context_history, rest = {}, {}
    for interval, candles in context.items():
        cutoff = context_cutoff_ms(opened_at, base.interval, interval)
        closed = int(np.searchsorted(candles.open_time_ms + interval_ms(interval), cutoff, side="right"))
        context_history[interval] = candles.take(np.arange(closed - spec.warmup_bars, closed))
        rest[interval] = candles.take(np.arange(closed, len(candles)))
    return FeaturePipeline(spec, history, context_history), rest


def reference(spec: FeatureSetSpec, base: CandleColumns, context: dict[Interval, CandleColumns]) -> Floats:
    """Whole-history batch features of every interval, context aligned by `align_context`."""
    plain = spec.without_context()
    columns = [plain.interval_features.index(name) for name in spec.context_sources]
    parts = [batch_features(plain, base)]
    for interval in spec.context:
        candles = context[interval]
        values = batch_features(plain, candles)[:, columns]
        parts.append(align_context(base.open_time_ms, candles.open_time_ms, interval, values, base.interval))
    return np.hstack(parts)


def assert_close(spec: FeatureSetSpec, got: Floats, expected: Floats) -> None:
    assert not np.isnan(expected).any(), "after the warm-up every feature has a value"
    for j, feature in enumerate(spec.market_features):
        close = np.isclose(got[:, j], expected[:, j], rtol=1e-9, atol=1e-12)
        assert close.all(), f"{feature}: {np.nanmax(np.abs(got[:, j] - expected[:, j])):.3g} apart"


@pytest.mark.parametrize("base_spec", [V1, V2], ids=lambda s: s.name)
def test_hourly_candles_with_venue_4h_context_equal_the_aligned_batch(
    real_candles: Load, base_spec: FeatureSetSpec
) -> None:
    spec = base_spec.with_context(["4h"])
    base, context = real_candles("BTCUSDT_1h"), {"4h": real_candles("BTCUSDT_4h")}
    start, stop = 7_000, 8_400  # 1000 4h candles (~167 days) of warm-up before row 7000 (day ~292)
    pipeline, rest = open_pipeline(spec, base, context, start)
    got = pipeline.run(base.take(np.arange(start, stop)), rest)
    assert got.shape == (stop - start, len(spec.market_features))
    assert_close(spec, got, reference(spec, base, context)[start:stop])


@pytest.mark.parametrize("base_spec", [V1, V2], ids=lambda s: s.name)
def test_minute_candles_with_5m_and_1h_context_equal_the_aligned_batch(
    real_candles: Load, base_spec: FeatureSetSpec
) -> None:
    spec = base_spec.with_context(["1h", "5m"])
    assert spec.name == f"{base_spec.name}+5m+1h"
    base = real_candles("BTCUSDT_1m")
    context: dict[Interval, CandleColumns] = {"5m": resample(base, "5m"), "1h": resample(base, "1h")}
    start = 1_010 * 60 if base_spec is V2 else 5_000  # v2: 1000 hourly candles of warm-up
    pipeline, rest = open_pipeline(spec, base, context, start)
    got = pipeline.run(base.take(np.arange(start, start + 4_000)), rest)
    assert_close(spec, got, reference(spec, base, context)[start : start + 4_000])


@pytest.mark.parametrize("interval", ["5m", "15m", "1h"])
def test_decisions_over_minute_candles_with_1m_context_equal_the_aligned_batch(
    real_candles: Load, interval: Interval
) -> None:
    """A 5m, 15m or 1h decision sees the features of the 1m candle that closed one minute before it did
    (final a minute earlier, so live never races for it), and nothing later."""
    spec = V2.with_context(["1m"])
    minutes = real_candles("BTCUSDT_1m")
    base = resample(minutes, interval)
    step = interval_ms(interval)
    start = 1_010 * 60_000 // step + 1  # past the 1m warm-up (1000 candles) and the base's own
    start = max(start, V2.warmup_bars)
    stop = min(len(base), start + 400)
    assert stop - start >= 100, f"{len(base)} {interval} candles leave too few rows after the warm-up"
    pipeline, rest = open_pipeline(spec, base, {"1m": minutes}, start)
    got = pipeline.run(base.take(np.arange(start, stop)), rest)
    assert_close(spec, got, reference(spec, base, {"1m": minutes})[start:stop])
    own = batch_features(V2, minutes)[:, [V2.interval_features.index(name) for name in V2.context_sources]]
    context_columns = slice(len(V2.interval_features), None)
    for i in range(0, stop - start, 37):
        close = int(base.open_time_ms[start + i]) + step
        used = int(np.flatnonzero(minutes.open_time_ms == close - 2 * 60_000)[0])  # it closed at close - 1m
        assert np.allclose(got[i, context_columns], own[used], rtol=1e-9, atol=1e-12)


def test_a_base_candle_sees_the_context_candle_that_closed_when_it_opened_and_nothing_later(real_candles: Load) -> None:
    spec = V1.with_context(["5m"])
    base = real_candles("BTCUSDT_1m")
    five = resample(base, "5m")
    start = 3_000
    pipeline, rest = open_pipeline(spec, base, {"5m": five}, start)
    rows = pipeline.run(base.take(np.arange(start, start + 600)), rest)
    context_columns = slice(len(V1.interval_features), None)
    own = batch_features(V1, five)[:, [V1.interval_features.index(name) for name in V1.context_sources]]
    for i in range(0, 600, 7):
        t = int(base.open_time_ms[start + i])
        used = int(np.flatnonzero(five.open_time_ms + 300_000 <= t)[-1])
        assert np.allclose(rows[i, context_columns], own[used], rtol=1e-9, atol=1e-12)
        assert five.open_time_ms[used] + 300_000 > t - 300_000, "and it is the newest such candle"

    # Rewrite every candle that closes after base row 300 opens: rows up to 300 do not change.
    cut = int(base.open_time_ms[start + 300])
    later = (five.open_time_ms + 300_000) > cut
    tampered = five.take(np.arange(len(five)))
    tampered.close[later] *= 1.5
    tampered.high[later] *= 1.5
    pipeline, rest = open_pipeline(spec, base, {"5m": tampered}, start)
    again = pipeline.run(base.take(np.arange(start, start + 600)), rest)
    assert np.array_equal(again[:301], rows[:301])
    assert not np.array_equal(again[301:], rows[301:])


def test_pipelines_opened_at_different_times_agree_to_the_last_bit(real_candles: Load) -> None:
    """The live pipeline opens on recent candles of every interval; a dataset was built from earlier ones."""
    spec = V2.with_context(["4h"])
    base, context = real_candles("BTCUSDT_1h"), {"4h": real_candles("BTCUSDT_4h")}
    early, early_rest = open_pipeline(spec, base, context, 6_400)
    late, late_rest = open_pipeline(spec, base, context, 7_500)
    a = early.run(base.take(np.arange(6_400, 8_000)), early_rest)
    b = late.run(base.take(np.arange(7_500, 8_000)), late_rest)
    assert np.array_equal(a[1_100:], b)


def test_live_updates_in_arrival_order_equal_run(real_candles: Load) -> None:
    """The live actor calls `update_context` when a context candle becomes final and `update` for each
    base candle; `run` is the same sequence."""
    spec = V1.with_context(["4h"])
    base, context = real_candles("BTCUSDT_1h"), {"4h": real_candles("BTCUSDT_4h")}
    batch_pipeline, rest = open_pipeline(spec, base, context, 2_000)
    expected = batch_pipeline.run(base.take(np.arange(2_000, 2_400)), rest)
    live, rest = open_pipeline(spec, base, context, 2_000)
    four = rest["4h"]
    fed = 0
    for i in range(2_000, 2_400):
        t = int(base.open_time_ms[i])
        # The venue finalises the 4h candle when the next one opens, the moment the hourly one does.
        while fed < len(four) and int(four.open_time_ms[fed]) + 4 * 3_600_000 <= t:
            c = four
            live.update_context(
                "4h", int(c.open_time_ms[fed]), c.open[fed], c.high[fed], c.low[fed], c.close[fed], c.volume[fed]
            )
            fed += 1
        row = live.update(t, base.open[i], base.high[i], base.low[i], base.close[i], base.volume[i])
        assert np.array_equal(row, expected[i - 2_000])


def test_context_names_schema_and_refusals(real_candles: Load) -> None:
    spec = feature_set("v2", ["1h", "5m"])
    assert spec == feature_set("v2+5m+1h") == V2.with_context(["5m", "1h", "5m"])
    assert spec.context == ("5m", "1h")
    assert spec.without_context() == V2
    assert "ctx_5m_rsi_14" in spec.market_features
    assert "ctx_1h_minute_of_day_sin" not in spec.market_features
    assert spec.market_features[: len(V2.interval_features)] == V2.interval_features
    assert len({V2.schema_hash, spec.schema_hash, V2.with_context(["5m"]).schema_hash}) == 3
    assert V2.with_context([]) is V2
    with pytest.raises(ValueError, match="no fixed length"):
        V2.with_context(["1M"])
    with pytest.raises(ValueError, match="already has context"):
        spec.with_context(["4h"])
    with pytest.raises(ValueError, match="unknown interval"):
        feature_set("v2+7m")
    spec.check_interval("1m")
    with pytest.raises(ValueError, match="must be longer than the base interval 1h"):
        spec.check_interval("1h")
    with pytest.raises(ValueError, match="whole multiple"):
        V1.with_context(["5m"]).check_interval("3m")

    base = real_candles("BTCUSDT_1h")
    with pytest.raises(ValueError, match="open a FeaturePipeline"):
        FeatureEngine(V1.with_context(["4h"]), base.take(np.arange(100)))
    with pytest.raises(ValueError, match=r"needs the context \['4h'\]"):
        FeaturePipeline(V1.with_context(["4h"]), base.take(np.arange(100)))
    with pytest.raises(ValueError, match="context 4h was given BTC-USDT 1h candles"):
        FeaturePipeline(V1.with_context(["4h"]), base.take(np.arange(100)), {"4h": base.take(np.arange(100))})
