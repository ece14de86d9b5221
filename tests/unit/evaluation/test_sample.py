"""In sample or out of sample, from the lineage: a version backtested on the rows it was trained on is
in sample (with a warning), on overlapping rows partly (with the share), on later rows or another pair
out of sample; a walk-forward's folds and a baseline are out of sample; no lineage is `unknown`."""

from __future__ import annotations

import numpy as np

from learning.evaluation.sample import TrainingSpan, backtest_sample, baseline_sample, walk_forward_sample

MINUTE = 60_000
START = 1_700_000_000_000 // MINUTE * MINUTE
# Trained on 1,000 one-minute candles: open times START .. START + 999 minutes.
TRAINED = TrainingSpan("d-train", "ETH-USDT", MINUTE, START, START + 999 * MINUTE)


def minutes(first: int, count: int) -> np.ndarray:
    return START + (first + np.arange(count, dtype=np.int64)) * MINUTE


def test_the_training_rows_themselves_are_in_sample_with_a_warning() -> None:
    sample = backtest_sample("agent:a@1", "ETH-USDT", MINUTE, [minutes(0, 1_000)], TRAINED)
    assert sample.label == "in_sample"
    assert (sample.rows, sample.in_sample_rows, sample.in_sample_share) == (1_000, 1_000, 1.0)
    assert sample.folds == ("in_sample",)
    assert sample.warning is not None
    assert sample.warning.startswith("IN-SAMPLE: agent:a@1 was trained on dataset d-train")
    assert "covers 1,000 of the 1,000 evaluated rows (100%)" in sample.warning
    assert sample.to_json()["label"] == "in_sample"
    assert sample.to_json()["training"]["dataset_id"] == "d-train"


def test_an_overlapping_span_is_partly_in_sample_and_says_which_share() -> None:
    # 400 rows from minute 800: 200 overlap the training rows (800..999), 200 lie after them.
    sample = backtest_sample("agent:a@1", "ETH-USDT", MINUTE, [minutes(800, 400)], TRAINED)
    assert sample.label == "partly_in_sample"
    assert (sample.in_sample_rows, sample.in_sample_share) == (200, 0.5)
    assert sample.warning is not None
    assert "PARTLY IN-SAMPLE" in sample.warning
    assert "200 of the 400 evaluated rows (50%)" in sample.warning


def test_later_rows_and_another_pair_are_out_of_sample() -> None:
    later = backtest_sample("agent:a@1", "ETH-USDT", MINUTE, [minutes(1_000, 500)], TRAINED)
    assert (later.label, later.in_sample_rows, later.warning) == ("out_of_sample", 0, None)
    other_pair = backtest_sample("agent:a@1", "BTC-USDT", MINUTE, [minutes(0, 1_000)], TRAINED)
    assert (other_pair.label, other_pair.warning) == ("out_of_sample", None)
    assert "another pair" in other_pair.detail


def test_coarser_bars_overlapping_the_training_time_are_in_sample() -> None:
    # A 5-minute bar opening at minute 995 spans 995..1000: it meets the last trained minute (999).
    five = 5 * MINUTE
    bars = START + (995 + 5 * np.arange(4, dtype=np.int64)) * MINUTE
    sample = backtest_sample("agent:a@1", "ETH-USDT", five, [bars], TRAINED)
    assert (sample.label, sample.in_sample_rows) == ("partly_in_sample", 1)


def test_walk_forward_folds_and_baselines_are_out_of_sample() -> None:
    folds = [minutes(1_000, 100), minutes(1_100, 100)]
    walk = walk_forward_sample(folds)
    assert (walk.label, walk.basis, walk.rows, walk.folds) == (
        "out_of_sample",
        "walk_forward",
        200,
        ("out_of_sample", "out_of_sample"),
    )
    assert walk.warning is None
    assert baseline_sample(folds).label == "out_of_sample"


def test_a_version_without_lineage_is_unknown_and_warned_about() -> None:
    sample = backtest_sample("agent:a@1", "ETH-USDT", MINUTE, [minutes(0, 10)], None)
    assert sample.label == "unknown"
    assert sample.warning is not None
    assert "no recorded training dataset" in sample.warning
