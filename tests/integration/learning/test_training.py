"""A short RLlib PPO training on real candles and a real PostgreSQL: interrupted and resumed from its
checkpoint, exported to a numpy artifact that reloads to the module's actions, and refused when
tampered with or run against another feature schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.rllib.core.rl_module.rl_module import RLModule

from domain.candle_columns import CandleColumns
from exchange.sim.server import ContractSpec
from features.definitions import V1, V2
from features.normalization import NormalizationStats
from learning.agent_config import AgentConfig
from learning.evaluation.backtest import run_backtest
from learning.evaluation.world import agent_world, backtest_settings
from learning.export import module_logits
from learning.training import IterationReport, TrainingError, ensure_ray, train_agent
from policies.artifact import ArtifactError, load_artifact
from policies.baselines import ArtifactPolicy
from storage.agents import AgentStore
from storage.database import Database
from storage.datasets import DatasetStore
from tests.integration.dataset_helpers import v1_dataset
from trading.limits import RiskLimits, limits_json

CONTRACT = ContractSpec().contract("BTC-USDT")  # the simulated venue's default contract
LIMITS = RiskLimits("training", Decimal(20_000), Decimal(20_000), 2, Decimal(2), Decimal("0.05"), Decimal("0.08"))
QUICK = {
    "iterations": 3,
    "train_batch_size": 1000,
    "minibatch_size": 250,
    "num_epochs": 2,
    "hidden_layers": [32, 32],
    "envs_per_env_runner": 4,
    "checkpoint_every": 1,
    "seed": 3,
}


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ensure_ray()
    yield
    ray.shutdown()


async def test_train_interrupt_resume_export_and_reload(
    ray_session: None, database: Database, tmp_path: Path, real_candles: Callable[[str], CandleColumns]
) -> None:
    agents = AgentStore(database.pool, tmp_path / "artifacts")
    datasets = DatasetStore(database.pool)
    config = AgentConfig.model_validate(
        {"name": "quick", "feature_set": "v1", "hyperparameters": QUICK, "environment": {"episode_bars": 400}}
    )
    await agents.create(config.name, config.algorithm, config.feature_set, config.decision_threshold, config.sections())
    dataset_id = await v1_dataset(database, real_candles("BTCUSDT_1m").take(np.arange(6_000)))
    reports: list[IterationReport] = []

    first = await train_agent(
        agents, datasets, agent_name="quick", dataset_id=dataset_id, contract=CONTRACT,
        checkpoint_root=tmp_path / "checkpoints", progress=reports.append, stop_after=2, limits=LIMITS,
    )  # fmt: skip
    assert (first.artifact_id, first.iterations, first.version.status) == (None, 2, "training")
    assert first.version.checkpoint_path is not None
    assert Path(first.version.checkpoint_path).name == "iteration-000002"

    # The same command again resumes at iteration 3 and finishes the same version.
    second = await train_agent(
        agents, datasets, agent_name="quick", dataset_id=dataset_id, contract=CONTRACT,
        checkpoint_root=tmp_path / "checkpoints", progress=reports.append, artifact_store="file", limits=LIMITS,
    )  # fmt: skip
    assert (second.resumed_from, second.iterations, second.version.id) == (2, 3, first.version.id)
    assert [r.iteration for r in reports] == [1, 2, 3]
    assert reports[-1].env_steps >= 3_000  # the restored counters carry on
    version = second.version
    assert (version.status, version.version, version.dataset_version_id) == ("trained", 1, dataset_id)
    assert version.feature_set == "v1"
    assert version.artifact_uri is not None
    assert version.artifact_uri.startswith("file://")
    assert version.training_metrics["export_max_logit_difference"] < 1e-4
    assert version.training_metrics["iterations"] == 3

    stored = await agents.artifact(version.id)
    assert stored is not None
    assert stored.checksum == second.checksum
    artifact = load_artifact(stored.content, stored.checksum, V1)
    dataset = await datasets.get(dataset_id)
    assert dataset is not None
    assert artifact.provenance["dataset_hash"] == dataset.content_hash  # its id is in the version's record
    # The environment traded under the limit set (its exits and limits), and the artifact says which.
    assert artifact.provenance["risk"] == limits_json(LIMITS)
    assert artifact.targets == (-1.0, 0.0, 1.0)
    # The last 20% of the rows (promotion_gates.holdout_share) were kept from training, and the recorded
    # artifact itself was scored on them: the score is that artifact's backtest on exactly those rows.
    held = dataset.row_count // 5
    trained = dataset.row_count - held
    assert (artifact.provenance["train_rows"], artifact.provenance["holdout_rows"]) == (trained, held)
    holdout = version.training_metrics["holdout"]
    content = await datasets.load(dataset)
    assert (holdout["rows"], holdout["sample"]) == (held, "out_of_sample")
    assert holdout["from_ms"] == int(content.candles.open_time_ms[trained])
    assert holdout["to_ms"] == int(content.candles.open_time_ms[-1])
    rows = np.arange(trained, dataset.row_count)
    stats = NormalizationStats.of(V1.market_features, content.features[:trained])
    assert artifact.normalization.to_json() == stats.to_json()  # the training rows' statistics only
    settings = backtest_settings(CONTRACT, agent_world(config), LIMITS)
    own = run_backtest(ArtifactPolicy(artifact, V1, config.decision_threshold), content.candles.take(rows),
                       content.features[rows], settings)  # fmt: skip
    assert holdout["metrics"]["net_pnl"] == pytest.approx(own.metrics.net_pnl, abs=1e-9)
    assert holdout["metrics"]["trade_count"] == own.metrics.trade_count
    assert holdout["buy_and_hold"]["net_pnl"] != 0
    # ... and on the rows it was trained on: the in-sample fit, labelled so.
    fit = version.training_metrics["in_sample"]
    assert (fit["sample"], fit["rows"], fit["to_ms"]) == ("in_sample", trained, holdout["from_ms"] - 60_000)
    fitted = ArtifactPolicy(artifact, V1, config.decision_threshold)
    mine = run_backtest(fitted, content.candles.take(np.arange(trained)), content.features[:trained], settings)
    assert fit["metrics"]["net_pnl"] == pytest.approx(mine.metrics.net_pnl, abs=1e-9)

    # Reloaded, the artifact decides the same on the same inputs, every time.
    policy, again = ArtifactPolicy(artifact, V1), ArtifactPolicy(load_artifact(stored.content, stored.checksum), V1)
    content = await datasets.load(await datasets.get(dataset_id))  # type: ignore[arg-type]
    state = np.zeros((len(content.features), 4))
    inputs = policy.inputs(content.features, state)
    assert np.array_equal(policy.actions(inputs), again.actions(inputs))

    # The exported numpy network acts like the RLlib module restored from the final checkpoint, on
    # thousands of real observations (the market features of every row, with varied position states).
    assert version.checkpoint_path is not None
    module = RLModule.from_checkpoint(
        Path(version.checkpoint_path) / "learner_group" / "learner" / "rl_module" / "default_policy"
    )
    rng = np.random.default_rng(5)
    state = np.column_stack([rng.integers(-1, 2, len(inputs)), rng.uniform(0, 1, (len(inputs), 3))])
    observations = policy.inputs(content.features, state)
    assert len(observations) > 5_000
    logits = module_logits(module, observations)
    # Float32 sums in another order may only flip a near tie; there are (almost) none to flip.
    top_two = np.sort(logits, axis=1)[:, -2:]
    decisive = top_two[:, 1] - top_two[:, 0] > 1e-5
    assert decisive.mean() > 0.999
    assert np.array_equal(policy.actions(observations)[decisive], np.argmax(logits, axis=1)[decisive])

    # A tampered artifact or another feature schema is refused.
    tampered = bytearray(stored.content)
    tampered[len(tampered) // 2] ^= 0x01
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_artifact(bytes(tampered), stored.checksum, V1)
    with pytest.raises(ArtifactError, match="trained on feature set v1"):
        load_artifact(stored.content, stored.checksum, V2)
    with pytest.raises(ArtifactError, match="running feature set is v1\\+5m"):
        ArtifactPolicy(artifact, V1.with_context(["5m"]))

    # A dataset of another feature set is refused before any training.
    config_v2 = AgentConfig.model_validate({"name": "wants-v2", "feature_set": "v2"})
    await agents.create(config_v2.name, "PPO", "v2", 0.5, config_v2.sections())
    with pytest.raises(TrainingError, match=r"uses feature set v2, dataset .* has v1"):
        await train_agent(
            agents, datasets, agent_name="wants-v2", dataset_id=dataset_id, contract=CONTRACT,
            checkpoint_root=tmp_path / "checkpoints",
        )  # fmt: skip
