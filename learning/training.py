"""`tradingd train`: RLlib PPO (new API stack) on the trading environment over a dataset version,
checkpointed so an interrupted run resumes, exported to a numpy policy artifact that is proven to act
like the trained module before it is recorded.

Ray is started here only if no one started it (the CLI does, sized for the machine). Sampling runs in
this process by default (`env_runners = 0`) with several environments per runner: on a small machine
an actor hop per batch costs more than it saves.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
import structlog
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.utils.debug import update_global_seed_if_necessary

from domain.fills import FillRules
from domain.instruments import Contract
from features.normalization import NormalizationStats
from features.spec import FeatureSetSpec
from learning.agent_config import AgentConfig, agent_config_of
from learning.code_version import code_version
from learning.datasets import DatasetMismatchError, dataset_spec
from learning.env import MarketData, TradingEnv
from learning.evaluation.backtest import BacktestSettings
from learning.evaluation.holdout import HOLDOUT, IN_SAMPLE, HoldoutError, holdout_split, score_span
from learning.evaluation.world import agent_world, backtest_settings, market_of
from learning.export import policy_layers, verify_export
from learning.search import SEARCH, SearchError, search
from policies.artifact import FORMAT, Layer, PolicyArtifact, checksum, load_artifact
from storage.agents import AgentStore, AgentVersion, ArtifactStore
from storage.datasets import DatasetStore
from trading.limits import RiskLimits, limits_json

log = structlog.get_logger("tradingd.training")
EXPORT_CHECK_ROWS = 4096
KL_COEFFICIENTS = "tradingd-kl-coefficients.json"


class TrainingError(ValueError):
    """Training cannot start: unknown agent or dataset, or a dataset of another feature set."""


@dataclass(frozen=True)
class IterationReport:
    iteration: int
    total: int
    env_steps: int
    episode_return_mean: float | None
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    version: AgentVersion
    artifact_id: uuid.UUID | None
    """None when training stopped early (`stop_after`) and can be resumed."""
    checksum: str | None
    iterations: int
    env_steps: int
    resumed_from: int
    """The iteration the run resumed after (0 for a fresh run)."""


async def train_agent(
    agents: AgentStore,
    datasets: DatasetStore,
    *,
    agent_name: str,
    dataset_id: uuid.UUID,
    contract: Contract,
    checkpoint_root: Path,
    artifact_store: ArtifactStore = "database",
    progress: Callable[[IterationReport], None] | None = None,
    stop_after: int | None = None,
    limits: RiskLimits | None = None,
    tune: bool = False,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train (or resume training) `agent_name` on the dataset, except its last
    `promotion_gates.holdout_share` of rows, then score the artifact on those (`holdout`). `contract`: the
    pair's (its grid and fees fill the environment's orders, with the agent's slippage). `stop_after` ends
    the run after that many iterations of this call, checkpointed and resumable, as an interruption would.
    `limits`: the risk limit set the environment trades under (its exits and limits, as live trading
    applies them; the daemon's `[risk]` settings), recorded in the artifact's provenance; None: none.
    `tune`: first run the agent's `[search]` on the rows before the holdout (`learning.search`; `on_trial`
    is told of each trial) and train the best configuration; the search is recorded (`training_metrics.
    search`) before training starts, so a resumed version trains what its search chose."""
    stored = await agents.get(agent_name)
    if stored is None:
        raise TrainingError(f"no agent configuration named {agent_name!r} (create it with `tradingd agent create`)")
    agent = agent_config_of(stored)
    dataset = await datasets.get(dataset_id)
    if dataset is None:
        raise TrainingError(f"no dataset {dataset_id}")
    try:
        spec = dataset_spec(dataset, agent)
    except DatasetMismatchError as error:
        raise TrainingError(str(error)) from None
    try:
        split = holdout_split(dataset.row_count, agent.promotion_gates.holdout_share)
    except HoldoutError as error:
        raise TrainingError(str(error)) from None
    if tune and agent.search is None:
        raise TrainingError(f"agent {agent.name} has no [search] section: --tune has nothing to search")
    content = await datasets.load(dataset)
    rows = np.arange(split.train_rows)
    candles, features = content.candles.take(rows), content.features[rows]

    def settings_of(chosen: AgentConfig) -> BacktestSettings:
        return backtest_settings(contract, agent_world(chosen), limits, dataset.funding)

    version = await agents.training_version(stored.id, dataset.id)
    resumed_from = 0
    if version is None:
        version = await agents.start_version(stored.id, dataset.id, dataset.feature_set_version_id, code_version())
    elif version.checkpoint_path is not None:
        resumed_from = version.iterations_done
    searched = version.training_metrics.get(SEARCH)
    if tune and not isinstance(searched, dict):  # a resumed version keeps the choice its search made
        log.info("search_started", agent=agent.name, version=version.version, rows=len(candles))
        try:
            found = search(agent, spec, candles, features, settings_of, on_trial)
        except SearchError as error:
            raise TrainingError(str(error)) from None
        searched = found.record
        await agents.record_progress(version.id, version.iterations_done, version.checkpoint_path, {SEARCH: searched})
        version = await agents.version(version.id) or version
    if isinstance(searched, dict):
        agent = agent.with_choices(searched["best"]["choices"])
    settings = settings_of(agent)
    rules = settings.rules
    # The statistics of the rows trained on only, so nothing of the holdout reaches the model.
    stats = (
        NormalizationStats.of(spec.market_features, features)
        if split.holdout_rows
        else NormalizationStats.from_json(dataset.normalization)
    )
    market = market_of(candles, features, stats, settings)
    env_config = {
        "market": market,
        "rules": rules,
        "environment": agent.environment,
        "reward": agent.reward,
        "limits": limits,
        "pair": dataset.pair,
    }
    log.info(
        "training_started",
        agent=agent.name,
        version=version.version,
        dataset_id=str(dataset.id),
        rows=dataset.row_count,
        resumed_from=resumed_from,
    )

    algo = build_algo(agent, env_config)
    try:
        if resumed_from:
            assert version.checkpoint_path is not None
            algo.restore_from_path(version.checkpoint_path)
            _restore_kl_coefficients(algo, Path(version.checkpoint_path))
        total = agent.hyperparameters.iterations
        metrics: dict[str, Any] = dict(version.training_metrics)
        # A run resumed after its last checkpoint reports the figures that checkpoint recorded.
        env_steps, last_return = int(metrics.get("env_steps", 0)), metrics.get("episode_return_mean")
        iteration = resumed_from
        while iteration < total:
            started = time.monotonic()
            if iteration % agent.hyperparameters.checkpoint_every == 0:
                reseed(algo, agent.hyperparameters.seed, iteration)
            result = algo.train()
            iteration += 1
            env_steps = int(result.get("num_env_steps_sampled_lifetime", 0))
            episode_return = result.get("env_runners", {}).get("episode_return_mean")
            if episode_return is not None and np.isfinite(episode_return):
                last_return = float(episode_return)
            report = IterationReport(iteration, total, env_steps, last_return, time.monotonic() - started)
            if progress is not None:
                progress(report)
            log.info(
                "training_iteration",
                agent=agent.name,
                version=version.version,
                iteration=iteration,
                total=total,
                env_steps=env_steps,
                episode_return_mean=last_return,
                seconds=round(report.seconds, 3),
            )
            metrics.update(iterations=iteration, env_steps=env_steps, episode_return_mean=last_return)
            done = iteration == total
            interrupted = stop_after is not None and iteration - resumed_from >= stop_after
            if done or interrupted or iteration % agent.hyperparameters.checkpoint_every == 0:
                path = _checkpoint(algo, checkpoint_root / str(version.id), iteration)
                await agents.record_progress(version.id, iteration, str(path), metrics)
                # Only now that the record points at the new checkpoint may the older one go.
                _prune_checkpoints(path.parent, keep=iteration)
            if interrupted and not done:
                log.info("training_paused", agent=agent.name, version=version.version, iteration=iteration)
                paused = await agents.version(version.id)
                assert paused is not None
                return TrainingResult(paused, None, None, iteration, env_steps, resumed_from)

        module = algo.get_module()
        layers = policy_layers(module)
        env = TradingEnv(env_config)
        metrics.update(verify_export(module, layers, _export_observations(env, agent.hyperparameters.seed)))
    finally:
        algo.stop()

    artifact = policy_artifact(
        agent,
        spec,
        layers,
        market.stats,
        {
            "agent": agent.name,
            "dataset_hash": dataset.content_hash,
            "fill_rules": rules.to_json(),
            "risk": None if limits is None else limits_json(limits),
            "train_rows": split.train_rows,
            "holdout_rows": split.holdout_rows,
        },
    )
    # Which version holds the artifact is the record's business, not the artifact's: the same
    # configuration, seed and dataset give the same bytes, whichever version trained them.
    record = {"version": version.version, "agent_version_id": str(version.id), "dataset_id": str(dataset.id)}
    content_bytes = artifact.to_bytes()
    digest = checksum(content_bytes)
    load_artifact(content_bytes, digest, spec)  # what the live path will do, before anything is recorded
    threshold = agent.decision_threshold
    metrics[IN_SAMPLE] = score_span(artifact, spec, threshold, candles, features, settings, "in_sample")
    if split.holdout_rows:
        held = np.arange(split.train_rows, dataset.row_count)
        metrics[HOLDOUT] = score_span(
            artifact, spec, threshold, content.candles.take(held), content.features[held], settings, "out_of_sample"
        )
    for key in (IN_SAMPLE, HOLDOUT):
        if key in metrics:
            log.info("artifact_scored", agent=agent.name, version=version.version, span=key, **metrics[key]["metrics"])
    metrics.update(code_version=code_version(), artifact_bytes=len(content_bytes))
    artifact_id = await agents.finish_version(
        version.id,
        metrics,
        content=content_bytes,
        artifact_format=FORMAT,
        checksum=digest,
        feature_schema_hash=spec.schema_hash,
        normalization=market.stats.to_json(),
        metadata={key: value for key, value in artifact.metadata().items() if key != "normalization"}
        | {"provenance": dict(artifact.provenance) | record, "training_metrics": metrics},
        store=artifact_store,
    )
    _prune_checkpoints(checkpoint_root / str(version.id), keep=iteration)
    finished = await agents.version(version.id)
    assert finished is not None
    log.info(
        "training_finished",
        agent=agent.name,
        version=finished.version,
        artifact_id=str(artifact_id),
        checksum=digest,
        env_steps=env_steps,
        episode_return_mean=last_return,
    )
    return TrainingResult(finished, artifact_id, digest, iteration, env_steps, resumed_from)


def policy_artifact(
    agent: AgentConfig,
    spec: FeatureSetSpec,
    layers: tuple[Layer, ...],
    stats: NormalizationStats,
    provenance: Mapping[str, Any],
) -> PolicyArtifact:
    """The artifact of a trained network, with the agent's settings and the code version in its provenance."""
    return PolicyArtifact(
        layers=layers,
        feature_set=spec.name,
        feature_schema_hash=spec.schema_hash,
        market_features=spec.market_features,
        state_features=spec.state_features,
        normalization=stats,
        targets=tuple(target for target, _ in agent.environment.actions),
        decision_threshold=agent.decision_threshold,
        provenance={
            **provenance,
            "algorithm": agent.algorithm,
            "hyperparameters": agent.hyperparameters.model_dump(by_alias=True, mode="json"),
            "environment": agent.environment.model_dump(mode="json"),
            "reward": agent.reward.model_dump(mode="json"),
            "code_version": code_version(),
        },
        entries=tuple(entry for _, entry in agent.environment.actions) if agent.environment.limit_rules else (),
    )


def fit_policy(
    agent: AgentConfig,
    spec: FeatureSetSpec,
    market: MarketData,
    rules: FillRules,
    provenance: Mapping[str, Any],
    on_iteration: Callable[[], None] | None = None,
    limits: RiskLimits | None = None,
    pair: str | None = None,
) -> tuple[PolicyArtifact, dict[str, Any]]:
    """Train the agent's configuration on `market` from scratch, without checkpoints or records (a
    walk-forward fold's model), and return its verified artifact with the training figures.
    `on_iteration` is called after each training iteration (progress). `limits` and `pair`: the risk limit
    set the environment trades under (as `train_agent`)."""
    env_config = {
        "market": market,
        "rules": rules,
        "environment": agent.environment,
        "reward": agent.reward,
        "limits": limits,
        "pair": pair,
    }
    algo = build_algo(agent, env_config)
    metrics: dict[str, Any] = {}
    try:
        for iteration in range(agent.hyperparameters.iterations):
            if iteration % agent.hyperparameters.checkpoint_every == 0:
                reseed(algo, agent.hyperparameters.seed, iteration)
            result = algo.train()
            episode_return = result.get("env_runners", {}).get("episode_return_mean")
            if episode_return is not None and np.isfinite(episode_return):
                metrics["episode_return_mean"] = float(episode_return)
            metrics["env_steps"] = int(result.get("num_env_steps_sampled_lifetime", 0))
            if on_iteration is not None:
                on_iteration()
        module = algo.get_module()
        layers = policy_layers(module)
        observations = _export_observations(TradingEnv(env_config), agent.hyperparameters.seed)
        metrics.update(verify_export(module, layers, observations))
    finally:
        algo.stop()
    risk = None if limits is None else limits_json(limits)
    return policy_artifact(
        agent, spec, layers, market.stats, {**provenance, "fill_rules": rules.to_json(), "risk": risk}
    ), metrics


def build_algo(agent: AgentConfig, env_config: dict[str, Any]) -> Any:
    ensure_ray()
    # One thread: float sums in one order whatever the core count (and, for these small networks, faster).
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        # RLlib registers its env wrapper under one name per build; a second build in a process says so.
        warnings.filterwarnings("ignore", message=".*Overriding environment rllib-single-agent-env-v0")
        return ppo_config(agent, env_config).build_algo()


def ppo_config(agent: AgentConfig, env_config: dict[str, Any]) -> PPOConfig:
    h = agent.hyperparameters
    return (
        PPOConfig()
        .environment(TradingEnv, env_config=env_config)
        .env_runners(num_env_runners=h.env_runners, num_envs_per_env_runner=h.envs_per_env_runner)
        .training(
            lr=h.lr,
            gamma=h.gamma,
            lambda_=h.lambda_,
            clip_param=h.clip_param,
            entropy_coeff=h.entropy_coeff,
            vf_loss_coeff=h.vf_loss_coeff,
            train_batch_size_per_learner=h.train_batch_size,
            minibatch_size=h.minibatch_size,
            num_epochs=h.num_epochs,
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=list(h.hidden_layers), fcnet_activation=h.activation, vf_share_layers=False
            )
        )
        .debugging(seed=h.seed)
    )


def reseed(algo: Any, seed: int, iteration: int) -> None:
    """Make what follows iteration `iteration` a function of the seed, the iteration and the state a
    checkpoint holds (weights, optimiser, counters), so a run resumed from a checkpoint at a multiple
    of `checkpoint_every` continues exactly as the uninterrupted run did.

    RLlib does not checkpoint the random generators or the episodes in progress, so at each such
    boundary both runs reseed Python's, numpy's and torch's generators (in this process and in every
    env runner) from `(seed, iteration)` and start fresh episodes from seeded random windows."""
    derived = int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0] >> 2)
    update_global_seed_if_necessary("torch", derived)  # the learner: minibatch shuffles

    def reseed_runner(runner: Any) -> None:
        runner_seed = derived + (runner.worker_index or 0)
        torch.set_num_threads(1)
        update_global_seed_if_necessary("torch", runner_seed)  # exploration samples
        runner._seed = runner_seed  # the seed of the next reset: the vector env seeds env i with +i
        runner._needs_initial_reset = True

    algo.env_runner_group.foreach_env_runner(reseed_runner, local_env_runner=True)


def ensure_ray() -> None:
    """Start a local Ray sized for this machine, unless one is running (the caller may have joined a cluster)."""
    if not ray.is_initialized():
        # RAY_ENABLE_UV_RUN_RUNTIME_ENV must be set before Ray is imported: `daemon/__init__.py` does it.
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)


def _checkpoint(algo: Any, directory: Path, iteration: int) -> Path:
    """Save to a fresh directory beside the recorded one: a crash mid-save leaves the last good one."""
    path = directory / f"iteration-{iteration:06d}"
    if path.exists():
        shutil.rmtree(path)
    algo.save_to_path(str(path))
    results = algo.learner_group.foreach_learner(
        lambda learner: {str(module): float(v.item()) for module, v in learner.curr_kl_coeffs_per_module.items()}
    )
    coefficients = next(iter(results)).get()  # one learner (the default): this process's
    (path / KL_COEFFICIENTS).write_text(json.dumps(coefficients, sort_keys=True))
    return path


def _restore_kl_coefficients(algo: Any, path: Path) -> None:
    """PPO adapts its KL coefficient after every iteration, but RLlib's learner state leaves it out:
    a restored learner would start again from `kl_coeff`, and train another network."""
    file = path / KL_COEFFICIENTS
    if not file.exists():  # a checkpoint from before this file was written: resumes, not exactly
        return
    coefficients: dict[str, float] = json.loads(file.read_text())

    def restore(learner: Any) -> None:
        for module, value in coefficients.items():
            learner.curr_kl_coeffs_per_module[module].data.fill_(value)

    algo.learner_group.foreach_learner(restore)


def _prune_checkpoints(directory: Path, keep: int) -> None:
    for old in directory.glob("iteration-*"):
        if old.name != f"iteration-{keep:06d}":
            shutil.rmtree(old, ignore_errors=True)


def _export_observations(env: TradingEnv, seed: int) -> npt.NDArray[np.float32]:
    """Real scaled features beside varied position states: what the live policy will be asked."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, len(env.scaled) - 1, min(EXPORT_CHECK_ROWS, len(env.scaled))).astype(int)
    n = len(rows)
    state = np.column_stack(
        [rng.integers(-1, 2, n), rng.uniform(0, 1, n), rng.normal(0, 0.02, n), rng.uniform(0, 2, n)]
    ).astype(np.float32)
    return np.concatenate([env.scaled[rows], state], axis=1)
