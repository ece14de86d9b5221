"""The incremental feature engine: opened on recent candles, then one `update` per final candle.

This is the one code path for features: the live feature actor runs it per candle, and dataset builds
run it over their candles (after the same warm-up), so a model sees in production exactly what it was
trained on. `features.batch` is the whole-history reference it is tested against.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import talib
from talib import stream
from talib._ta_lib import MA_Type

from domain.candle_columns import CandleColumns
from features.definitions import RETURN_HORIZONS, TA_PARAMETERS, V1, V2, VOLATILITY_WINDOWS
from features.spec import FeatureSetSpec
from features.window import RollingWindow

TWO_PI = 2 * math.pi
MINUTE_MS = 60_000
DAY_MS = 86_400_000
P = TA_PARAMETERS


class InsufficientHistoryError(ValueError):
    """The engine was opened on fewer candles than its feature set's warm-up."""


class FeatureEngine:
    """Market features of one pair and interval. Not thread-safe; not picklable (TA-Lib handles):
    to checkpoint, keep the last `warmup_bars` candles and open a new engine on them."""

    def __init__(self, spec: FeatureSetSpec, history: CandleColumns) -> None:
        if len(history) < spec.warmup_bars:
            raise InsufficientHistoryError(
                f"feature set {spec.name} needs {spec.warmup_bars} candles of history, got {len(history)}"
            )
        if spec.context:
            raise ValueError(
                f"feature set {spec.name} has context: open a FeaturePipeline, which runs one engine per interval"
            )
        self.spec = spec
        self.pair, self.interval = history.pair, history.interval
        if spec.interval_features not in (V1.interval_features, V2.interval_features):
            raise ValueError(f"the engine computes the v1 and v2 features; {spec.name} lists others")
        self.with_ta = spec.interval_features == V2.interval_features
        self.last_open_ms: int | None = None
        keep = max(max(RETURN_HORIZONS) + 1, int(P["stoch_fastk"] + P["stoch_slowk"] + P["stoch_slowd"]))
        self._log_close = RollingWindow(keep)
        self._close = RollingWindow(keep)
        self._high = RollingWindow(keep)
        self._low = RollingWindow(keep)
        self._volume = RollingWindow(keep)
        self._returns = RollingWindow(max(max(VOLATILITY_WINDOWS), int(P["zscore_window"])))
        self._log_volume = RollingWindow(2)
        # The recursions open on all but the last history candle, which is then fed like any other, so
        # the windows and the handles see exactly the same candles.
        *_, last = range(len(history))
        if self.with_ta:
            h, low, c = history.high[:last], history.low[:last], history.close[:last]
            self._rsi = stream.RSI(c, int(P["rsi_period"]))
            self._macd = stream.MACD(c, int(P["macd_fast"]), int(P["macd_slow"]), int(P["macd_signal"]))
            self._atr = stream.ATR(h, low, c, int(P["atr_period"]))
            self._adx = stream.ADX(h, low, c, int(P["adx_period"]))
            self._ema = [stream.EMA(c, int(P[key])) for key in ("ema_fast", "ema_mid", "ema_slow")]
        tail = max(0, last - self._close.size)
        for i in range(tail, last):
            self._remember(
                float(history.high[i]), float(history.low[i]), float(history.close[i]), float(history.volume[i])
            )
        # The market features of the newest candle seen (after opening: the last history candle).
        self.latest = self.run(history.take(np.arange(last, last + 1)))[0]

    def run(self, candles: CandleColumns) -> npt.NDArray[np.float64]:
        """`update` for each candle in turn: one row of market features per candle."""
        rows = np.empty((len(candles), len(self.spec.interval_features)))
        columns = (candles.open_time_ms, candles.open, candles.high, candles.low, candles.close, candles.volume)
        for i, (t, o, h, low, c, v) in enumerate(zip(*(column.tolist() for column in columns), strict=True)):
            rows[i] = self.update(t, o, h, low, c, v)
        return rows

    def update(self, open_time_ms: int, o: float, h: float, low: float, c: float, v: float) -> npt.NDArray[np.float64]:
        """The market features of the candle that just became final (the state features are appended
        by the caller). Candles must come in order, each once."""
        if self.last_open_ms is not None and open_time_ms <= self.last_open_ms:
            raise ValueError(
                f"candle {open_time_ms} is not after {self.last_open_ms}: features are computed once, in order"
            )
        self.last_open_ms = open_time_ms
        out = np.full(len(self.spec.interval_features), np.nan)
        self._remember(h, low, c, v)
        log_close = self._log_close.ago(0)
        for i, horizon in enumerate(RETURN_HORIZONS):
            out[i] = log_close - self._log_close.ago(horizon)
        k = len(RETURN_HORIZONS)
        for j, window in enumerate(VOLATILITY_WINDOWS):
            if self._returns.full(window):
                out[k + j] = np.std(self._returns.last(window))
        k += len(VOLATILITY_WINDOWS)
        out[k] = self._log_volume.ago(0)
        out[k + 1] = self._log_volume.ago(0) - self._log_volume.ago(1)
        out[k + 2] = (h - low) / c
        spread = h - low
        if spread > 0:
            out[k + 3] = (c - o) / spread
            out[k + 4] = (h - max(o, c)) / spread
            out[k + 5] = (min(o, c) - low) / spread
        else:
            out[k + 3 : k + 6] = 0.0
        minute = (open_time_ms // MINUTE_MS) % 1440
        weekday = (open_time_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        out[k + 6] = math.sin(TWO_PI * minute / 1440)
        out[k + 7] = math.cos(TWO_PI * minute / 1440)
        out[k + 8] = math.sin(TWO_PI * weekday / 7)
        out[k + 9] = math.cos(TWO_PI * weekday / 7)
        if self.with_ta:
            self._ta(out, k + 10, h, low, c)
        self.latest = out
        return out

    def _remember(self, h: float, low: float, c: float, v: float) -> None:
        log_close = math.log(c)
        if self._log_close.count:
            self._returns.append(log_close - self._log_close.ago(0))
        self._close.append(c)
        self._log_close.append(log_close)
        self._high.append(h)
        self._low.append(low)
        self._volume.append(v)
        self._log_volume.append(math.log1p(v))

    def _ta(self, out: npt.NDArray[np.float64], k: int, h: float, low: float, c: float) -> None:
        out[k] = self._rsi.update(c) / 100
        line, signal, hist = self._macd.update(c)
        out[k + 1], out[k + 2], out[k + 3] = line / c, signal / c, hist / c
        out[k + 4] = self._atr.update(h, low, c) / c
        period = int(P["bb_period"])
        if self._close.full(period):
            upper, middle, lower = (
                band[-1]
                for band in talib.BBANDS(self._close.last(period), period, P["bb_deviations"], P["bb_deviations"])
            )
            out[k + 5] = (c - lower) / (upper - lower) if upper > lower else 0.5
            out[k + 6] = (upper - lower) / middle
        out[k + 7] = self._adx.update(h, low, c) / 100
        window = int(P["obv_change_window"])
        if self._close.full(window + 1):
            closes = self._close.last(window + 1)
            volumes = self._volume.last(window)
            total = float(np.sum(volumes))
            out[k + 8] = float(np.sum(np.sign(np.diff(closes)) * volumes)) / total if total > 0 else 0.0
        fast, mid, slow = (ema.update(c) for ema in self._ema)
        out[k + 9] = fast / mid - 1
        out[k + 10] = mid / slow - 1
        out[k + 11] = c / mid - 1
        span = int(P["stoch_fastk"] + P["stoch_slowk"] + P["stoch_slowd"]) - 2
        if self._close.full(span):
            slow_k, slow_d = talib.STOCH(
                self._high.last(span),
                self._low.last(span),
                self._close.last(span),
                int(P["stoch_fastk"]),
                int(P["stoch_slowk"]),
                MA_Type.SMA,
                int(P["stoch_slowd"]),
                MA_Type.SMA,
            )
            out[k + 12], out[k + 13] = slow_k[-1] / 100, slow_d[-1] / 100
        window = int(P["zscore_window"])
        if self._returns.full(window):
            returns = self._returns.last(window)
            deviation = float(np.std(returns))
            out[k + 14] = (returns[-1] - float(np.mean(returns))) / deviation if deviation > 0 else 0.0
