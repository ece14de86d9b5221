"""The feature sets `v1` (no TA) and `v2` (v1 plus TA-Lib indicators), as specifications.

Every value is scale-free, so one model can read any pair: returns are log returns, prices are divided
by the close, oscillators are divided by their range. Each feature is either computed from a window of
the last N candles alone, or by an exponential recursion (EMA, Wilder smoothing) that forgets its seed:
opened on `warmup_bars` candles, the recursions of TA-Lib 0.8 reach the same value, to the last bit, as
a computation over the whole history (measured on the real candles: 1000 bars suffice, 300 do not).
That is what lets the live engine, opened on recent history, equal the training data.
"""

from __future__ import annotations

from collections.abc import Iterable

from domain.market import Interval
from features.spec import FeatureSetSpec, split_name

RETURN_HORIZONS = (1, 5, 15, 60)
VOLATILITY_WINDOWS = (15, 60)

V1_FEATURES = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"vol_{n}" for n in VOLATILITY_WINDOWS),
    "log_volume",
    "log_volume_change",
    "range_ratio",
    "body_ratio",
    "upper_wick_ratio",
    "lower_wick_ratio",
    "minute_of_day_sin",
    "minute_of_day_cos",
    "day_of_week_sin",
    "day_of_week_cos",
)
CALENDAR_FEATURES = frozenset(name for name in V1_FEATURES if name.startswith(("minute_of_day", "day_of_week")))

TA_FEATURES = (
    "rsi_14",
    "macd_line",
    "macd_signal",
    "macd_hist",
    "atr_14",
    "bb_percent_b",
    "bb_width",
    "adx_14",
    "obv_change_10",
    "ema_ratio_9_21",
    "ema_ratio_21_55",
    "close_ema_ratio_21",
    "stoch_k",
    "stoch_d",
    "ret_zscore_60",
)

V1_PARAMETERS: dict[str, int | float] = {
    **{f"return_horizon_{h}": h for h in RETURN_HORIZONS},
    **{f"volatility_window_{n}": n for n in VOLATILITY_WINDOWS},
}

TA_PARAMETERS: dict[str, int | float] = {
    "rsi_period": 14,
    "macd_fast": 12,
    "macd_slow": 26,
    "macd_signal": 9,
    "atr_period": 14,
    "bb_period": 20,
    "bb_deviations": 2.0,
    "adx_period": 14,
    "obv_change_window": 10,
    "ema_fast": 9,
    "ema_mid": 21,
    "ema_slow": 55,
    "stoch_fastk": 14,
    "stoch_slowk": 3,
    "stoch_slowd": 3,
    "zscore_window": 60,
}

V1 = FeatureSetSpec(
    name="v1",
    interval_features=V1_FEATURES,
    parameters=V1_PARAMETERS,
    warmup_bars=max(RETURN_HORIZONS) + 1,
    critical=frozenset({"ret_1", "ret_15", "vol_60", "range_ratio"}),
    context_sources=tuple(name for name in V1_FEATURES if name not in CALENDAR_FEATURES),
)

V2 = FeatureSetSpec(
    name="v2",
    interval_features=V1_FEATURES + TA_FEATURES,
    parameters={**V1_PARAMETERS, **TA_PARAMETERS},
    warmup_bars=1000,
    critical=frozenset({"ret_1", "ret_15", "vol_60", "range_ratio", "rsi_14", "atr_14", "macd_hist"}),
    context_sources=tuple(name for name in V1_FEATURES + TA_FEATURES if name not in CALENDAR_FEATURES),
)

FEATURE_SETS: dict[str, FeatureSetSpec] = {spec.name: spec for spec in (V1, V2)}


def feature_set(name: str, context: Iterable[Interval] = ()) -> FeatureSetSpec:
    """A feature set by name (`v2`, or `v2+5m+1h` as recorded with datasets), with extra context."""
    base, named_context = split_name(name)
    try:
        spec = FEATURE_SETS[base]
    except KeyError:
        raise ValueError(f"unknown feature set {base!r}; known: {', '.join(sorted(FEATURE_SETS))}") from None
    return spec.with_context((*named_context, *context))
