"""The execution actor's metric summary and the endpoint's cumulative buckets built from it."""

from __future__ import annotations

import math

from daemon.metrics_endpoint import _buckets
from pipeline.execution.metrics import MetricSummary
from storage.records import MetricRow


def test_each_recorded_metric_lands_in_its_bucket_and_others_are_left_alone() -> None:
    summary = MetricSummary()
    values = [0.4, 3.0, 3.0, 9.9, 10.0, 12_000.0, math.nan]
    summary.observe(MetricRow("decision_latency_ms", value) for value in values)
    summary.observe([MetricRow("slippage_bps", 1.5), MetricRow("time_to_ready_sec", 20.0)])
    latency = summary.to_json()["decision_latency_ms"]
    assert latency["count"] == 6, "a NaN is not observed"
    assert latency["sum"] == sum(values[:-1])
    # bounds 1, 2.5, 5, 10, ...: 0.4 -> <=1; 3, 3 -> <=5; 9.9 and 10 -> <=10 (upper bounds are inclusive)
    assert latency["counts"][:4] == [1, 0, 2, 2]
    assert latency["counts"][-1] == 1, "12 s is above the last bound"
    assert summary.to_json()["slippage_bps"]["count"] == 1
    assert summary.to_json()["feature_drift_zscore"]["count"] == 0


def test_the_endpoint_buckets_are_cumulative_in_the_metrics_unit() -> None:
    summary = MetricSummary()
    summary.observe(MetricRow("decision_latency_ms", value) for value in (0.5, 7.0, 7.0, 20_000.0))
    buckets = _buckets(summary.to_json()["decision_latency_ms"], 0.001)
    assert buckets[0] == ("0.001", 1.0)
    assert dict(buckets)["0.01"] == 3.0
    assert buckets[-1] == ("+Inf", 4.0)
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)
