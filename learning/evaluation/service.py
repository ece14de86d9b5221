"""`tradingd evaluate`: an agent version (or a baseline) over a dataset version, as one backtest or
walk-forward folds, beside every baseline on the same spans; recorded in `evaluation_reports` with the
versions, dataset, parameters and code version that produced it, and drawn as an HTML report.

The trading world is the agent's training environment (initial equity, exposure, slippage) and its
decision threshold, on the contract the venue lists today with its maximum leverage; a baseline alone
trades in the paper run's world (`[run]`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.instruments import Contract
from features.normalization import NormalizationStats
from features.spec import FeatureSetSpec
from learning.agent_config import AgentConfig, agent_config_of
from learning.code_version import code_version
from learning.datasets import DatasetMismatchError, dataset_spec
from learning.evaluation.backtest import BacktestResult, BacktestSettings
from learning.evaluation.folds import Fold, FoldError, FoldSpec, walk_forward_folds
from learning.evaluation.gates import holdout_gate
from learning.evaluation.holdout import HOLDOUT, IN_SAMPLE, STOOD_ASIDE, HoldoutError, holdout_split, score_span
from learning.evaluation.metrics import Segment, SegmentBook, metrics
from learning.evaluation.report import market_change, write_evaluation_report
from learning.evaluation.sample import Sample, TrainingSpan, backtest_sample, baseline_sample, walk_forward_sample
from learning.evaluation.walk_forward import Evaluation, FixedPolicy, PolicyMaker, evaluate_folds, whole_span
from learning.evaluation.world import World, agent_world, backtest_settings, market_of, settings_for
from observability.progress import Reporter, as_step, quiet
from policies.artifact import load_artifact
from policies.baselines import BASELINES, ArtifactPolicy, HoldPolicy, Policy, baseline
from storage.agents import AgentStore, AgentVersion
from storage.datasets import DatasetStore, DatasetVersion
from storage.evaluations import EvaluationKind, EvaluationStore
from trading.limits import RiskLimits

log = structlog.get_logger("tradingd.evaluation")
EVALUABLE = ("trained", "evaluated", "promoted", "retired")


class EvaluationError(ValueError):
    """The evaluation cannot start: unknown version or dataset, mismatched feature sets, impossible folds."""


@dataclass(frozen=True)
class EvaluationRequest:
    dataset_id: uuid.UUID
    agent_version_id: uuid.UUID | None = None
    policy: str | None = None
    """A baseline's name, when no agent version is evaluated."""
    layout: FoldSpec | None = None
    """None: one backtest over the whole dataset."""


@dataclass(frozen=True)
class EvaluationOutcome:
    report_id: uuid.UUID
    subject: str
    evaluation: Evaluation
    report_path: Path
    sample: Sample
    """In or out of sample: what the evaluated spans are to the policy (from its lineage)."""


@dataclass(frozen=True)
class Stores:
    agents: AgentStore
    datasets: DatasetStore
    evaluations: EvaluationStore


async def evaluate(
    stores: Stores,
    request: EvaluationRequest,
    contract: Contract,
    paper_world: World,
    report_root: Path,
    on_result: Callable[[Fold, str, BacktestResult], None] | None = None,
    progress: Reporter = quiet,
    limits: RiskLimits | None = None,
) -> EvaluationOutcome:
    """`progress`: told of each fold's training iterations, each backtest, and the report. `limits`: the
    risk limit set every backtest (and every fold's training) trades under, its exits and limits as
    live trading applies them (the daemon's `[risk]` settings; recorded in the parameters' `world`)."""
    dataset = await stores.datasets.get(request.dataset_id)
    if dataset is None:
        raise EvaluationError(f"no dataset {request.dataset_id}")
    if contract.symbol != dataset.pair:
        raise EvaluationError(f"the contract is {contract.symbol}, the dataset's pair {dataset.pair}")
    version, agent = await _subject(stores.agents, request, dataset)
    try:
        spec = dataset_spec(dataset, agent)
    except DatasetMismatchError as error:
        raise EvaluationError(str(error)) from None
    world = paper_world if agent is None else agent_world(agent)
    settings = backtest_settings(contract, world, limits, dataset.funding)
    folds = whole_span(dataset.row_count) if request.layout is None else _folds(dataset, request.layout)
    subject = await _subject_maker(stores.agents, request, version, agent, spec, settings, progress)
    makers: list[PolicyMaker] = [subject]
    makers += [FixedPolicy(baseline(name, spec)) for name in _baselines(spec) if name != subject.name]
    parameters: dict[str, Any] = {
        "layout": None if request.layout is None else layout_json(request.layout),
        "strict": None if request.layout is None else request.layout.strict,
        "world": settings.to_json(),
        "decision_threshold": None if agent is None else agent.decision_threshold,
        "baselines": [maker.name for maker in makers[1:]],
        "dataset": {
            "id": str(dataset.id),
            "content_hash": dataset.content_hash,
            "pair": dataset.pair,
            "interval": dataset.interval,
            "rows": dataset.row_count,
            "feature_set": dataset.feature_set,
        },
        "agent_version": None if version is None else version.to_json(),
    }
    kind: EvaluationKind = "backtest" if request.layout is None else "walk_forward"
    content = await stores.datasets.load(dataset)
    sample = await _sample(stores.datasets, subject.name, version, request, dataset, folds, content.candles)
    parameters["sample"] = sample.to_json()
    report_id = await stores.evaluations.start(
        agent_version_id=None if version is None else version.id,
        policy=subject.name,
        dataset_version_id=dataset.id,
        kind=kind,
        parameters=parameters,
        code_version=code_version(),
    )
    log.info("evaluation_started", report_id=str(report_id), policy=subject.name, kind=kind, folds=len(folds))
    try:
        evaluation = evaluate_folds(content.candles, content.features, folds, makers, settings, on_result, progress)
        market = market_change(evaluation, content.candles, settings)
        directory = report_root / f"evaluation-{report_id}"
        report_path = as_step(progress, "evaluate: report", "report", write_evaluation_report)(
            directory,
            title=f"{subject.name} on {dataset.pair} {dataset.interval} ({kind.replace('_', '-')})",
            subject=subject.name,
            evaluation=evaluation,
            candles=content.candles,
            parameters=parameters | {"report_id": str(report_id), "code_version": code_version()},
            sample=sample,
            market=market,
            price_decimals=max(0, -int(contract.tick_size.normalize().as_tuple().exponent)),
        )
        baselines = {maker.name: evaluation.aggregate[maker.name].to_json() for maker in makers[1:]}
        market_folds = iter(zip(market.books, market.segments, sample.folds, strict=True))
        await stores.evaluations.complete(
            report_id,
            metrics=evaluation.aggregate[subject.name].to_json()
            | {"folds_evaluated": len(evaluation.evaluated), "folds_skipped": len(folds) - len(evaluation.evaluated)}
            | {"sample": sample.label, "in_sample_share": sample.in_sample_share, "buy_and_hold": market.to_json()},
            baselines=baselines,
            folds=[
                _fold_json(outcome.fold, outcome.results, outcome.training, subject.name, content.candles)
                | ({} if outcome.fold.skipped is not None else _fold_market(next(market_folds)))
                for outcome in evaluation.folds
            ],
            report_uri=report_path.resolve().as_uri(),
        )
    except BaseException as error:
        await stores.evaluations.fail(report_id, f"{type(error).__name__}: {error}")
        log.error("evaluation_failed", report_id=str(report_id), error=str(error))
        raise
    log.info(
        "evaluation_completed",
        report_id=str(report_id),
        policy=subject.name,
        net_pnl=evaluation.aggregate[subject.name].net_pnl,
        report=str(report_path),
    )
    return EvaluationOutcome(report_id, subject.name, evaluation, report_path, sample)


async def _sample(
    datasets: DatasetStore,
    subject: str,
    version: AgentVersion | None,
    request: EvaluationRequest,
    dataset: DatasetVersion,
    folds: list[Fold],
    candles: CandleColumns,
) -> Sample:
    """In or out of sample, from the lineage: a walk-forward's folds are out of sample by construction;
    a version's artifact is in sample on the rows of the dataset it was trained on, its holdout excepted."""
    spans = [candles.open_time_ms[fold.test_start : fold.test_end] for fold in folds if fold.skipped is None]
    if version is None:
        return baseline_sample(spans)
    if request.layout is not None:
        return walk_forward_sample(spans)
    trained = None if version.dataset_version_id is None else await datasets.get(version.dataset_version_id)
    training = None
    if trained is not None:
        step = interval_ms(trained.interval)
        end_ms = trained.end_ms
        holdout = version.training_metrics.get("holdout")
        if isinstance(holdout, dict) and isinstance(holdout.get("from_ms"), int):
            end_ms = holdout["from_ms"] - step  # the holdout rows were never trained on
        training = TrainingSpan(str(trained.id), trained.pair, step, trained.start_ms, end_ms)
    return backtest_sample(subject, dataset.pair, interval_ms(dataset.interval), spans, training)


def _fold_market(fold: tuple[SegmentBook, Segment, str]) -> dict[str, Any]:
    """The fold's sample label and buy-and-hold's figures on its test span (what the per-fold gates read)."""
    book, segment, label = fold
    held = metrics([segment], [book])
    return {
        "sample": label,
        "buy_and_hold": {"net_pnl": held.net_pnl, "return": held.total_return, "max_drawdown": held.max_drawdown},
    }


class FoldTrainer:
    """An agent configuration trained from scratch on each fold's training rows, its inputs scaled by
    those rows' statistics only (nothing of the test span leaks into the model), in the world and under
    the limits of `settings`. Its figures include the fold's artifact backtested on the rows it was trained
    on (`in_sample`): whether it could fit at all."""

    def __init__(
        self,
        name: str,
        agent: AgentConfig,
        spec: FeatureSetSpec,
        settings: BacktestSettings,
        lineage: dict[str, Any],
        progress: Reporter = quiet,
        tuned: bool = False,
    ):
        """`tuned`: the version was trained with `--tune`, so each fold searches too (nested: on inner
        folds of the fold's training rows) and trains the configuration it chooses."""
        self.name = name
        self._tuned = tuned
        self._chosen: dict[int, AgentConfig] = {}
        self._progress = progress
        self._agent = agent
        self._spec = spec
        self._settings = settings
        self._lineage = lineage

    def make(self, fold: Fold, candles: CandleColumns, features: np.ndarray) -> tuple[Policy, dict[str, Any]]:
        # RLlib and torch take seconds to import: only agent walk-forwards pay for them.
        from learning.search import SEARCH, search
        from learning.training import fit_policy

        gates = self._agent.promotion_gates
        held: np.ndarray | None = None
        if gates.walk_forward_holdout:
            try:
                split = holdout_split(len(candles), gates.holdout_share)
            except HoldoutError as error:
                return self._stand_aside(fold, {}, f"no holdout to score it on: {error}")
            held = np.arange(split.train_rows, len(candles))
            rows = np.arange(split.train_rows)
            candles, features, kept = candles.take(rows), features[rows], (candles.take(held), features[held])
        agent, searched = self._agent, None
        if self._tuned:
            found = search(agent, self._spec, candles, features, lambda chosen: settings_for(self._settings, chosen))
            agent, searched = found.best, found.record
        self._chosen[fold.index] = agent
        settings = self.settings(fold, self._settings)
        stats = NormalizationStats.of(self._spec.market_features, features)
        market = market_of(candles, features, stats, settings)
        task = f"fold {fold.index}: train {self.name}"
        with self._progress(task, agent.hyperparameters.iterations, "iteration") as tracker:
            artifact, figures = fit_policy(
                agent,
                self._spec,
                market,
                settings.rules,
                self._lineage | {"fold": fold.index, "train_rows": len(candles)},
                tracker.advance,
                settings.limits,
                candles.pair,
            )
        if searched is not None:
            figures[SEARCH] = searched
        threshold = agent.decision_threshold
        figures[IN_SAMPLE] = score_span(artifact, self._spec, threshold, candles, features, settings, "in_sample")
        fit = figures[IN_SAMPLE]["metrics"]
        log.info(
            "fold_trained",
            policy=self.name,
            fold=fold.index,
            train_rows=len(candles),
            in_sample_net_pnl=fit["net_pnl"],
            in_sample_trades=fit["trade_count"],
            **{key: value for key, value in figures.items() if key not in (IN_SAMPLE, "search")},
        )
        if held is not None:
            figures[HOLDOUT] = score_span(artifact, self._spec, threshold, *kept, settings, "out_of_sample")
            gate = holdout_gate(gates, figures[HOLDOUT])
            if not gate.passed:
                return self._stand_aside(fold, figures, f"its holdout net PnL {gate.value} failed {gate.threshold}")
        return ArtifactPolicy(artifact, self._spec, threshold), figures

    def _stand_aside(self, fold: Fold, figures: dict[str, Any], why: str) -> tuple[Policy, dict[str, Any]]:
        """The fold trades nothing: flat from its test span's first bar to its last, as an unpromoted
        version does."""
        log.info("fold_stands_aside", policy=self.name, fold=fold.index, reason=why)
        return HoldPolicy(), figures | {STOOD_ASIDE: why}

    def settings(self, fold: Fold, base: BacktestSettings) -> BacktestSettings:
        """The world of the configuration the fold trained (its search's choice, when tuned)."""
        chosen = self._chosen.get(fold.index, self._agent)
        return base if chosen is self._agent else settings_for(base, chosen)


async def _subject(
    agents: AgentStore, request: EvaluationRequest, dataset: DatasetVersion
) -> tuple[AgentVersion | None, AgentConfig | None]:
    if (request.agent_version_id is None) == (request.policy is None):
        raise EvaluationError("evaluate either an agent version or a baseline policy")
    if request.agent_version_id is None:
        return None, None
    version = await agents.version(request.agent_version_id)
    if version is None:
        raise EvaluationError(f"no agent version {request.agent_version_id}")
    if version.status not in EVALUABLE or version.artifact_id is None:
        raise EvaluationError(f"{version.agent} v{version.version} is {version.status}: it has no artifact to evaluate")
    stored = await agents.get(version.agent)
    assert stored is not None  # a version always belongs to a configuration
    return version, agent_config_of(stored)


async def _subject_maker(
    agents: AgentStore,
    request: EvaluationRequest,
    version: AgentVersion | None,
    agent: AgentConfig | None,
    spec: FeatureSetSpec,
    settings: BacktestSettings,
    progress: Reporter = quiet,
) -> PolicyMaker:
    if version is None or agent is None:
        assert request.policy is not None
        try:
            return FixedPolicy(baseline(request.policy, spec))
        except ValueError as error:
            raise EvaluationError(str(error)) from None
    name = f"agent:{version.agent}@{version.version}"
    if request.layout is not None:
        lineage = {
            "agent": version.agent,
            "version": f"{version.version}-walk-forward",
            "agent_version_id": str(version.id),
        }
        tuned = isinstance(version.training_metrics.get("search"), dict) and agent.search is not None
        return FoldTrainer(name, agent, spec, settings, lineage, progress, tuned)
    stored = await agents.artifact(version.id)
    if stored is None:
        raise EvaluationError(f"{version.agent} v{version.version} has no artifact")
    artifact = load_artifact(stored.content, stored.checksum, spec)
    return FixedPolicy(ArtifactPolicy(artifact, spec, agent.decision_threshold, name))


def _baselines(spec: FeatureSetSpec) -> list[str]:
    usable = []
    for name in BASELINES:
        try:
            baseline(name, spec)
        except ValueError:
            continue
        usable.append(name)
    return usable


def _folds(dataset: DatasetVersion, layout: FoldSpec) -> list[Fold]:
    try:
        folds = walk_forward_folds(dataset.row_count, layout)
    except FoldError as error:
        raise EvaluationError(str(error)) from None
    if all(fold.skipped is not None for fold in folds):
        raise EvaluationError(
            f"every fold is skipped: none has {layout.min_train_bars} training rows in a dataset of "
            f"{dataset.row_count} (lower --min-train-bars, or use fewer folds or a longer dataset)"
        )
    return folds


def layout_json(layout: FoldSpec) -> dict[str, int]:
    """The fold layout (what makes two walk-forwards comparable); `strict` only decides failure."""
    return {key: int(value) for key, value in layout.to_json().items() if key != "strict"}


def _fold_json(
    fold: Fold,
    results: dict[str, BacktestResult],
    training: dict[str, dict[str, Any]],
    subject: str,
    candles: CandleColumns,
) -> dict[str, Any]:
    document: dict[str, Any] = dict(fold.to_json())
    document["test_from_ms"] = int(candles.open_time_ms[fold.test_start])
    document["test_to_ms"] = int(candles.open_time_ms[fold.test_end - 1])
    if results:
        document["metrics"] = results[subject].metrics.to_json()
        document["baselines"] = {name: result.metrics.to_json() for name, result in results.items() if name != subject}
        document["bars_per_second"] = {name: round(result.bars_per_second) for name, result in results.items()}
    if training:
        document["training"] = training
    return document
