"""The feature actor's core: final candles in, one `MarketInput` per base candle out, in order, each
candle once.

- Candles may arrive out of order, twice, or late (REST heals a hole after later candles came over the
  websocket): they are buffered by open time and processed strictly in order. A missing candle is
  waited for (`missing()` tells the shell what to look up in the store) for `gap_patience_sec`; then
  the core moves past it, and the integrity gate forces HOLD while the gap is inside its window.
- Context candles (`v2+5m+1h`) are fed as soon as they closed, before the base candle that may use
  them; a base candle waits for the context it needs like for a gap.
- Until the pipeline has `warmup_bars` candles, decisions are forced HOLDs (`warming_up`).
- A candle decided long after it closed (catching up after a restart) is judged stale by the quality
  gate against the newest candle known, so nothing old is traded on, and nothing is skipped either.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from domain.candle_columns import CandleColumns
from domain.candles import Candle, interval_ms
from domain.market import Interval
from domain.messages import InputSnapshot, MarketInput, decision_sequence, trace_id
from features.context import context_cutoff_ms
from features.gates import GateVerdict, check_integrity, check_quality
from features.normalization import NormalizationStats
from features.pipeline import FeaturePipeline
from features.spec import FeatureSetSpec
from trading.context import PairContext

WARMING_UP = "warming_up"
CONTEXT_MISSING = "context_missing"
GATE_WINDOW_BARS = 120
"""The integrity gate's window: twice the longest feature window (60 bars), so a gap forces HOLD for
as long as it can bend a feature."""


@dataclass(frozen=True)
class GateSettings:
    ood_zscore_limit: float = 8.0
    max_missing_critical: int = 0
    max_freshness_sec: float = 120.0
    max_source_drift: float = 0.002
    gap_patience_sec: float = 30.0


@dataclass(frozen=True)
class Missing:
    """Candles the core waits for: [start_ms, end_ms) of an interval."""

    interval: Interval
    start_ms: int
    end_ms: int


class FeatureCore:
    def __init__(
        self,
        context: PairContext,
        spec: FeatureSetSpec,
        gates: GateSettings,
        *,
        stats: NormalizationStats | None = None,
        feature_set_version_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        spec.check_interval(context.interval)
        self.context = context
        self.spec = spec
        self.gates = gates
        self.stats = stats
        self.feature_set_version_id = feature_set_version_id
        self._clock = clock
        self._step = interval_ms(context.interval)
        self._pipeline: FeaturePipeline | None = None
        self._history: list[Candle] = []
        """Base candles kept while warming up (the pipeline opens on them)."""
        self._context_history: dict[Interval, list[Candle]] = {iv: [] for iv in spec.context}
        self._window: deque[Candle] = deque(maxlen=GATE_WINDOW_BARS)
        self._pending: dict[int, Candle] = {}
        self._pending_context: dict[Interval, dict[int, Candle]] = {iv: {} for iv in spec.context}
        self._context_last: dict[Interval, int | None] = dict.fromkeys(spec.context)
        self.last_open_ms: int | None = None
        """The newest base candle decided (or the start point, before the first decision)."""
        self.newest_known_ms: int | None = None
        self._waiting_since: float | None = None

    # ---------------------------------------------------------------- opening

    def open(
        self,
        history: CandleColumns,
        context_history: Mapping[Interval, CandleColumns],
        last_open_ms: int,
    ) -> None:
        """Start after `last_open_ms` (the last decided candle, or the run's start point), with the
        final candles up to and including it (`history`, and each context interval's)."""
        base = [c for c in history.to_candles() if c.open_time_ms <= last_open_ms]
        self.last_open_ms = last_open_ms
        self.newest_known_ms = last_open_ms
        self._window.extend(base[-GATE_WINDOW_BARS:])
        for interval in self.spec.context:
            cutoff = context_cutoff_ms(last_open_ms, self.context.interval, interval)
            closed = [
                c for c in context_history[interval].to_candles() if c.open_time_ms + interval_ms(interval) <= cutoff
            ]
            self._context_history[interval] = closed[-self.spec.warmup_bars :]
            self._context_last[interval] = closed[-1].open_time_ms if closed else None
        self._history = base[-self.spec.warmup_bars :]
        self._try_open_pipeline()

    @property
    def warming_up(self) -> bool:
        return self._pipeline is None

    # ---------------------------------------------------------------- intake

    def add(self, candles: Iterable[Candle]) -> None:
        for candle in candles:
            if candle.pair != self.context.pair:
                continue
            if candle.interval == self.context.interval:
                if self.last_open_ms is None or candle.open_time_ms > self.last_open_ms:
                    self._pending[candle.open_time_ms] = candle
                if self.newest_known_ms is None or candle.open_time_ms > self.newest_known_ms:
                    self.newest_known_ms = candle.open_time_ms
            elif candle.interval in self._pending_context:
                last = self._context_last[candle.interval]
                if last is None or candle.open_time_ms > last:
                    self._pending_context[candle.interval][candle.open_time_ms] = candle

    def missing(self) -> list[Missing]:
        """What the core is waiting for, for the shell to look up in the store."""
        if self.last_open_ms is None:
            return []
        wanted: list[Missing] = []
        expected = self.last_open_ms + self._step
        later = [t for t in self._pending if t > expected]
        if expected not in self._pending and later:
            wanted.append(Missing(self.context.interval, expected, min(later)))
        if expected in self._pending:
            for interval, start, end in self._context_wanted(expected):
                wanted.append(Missing(interval, start, end))
        return wanted

    def process(self) -> list[MarketInput]:
        """Every base candle that can be decided now, in order."""
        out: list[MarketInput] = []
        while self.last_open_ms is not None:
            expected = self.last_open_ms + self._step
            candle = self._pending.get(expected)
            if candle is None:
                later = [t for t in self._pending if t > expected]
                if not later or not self._patience_over():
                    break
                candle = self._pending[min(later)]  # the gap was waited for long enough
            if self._context_wanted(candle.open_time_ms):
                if not self._patience_over():
                    break
                self._feed_context(candle.open_time_ms)
                out.append(self._decide(candle, forced=CONTEXT_MISSING))
                continue
            self._feed_context(candle.open_time_ms)
            out.append(self._decide(candle))
        return out

    # ---------------------------------------------------------------- deciding

    def _decide(self, candle: Candle, forced: str | None = None) -> MarketInput:
        self._waiting_since = None
        del self._pending[candle.open_time_ms]
        self.last_open_ms = candle.open_time_ms
        self._window.append(candle)
        final_at = self._clock()
        sequence = decision_sequence(self.context.interval, candle.open_time_ms)
        trace = trace_id(self.context.pair, self.context.interval, candle.open_time_ms)
        features: tuple[float, ...] = ()
        gates: dict[str, object] = {}
        snapshot = None
        if self._pipeline is None:
            self._history.append(candle)
            self._try_open_pipeline()
            forced = forced or WARMING_UP
        else:
            values = self._pipeline.update(
                candle.open_time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume
            )
            window = CandleColumns.from_candles(list(self._window))
            integrity = check_integrity(window, max_drift=self.gates.max_source_drift).verdict
            quality = self._quality(values, candle)
            gates = {"integrity": integrity.provenance(), "quality": quality.provenance()}
            forced = forced or integrity.reason or quality.reason
            features = tuple(float(v) for v in values)
            snapshot = InputSnapshot(
                int(window.open_time_ms[0]),
                int(window.open_time_ms[-1]),
                len(window),
                _hash_candles(window),
                hashlib.sha256(np.asarray(values, dtype=np.float64).tobytes()).hexdigest(),
                self.spec.name,
                self.feature_set_version_id,
                self.spec.market_features,
            )
        return MarketInput(
            self.context.run_id,
            self.context.pair,
            self.context.interval,
            sequence,
            trace,
            candle,
            features,
            forced,
            gates,
            snapshot,
            final_at,
        )

    def _quality(self, values: np.ndarray, candle: Candle) -> GateVerdict:
        newest = self.newest_known_ms if self.newest_known_ms is not None else candle.open_time_ms
        return check_quality(
            self.spec,
            values,
            candle_close_ms=candle.open_time_ms + self._step,
            now_ms=newest + self._step,
            stats=self.stats,
            ood_zscore_limit=self.gates.ood_zscore_limit,
            max_missing_critical=self.gates.max_missing_critical,
            max_freshness_sec=self.gates.max_freshness_sec,
        )

    def _try_open_pipeline(self) -> None:
        if len(self._history) < self.spec.warmup_bars:
            return
        if any(len(self._context_history[iv]) < self.spec.warmup_bars for iv in self.spec.context):
            return
        self._pipeline = FeaturePipeline(
            self.spec,
            CandleColumns.from_candles(self._history[-self.spec.warmup_bars :]),
            {iv: CandleColumns.from_candles(self._context_history[iv]) for iv in self.spec.context},
        )
        self._history = []
        self._context_history = {iv: [] for iv in self.spec.context}

    # ---------------------------------------------------------------- context

    def _context_wanted(self, base_open_ms: int) -> list[tuple[Interval, int, int]]:
        """Context candles that have closed by the cutoff of the base candle opening at `base_open_ms`
        (`context_cutoff_ms`) but are neither fed nor pending."""
        wanted = []
        for interval in self.spec.context:
            step = interval_ms(interval)
            cutoff = context_cutoff_ms(base_open_ms, self.context.interval, interval)
            newest_closed = (cutoff // step) * step - step  # the last context candle closed by then
            last = self._context_last[interval]
            start = newest_closed if last is None else last + step
            need = range(start, newest_closed + 1, step)
            if any(t not in self._pending_context[interval] for t in need):
                wanted.append((interval, start, newest_closed + step))
        return wanted

    def _feed_context(self, base_open_ms: int) -> None:
        for interval in self.spec.context:
            step = interval_ms(interval)
            cutoff = context_cutoff_ms(base_open_ms, self.context.interval, interval)
            pending = self._pending_context[interval]
            for t in sorted(pending):
                if t + step > cutoff:
                    break
                candle = pending.pop(t)
                self._context_last[interval] = t
                if self._pipeline is None:
                    self._context_history[interval].append(candle)
                    self._context_history[interval] = self._context_history[interval][-self.spec.warmup_bars :]
                else:
                    self._pipeline.update_context(
                        interval, t, candle.open, candle.high, candle.low, candle.close, candle.volume
                    )

    def _patience_over(self) -> bool:
        now = self._clock()
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= self.gates.gap_patience_sec


def _hash_candles(window: CandleColumns) -> str:
    digest = hashlib.sha256()
    for column in (window.open_time_ms, window.open, window.high, window.low, window.close, window.volume):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()
