"""Evaluating policies over folds: each fold's policy is made from the rows before its test span (an
agent is trained on them from scratch; a baseline needs nothing), then backtested on the test span.
Every policy sees the same folds, so their figures compare.

A single backtest is the same thing with one span and no training: `whole_span`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from learning.evaluation.backtest import BacktestResult, BacktestSettings, run_backtest
from learning.evaluation.folds import Fold
from learning.evaluation.metrics import Metrics, metrics
from observability.progress import Reporter, quiet, track
from policies.baselines import Policy

Floats = npt.NDArray[np.float64]


class PolicyMaker(Protocol):
    """Makes the policy a fold is tested with, from the rows it may learn from."""

    name: str

    def make(self, fold: Fold, candles: CandleColumns, features: Floats) -> tuple[Policy, dict[str, Any]]:
        """The policy, and what making it produced worth reporting (training figures)."""
        ...

    def settings(self, fold: Fold, base: BacktestSettings) -> BacktestSettings:
        """The world the fold's policy is backtested in (`base`, unless making it chose another)."""
        ...


class FixedPolicy:
    """A policy that learns nothing from the training rows: a baseline, or an already trained artifact."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name

    def make(self, fold: Fold, candles: CandleColumns, features: Floats) -> tuple[Policy, dict[str, Any]]:
        return self.policy, {}

    def settings(self, fold: Fold, base: BacktestSettings) -> BacktestSettings:
        return base


@dataclass(frozen=True, eq=False)
class FoldOutcome:
    fold: Fold
    results: dict[str, BacktestResult]
    """By policy name; empty for a skipped fold."""
    training: dict[str, dict[str, Any]]


@dataclass(frozen=True, eq=False)
class Evaluation:
    folds: tuple[FoldOutcome, ...]
    aggregate: dict[str, Metrics]
    """By policy name, over the evaluated folds."""

    @property
    def evaluated(self) -> list[FoldOutcome]:
        return [outcome for outcome in self.folds if outcome.fold.skipped is None]


def whole_span(rows: int) -> list[Fold]:
    """A plain backtest: one test span over every row, nothing to train on."""
    return [Fold(1, 0, 0, 0, rows)]


def evaluate_folds(
    candles: CandleColumns,
    features: Floats,
    folds: Sequence[Fold],
    makers: Sequence[PolicyMaker],
    settings: BacktestSettings,
    on_result: Callable[[Fold, str, BacktestResult], None] | None = None,
    progress: Reporter = quiet,
) -> Evaluation:
    """`progress`: told of each fold's backtests (a fold's training reports through its maker)."""
    if not any(fold.skipped is None for fold in folds):
        raise ValueError("every fold is skipped: there is nothing to evaluate (lower min_train_bars or use more rows)")
    names = [maker.name for maker in makers]
    if len(set(names)) != len(names):
        raise ValueError(f"policy names must be distinct: {names}")
    outcomes: list[FoldOutcome] = []
    for fold in folds:
        if fold.skipped is not None:
            outcomes.append(FoldOutcome(fold, {}, {}))
            continue
        train = np.arange(fold.train_start, fold.train_end)
        test = np.arange(fold.test_start, fold.test_end)
        results: dict[str, BacktestResult] = {}
        training: dict[str, dict[str, Any]] = {}
        for maker in track(makers, f"fold {fold.index}/{len(folds)}: backtests", "backtest", progress):
            policy, made = maker.make(fold, candles.take(train), features[train])
            result = run_backtest(policy, candles.take(test), features[test], maker.settings(fold, settings))
            results[maker.name] = result
            if made:
                training[maker.name] = made
            if on_result is not None:
                on_result(fold, maker.name, result)
        outcomes.append(FoldOutcome(fold, results, training))
    evaluated = [outcome for outcome in outcomes if outcome.fold.skipped is None]
    aggregate = {
        name: metrics(
            [outcome.results[name].segment for outcome in evaluated],
            [outcome.results[name].book for outcome in evaluated],
        )
        for name in names
    }
    return Evaluation(tuple(outcomes), aggregate)
