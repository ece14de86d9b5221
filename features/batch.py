"""The whole-history reference: every feature of every candle at once, with TA-Lib's batch functions and
numpy. It defines what the incremental engine must compute (tests hold the two within 1e-9 relative on
real candles) and is the "recompute from scratch" side of the feature benchmark. Datasets and live
decisions use the engine, so there is one production code path.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import talib
from numpy.lib.stride_tricks import sliding_window_view
from talib._ta_lib import MA_Type

from domain.candle_columns import CandleColumns
from features.definitions import RETURN_HORIZONS, TA_PARAMETERS, V1, V2, VOLATILITY_WINDOWS
from features.spec import FeatureSetSpec

P = TA_PARAMETERS
Floats = npt.NDArray[np.float64]


def batch_features(spec: FeatureSetSpec, candles: CandleColumns) -> Floats:
    """Rows: candles; columns: the spec's market features. NaN where the history is too short."""
    if spec.interval_features not in (V1.interval_features, V2.interval_features):
        raise ValueError(f"batch features exist for v1 and v2; {spec.name} lists others")
    base = _v1(candles)
    if spec.interval_features == V1.interval_features:
        return base
    return np.hstack([base, _ta(candles)])


def _shift(values: Floats, bars: int) -> Floats:
    shifted = np.full_like(values, np.nan)
    shifted[bars:] = values[:-bars]
    return shifted


def _rolling(values: Floats, window: int, reduce: str) -> Floats:
    out = np.full_like(values, np.nan)
    if len(values) >= window:
        view = sliding_window_view(values, window)
        out[window - 1 :] = (
            view.std(axis=1) if reduce == "std" else view.mean(axis=1) if reduce == "mean" else view.sum(axis=1)
        )
    return out


def _v1(candles: CandleColumns) -> Floats:
    o, h, low, c, v = candles.open, candles.high, candles.low, candles.close, candles.volume
    log_close = np.log(c)
    returns = log_close - _shift(log_close, 1)
    columns: list[Floats] = [log_close - _shift(log_close, horizon) for horizon in RETURN_HORIZONS]
    columns += [_rolling(returns, window, "std") for window in VOLATILITY_WINDOWS]
    log_volume = np.log1p(v)
    columns += [log_volume, log_volume - _shift(log_volume, 1), (h - low) / c]
    spread = h - low
    safe = np.where(spread > 0, spread, 1.0)
    columns += [
        np.where(spread > 0, (c - o) / safe, 0.0),
        np.where(spread > 0, (h - np.maximum(o, c)) / safe, 0.0),
        np.where(spread > 0, (np.minimum(o, c) - low) / safe, 0.0),
    ]
    minute = (candles.open_time_ms // 60_000) % 1440
    weekday = (candles.open_time_ms // 86_400_000 + 3) % 7
    columns += [
        np.sin(2 * np.pi * minute / 1440),
        np.cos(2 * np.pi * minute / 1440),
        np.sin(2 * np.pi * weekday / 7),
        np.cos(2 * np.pi * weekday / 7),
    ]
    return np.column_stack(columns)


def _ta(candles: CandleColumns) -> Floats:
    h, low, c, v = candles.high, candles.low, candles.close, candles.volume
    line, signal, hist = talib.MACD(c, int(P["macd_fast"]), int(P["macd_slow"]), int(P["macd_signal"]))
    # Bands from each window's own mean and deviation: TA-Lib's BBANDS keeps running sums over the whole
    # input, which drift about 1e-11 from the windowed value over tens of thousands of candles.
    period = int(P["bb_period"])
    middle = _rolling(c, period, "mean")
    deviation = _rolling(c, period, "std") * P["bb_deviations"]
    upper, lower = middle + deviation, middle - deviation
    width = upper - lower
    window = int(P["obv_change_window"])
    signed = np.sign(c - _shift(c, 1)) * v
    volume_sum = _rolling(v, window, "sum")
    obv_change = np.where(
        volume_sum > 0, _rolling(signed, window, "sum") / np.where(volume_sum > 0, volume_sum, 1), 0.0
    )
    obv_change[:window] = np.nan
    fast, mid, slow = (talib.EMA(c, int(P[key])) for key in ("ema_fast", "ema_mid", "ema_slow"))
    slow_k, slow_d = talib.STOCH(
        h, low, c, int(P["stoch_fastk"]), int(P["stoch_slowk"]), MA_Type.SMA, int(P["stoch_slowd"]), MA_Type.SMA
    )
    returns = np.log(c) - _shift(np.log(c), 1)
    zwindow = int(P["zscore_window"])
    mean, deviation = _rolling(returns, zwindow, "mean"), _rolling(returns, zwindow, "std")
    zscore = np.where(deviation > 0, (returns - mean) / np.where(deviation > 0, deviation, 1), 0.0)
    zscore[np.isnan(deviation)] = np.nan
    columns = [
        talib.RSI(c, int(P["rsi_period"])) / 100,
        line / c,
        signal / c,
        hist / c,
        talib.ATR(h, low, c, int(P["atr_period"])) / c,
        np.where(width > 0, (c - lower) / np.where(width > 0, width, 1), 0.5),
        width / middle,
        talib.ADX(h, low, c, int(P["adx_period"])) / 100,
        obv_change,
        fast / mid - 1,
        mid / slow - 1,
        c / mid - 1,
        slow_k / 100,
        slow_d / 100,
        zscore,
    ]
    stacked = np.column_stack(columns)
    stacked[np.isnan(middle), 5] = np.nan  # %B is undefined until the bands exist
    return stacked
