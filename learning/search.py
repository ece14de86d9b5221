"""The hyperparameter search of `tradingd train --tune` (Ray Tune): configurations sampled from the
agent's `[search]` space, each trained with every seed on inner walk-forward folds of the rows it may
learn from, and scored out of sample on the inner folds' test spans. The best configuration (and seed) is
what is then trained on all those rows.

Nested, so nothing it chooses has seen the span it will be judged on: `tradingd train` searches on the
rows before its holdout, and a walk-forward evaluation of a version trained so searches again inside each
outer fold's training rows, never touching that fold's test span.

The configurations are distinct, drawn without replacement from the space (all of it when it is no
larger than `trials`) by a generator seeded with the first seed, and each is run with every seed. The
score of a trial is the mean net PnL (USDT, after fees, slippage and funding) of its artifacts over the
inner test spans; ties go to the first trial in the choices' order. So the same configuration, data and
code choose the same configuration, and train the same artifact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from domain.candle_columns import CandleColumns
from features.normalization import NormalizationStats
from features.spec import FeatureSetSpec
from learning.agent_config import AgentConfig
from learning.evaluation.backtest import BacktestSettings
from learning.evaluation.folds import FoldError, FoldSpec, walk_forward_folds
from learning.evaluation.holdout import score_span
from learning.evaluation.world import market_of

log = structlog.get_logger("tradingd.search")
SEED_KEY = "hyperparameters.seed"
SEARCH = "search"
"""The key of a search's record in a version's `training_metrics`."""


class SearchError(ValueError):
    """The search cannot run: no `[search]` section, or too few rows for its inner folds."""


@dataclass(frozen=True)
class SearchResult:
    best: AgentConfig
    """The configuration chosen, with its seed: what is trained on every row."""
    record: dict[str, Any]
    """Every trial's choices, inner-fold figures and score, the best, and how long it took."""


def inner_score(
    agent: AgentConfig,
    spec: FeatureSetSpec,
    candles: CandleColumns,
    features: npt.NDArray[np.float64],
    settings: BacktestSettings,
    inner_folds: int,
    on_iteration: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """`agent` trained from scratch on each inner fold's training rows (their statistics only) and its
    artifact backtested on the fold's test rows: the per-fold figures and their mean net PnL."""
    from learning.training import fit_policy  # RLlib: only where a trial runs

    try:
        folds = walk_forward_folds(len(candles), FoldSpec(inner_folds))
    except FoldError as error:
        raise SearchError(f"the search's inner folds: {error}") from None
    figures = []
    for fold in folds:
        train, test = np.arange(fold.train_start, fold.train_end), np.arange(fold.test_start, fold.test_end)
        rows, matrix = candles.take(train), features[train]
        stats = NormalizationStats.of(spec.market_features, matrix)
        artifact, _ = fit_policy(
            agent,
            spec,
            market_of(rows, matrix, stats, settings),
            settings.rules,
            {"agent": agent.name, "search_fold": fold.index},
            on_iteration,
            settings.limits,
            candles.pair,
        )
        scored = score_span(
            artifact, spec, agent.decision_threshold, candles.take(test), features[test], settings, "out_of_sample"
        )
        figures.append(
            {
                "fold": fold.index,
                "net_pnl": scored["metrics"]["net_pnl"],
                "trade_count": scored["metrics"]["trade_count"],
                "max_drawdown": scored["metrics"]["max_drawdown"],
                "buy_and_hold_net_pnl": scored["buy_and_hold"]["net_pnl"],
            }
        )
    return {"score": float(np.mean([fold["net_pnl"] for fold in figures])), "folds": figures}


def sample_configurations(space: Mapping[str, Sequence[Any]], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` distinct configurations of `space`, drawn without replacement by a generator seeded with
    `seed` (all of them, in order, when the space holds no more than that)."""
    keys = sorted(space)
    sizes = [len(space[key]) for key in keys]
    total = int(np.prod(sizes)) if keys else 1
    picks = range(total) if total <= trials else np.random.default_rng(seed).choice(total, trials, replace=False)
    chosen = []
    for pick in sorted(int(p) for p in picks):
        choices, rest = {}, pick
        for key, size in zip(keys, sizes, strict=True):
            rest, index = divmod(rest, size)
            choices[key] = space[key][index]
        chosen.append(choices)
    return chosen


def search(
    agent: AgentConfig,
    spec: FeatureSetSpec,
    candles: CandleColumns,
    features: npt.NDArray[np.float64],
    settings_of: Callable[[AgentConfig], BacktestSettings],
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Run the agent's `[search]` on `candles` (the rows it may learn from) with Ray Tune, one trial per
    CPU at a time; `settings_of` gives the world a trial's configuration backtests in (its slippage and
    minimum holding are its own); `on_trial` is told of each finished trial."""
    from ray import tune

    from learning.training import ensure_ray

    plan = agent.search
    if plan is None:
        raise SearchError(f"agent {agent.name} has no [search] section: add one to tune it")
    started = time.monotonic()
    ensure_ray()
    runs = [{**choices, SEED_KEY: seed} for choices in sample_configurations(plan.space, plan.trials, plan.seeds[0])
            for seed in plan.seeds]  # fmt: skip

    def trial(config: dict[str, Any], data: tuple[CandleColumns, npt.NDArray[np.float64]]) -> None:
        rows, matrix = data
        chosen = agent.with_choices(dict(config["run"]))
        tune.report(inner_score(chosen, spec, rows, matrix, settings_of(chosen), plan.inner_folds))

    class Progress(tune.Callback):
        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            if on_trial is not None:
                on_trial({"config": dict(trial.config["run"]), "score": result.get("score")})

    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trial, data=(candles, features)), {"cpu": 1}),
        param_space={"run": tune.grid_search(runs)},
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=1, reuse_actors=False),
        run_config=tune.RunConfig(verbose=0, callbacks=[Progress()], log_to_file=False),
    )
    grid = tuner.fit()
    trials = []
    for index in range(len(grid)):
        outcome = grid[index]
        if outcome.error is not None or outcome.config is None or outcome.metrics is None:
            raise SearchError(f"search trial {index} failed: {outcome.error}")
        figures = outcome.metrics
        trials.append({"choices": dict(outcome.config["run"]), "score": figures["score"], "folds": figures["folds"]})
    # The order Tune finishes trials in depends on timing; the choice must not.
    trials.sort(key=lambda entry: sorted(entry["choices"].items()))
    best = max(trials, key=lambda entry: entry["score"])
    record = {
        "trials": trials,
        "best": best,
        "inner_folds": plan.inner_folds,
        "rows": len(candles),
        "seconds": round(time.monotonic() - started, 1),
    }
    log.info("search_finished", agent=agent.name, trials=len(trials), best=best["choices"], score=best["score"])
    return SearchResult(agent.with_choices(best["choices"]), record)
