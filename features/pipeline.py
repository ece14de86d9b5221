"""The market features of a feature set, context included: one engine over the pair's own candles
and one per context interval, joined without look-ahead.

Datasets and the live feature actor both go through `FeaturePipeline`. A dataset build calls `run`,
which feeds the candles in the order live would have seen them become final (a context candle before
every base candle that opens at or after its close), so the two paths are one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.market import Interval
from features.context import ContextAligner, context_cutoff_ms
from features.engine import FeatureEngine
from features.spec import FeatureSetSpec

Floats = npt.NDArray[np.float64]
NO_CANDLES: Mapping[Interval, CandleColumns] = {}


class FeaturePipeline:
    """Not thread-safe; not picklable (TA-Lib handles): to checkpoint, keep each interval's last
    `warmup_bars` final candles and open a new pipeline on them."""

    def __init__(
        self,
        spec: FeatureSetSpec,
        history: CandleColumns,
        context_history: Mapping[Interval, CandleColumns] = NO_CANDLES,
    ) -> None:
        """`history`: final candles of the pair's own interval; `context_history`: for each context
        interval, its final candles (each at least `warmup_bars` long)."""
        spec.check_interval(history.interval)
        if set(context_history) != set(spec.context):
            raise ValueError(
                f"feature set {spec.name} needs the context {list(spec.context)}, was given {sorted(context_history)}"
            )
        self.spec = spec
        plain = spec.without_context()
        self._engine = FeatureEngine(plain, history)
        self._sources = np.array([plain.interval_features.index(name) for name in spec.context_sources], dtype=np.intp)
        self._context: dict[Interval, tuple[FeatureEngine, ContextAligner]] = {}
        for interval in spec.context:
            candles = context_history[interval]
            if candles.pair != history.pair or candles.interval != interval:
                raise ValueError(f"context {interval} was given {candles.pair} {candles.interval} candles")
            engine = FeatureEngine(plain, candles)
            aligner = ContextAligner(interval, history.interval, len(self._sources))
            assert engine.last_open_ms is not None
            aligner.add(engine.last_open_ms, engine.latest[self._sources])
            self._context[interval] = (engine, aligner)
        self.latest = self._join(self._engine.last_open_ms, self._engine.latest)

    @property
    def last_open_ms(self) -> int | None:
        return self._engine.last_open_ms

    def update(self, open_time_ms: int, o: float, h: float, low: float, c: float, v: float) -> Floats:
        """The market features of the base candle that just became final."""
        self.latest = self._join(open_time_ms, self._engine.update(open_time_ms, o, h, low, c, v))
        return self.latest

    def update_context(
        self, interval: Interval, open_time_ms: int, o: float, h: float, low: float, c: float, v: float
    ) -> None:
        """A context candle became final: base candles whose cutoff it closed by will see it."""
        try:
            engine, aligner = self._context[interval]
        except KeyError:
            raise ValueError(f"feature set {self.spec.name} has no {interval} context") from None
        aligner.add(open_time_ms, engine.update(open_time_ms, o, h, low, c, v)[self._sources])

    def run(self, candles: CandleColumns, context: Mapping[Interval, CandleColumns] = NO_CANDLES) -> Floats:
        """`update` for each base candle, with every context candle fed as soon as it has closed by the
        base candle's cutoff (`context_cutoff_ms`): one row of market features per base candle. Context
        candles closing after the last base candle's cutoff are left unfed (they may not be used yet)."""
        feeds = []
        for interval in self.spec.context:
            more = context.get(interval)
            if more is not None and len(more):
                closes = more.open_time_ms + interval_ms(interval)
                # For each base candle: how many context candles have closed by its cutoff.
                cutoffs = context_cutoff_ms(candles.open_time_ms, candles.interval, interval)
                due = np.searchsorted(closes, cutoffs, side="right").tolist()
                feeds.append((interval, more, due))
        fed = [0] * len(feeds)
        rows = np.empty((len(candles), len(self.spec.market_features)))
        columns = (candles.open_time_ms, candles.open, candles.high, candles.low, candles.close, candles.volume)
        for i, (t, o, h, low, c, v) in enumerate(zip(*(column.tolist() for column in columns), strict=True)):
            for k, (interval, more, due) in enumerate(feeds):
                for j in range(fed[k], due[i]):
                    self.update_context(interval, *_row(more, j))
                fed[k] = max(fed[k], due[i])
            rows[i] = self.update(t, o, h, low, c, v)
        return rows

    def _join(self, open_time_ms: int | None, own: Floats) -> Floats:
        if not self._context:
            return own
        assert open_time_ms is not None
        return np.concatenate([own, *(aligner.for_base(open_time_ms) for _, aligner in self._context.values())])


def _row(candles: CandleColumns, i: int) -> tuple[int, float, float, float, float, float]:
    return (
        int(candles.open_time_ms[i]),
        float(candles.open[i]),
        float(candles.high[i]),
        float(candles.low[i]),
        float(candles.close[i]),
        float(candles.volume[i]),
    )
