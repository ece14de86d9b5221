"""The execution actor's running summary of what it records in `observability_metrics`, for the metrics
endpoint: histograms of decision latency and slippage, the latest feature drift. Kept in memory from the
actor's start (a restarted actor starts again from zero, as Prometheus counters may)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.records import MetricRow

BUCKETS: dict[str, tuple[float, ...]] = {
    "decision_latency_ms": (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000),
    "slippage_bps": (0.5, 1, 2, 5, 10, 20, 50, 100, 200),
    "feature_drift_zscore": (1, 2, 3, 4, 5, 7.5, 10, 20),
}
"""Upper bounds of each histogram's buckets (an implicit last one, +Inf, holds the rest)."""


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    observed: int = 0
    last: float | None = None

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        if not math.isfinite(value):
            return
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.observed += 1
        self.last = value

    def to_json(self) -> dict[str, Any]:
        return {"bounds": list(self.bounds), "counts": list(self.counts), "sum": self.total, "count": self.observed,
                "last": self.last}  # fmt: skip


@dataclass
class MetricSummary:
    histograms: dict[str, Histogram] = field(
        default_factory=lambda: {name: Histogram(bounds) for name, bounds in BUCKETS.items()}
    )

    def observe(self, rows: Iterable[MetricRow]) -> None:
        for row in rows:
            histogram = self.histograms.get(row.metric)
            if histogram is not None:
                histogram.observe(row.value)

    def to_json(self) -> dict[str, Any]:
        return {name: histogram.to_json() for name, histogram in self.histograms.items()}
