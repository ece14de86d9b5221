"""The untouched final span of a training: `tradingd train` keeps the last `promotion_gates.holdout_share`
of the dataset's rows from the agent (no training step, no normalisation statistic, no export check reads
them), then backtests the exact artifact it records on those rows, beside flat and buy-and-hold, in the
agent's world. The figures are the version's `training_metrics.holdout`; the `holdout` promotion gate
reads them. A walk-forward measures the configuration, fold by fold; this measures the artifact that
would trade. The same artifact on the rows it was trained on is `training_metrics.in_sample`: labelled in
sample, it says whether the agent could fit at all, not what it will earn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from domain.candles import iso_minute
from features.spec import FeatureSetSpec
from learning.evaluation.folds import MIN_TEST_BARS
from learning.evaluation.metrics import metrics
from policies.artifact import PolicyArtifact
from policies.baselines import ArtifactPolicy

if TYPE_CHECKING:  # nautilus takes seconds to import: only scoring pays for it, not the gates
    from learning.evaluation.backtest import BacktestSettings

HOLDOUT = "holdout"
IN_SAMPLE = "in_sample"
STOOD_ASIDE = "stood_aside"
"""A walk-forward fold's training figure: why its artifact did not trade the test span
(`promotion_gates.walk_forward_holdout`)."""
REPORTED = (
    "net_pnl",
    "return",
    "max_drawdown",
    "trade_count",
    "win_rate",
    "turnover",
    "fees",
    "funding",
    "exposure_time",
)


class HoldoutError(ValueError):
    """The dataset is too short to keep a holdout span and still train."""


@dataclass(frozen=True)
class HoldoutSplit:
    train_rows: int
    """The rows the agent learns from: the first ones."""
    holdout_rows: int
    """The last ones, untouched until the artifact is scored on them (0: no holdout)."""


def holdout_split(rows: int, share: float, min_train_rows: int = MIN_TEST_BARS) -> HoldoutSplit:
    """The last `share` of `rows` (rounded down) held out. Refused when the holdout would be too short to
    trade on, or would leave fewer than `min_train_rows` to train on."""
    held = int(rows * share)
    if share > 0 and held < MIN_TEST_BARS:
        raise HoldoutError(
            f"a holdout of {share:.0%} of {rows} rows is {held} rows, fewer than {MIN_TEST_BARS}: use a longer "
            "dataset (or promotion_gates.holdout_share = 0, which no agent can be promoted with)"
        )
    if rows - held < min_train_rows:
        raise HoldoutError(
            f"after a holdout of {held} of {rows} rows, {rows - held} are left to train on, fewer than "
            f"{min_train_rows}: use a longer dataset"
        )
    return HoldoutSplit(rows - held, held)


def score_span(
    artifact: PolicyArtifact,
    spec: FeatureSetSpec,
    decision_threshold: float,
    candles: CandleColumns,
    features: npt.NDArray[np.float64],
    settings: BacktestSettings,
    sample: Literal["in_sample", "out_of_sample"],
) -> dict[str, Any]:
    """The artifact's backtest on `candles`, with flat's and buy-and-hold's figures: on the held-out rows
    (out of sample), or on the rows it was trained on (in sample: whether it could learn at all)."""
    from learning.evaluation.backtest import market_segment, run_backtest

    result = run_backtest(ArtifactPolicy(artifact, spec, decision_threshold), candles, features, settings)
    held = metrics([market_segment(candles, settings)]).to_json()
    own = result.metrics.to_json()
    return {
        "sample": sample,
        "rows": len(candles),
        "from_ms": int(candles.open_time_ms[0]),
        "to_ms": int(candles.open_time_ms[-1]),
        "metrics": {key: own[key] for key in REPORTED},
        "buy_and_hold": {key: held[key] for key in ("net_pnl", "return", "max_drawdown", "fees", "funding")},
        "flat": {"net_pnl": 0.0},
        "seconds": round(result.seconds, 3),
    }


def describe_score(score: dict[str, Any]) -> str:
    """An artifact's score on a span, for a person: the holdout's, or the in-sample fit's."""
    own, held = score["metrics"], score["buy_and_hold"]
    span = f"from {iso_minute(score['from_ms'])} to {iso_minute(score['to_ms'])}"
    what = (
        f"holdout (out of sample: the last {score['rows']:,} rows, {span}, untouched by training)"
        if score["sample"] == "out_of_sample"
        else f"in sample (the {score['rows']:,} rows trained on, {span}: whether it could fit, not what it will earn)"
    )
    return (
        f"{what}: net PnL {own['net_pnl']:,.2f} USDT, {own['trade_count']} trades, turnover "
        f"{own['turnover']:.1f}x, drawdown {own['max_drawdown']:.1%}; flat 0.00 USDT, buy-and-hold "
        f"{held['net_pnl']:,.2f} USDT (drawdown {held['max_drawdown']:.1%})"
    )
