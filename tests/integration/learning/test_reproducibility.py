"""Reproducible training: the same agent configuration, seed and dataset give the same artifact bytes
and checksum, whether trained twice, resumed from a checkpoint, or sampled by a remote env runner;
another seed gives another network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from domain.candle_columns import CandleColumns
from exchange.sim.server import ContractSpec
from features.definitions import V1
from features.engine import FeatureEngine
from features.normalization import NormalizationStats
from learning.agent_config import AgentConfig
from learning.env import MarketData
from learning.training import TrainingError, ensure_ray, fit_policy, train_agent
from policies.artifact import load_artifact
from storage.agents import AgentStore
from storage.database import Database
from storage.datasets import DatasetStore
from tests.integration.dataset_helpers import v1_dataset

RULES = ContractSpec().fill_rules()
CONTRACT = ContractSpec().contract("BTC-USDT")
TINY = {
    "iterations": 4,
    "checkpoint_every": 2,
    "train_batch_size": 400,
    "minibatch_size": 100,
    "num_epochs": 2,
    "hidden_layers": [16],
    "envs_per_env_runner": 2,
    "seed": 11,
}


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ensure_ray()
    yield
    ray.shutdown()


def tiny(name: str, **hyperparameters: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "name": name,
            "feature_set": "v1",
            "hyperparameters": TINY | hyperparameters,
            "environment": {"episode_bars": 150},
        }
    )


async def test_same_configuration_seed_and_dataset_give_the_same_artifact(
    ray_session: None, database: Database, tmp_path: Path, real_candles: Callable[[str], CandleColumns]
) -> None:
    agents = AgentStore(database.pool, tmp_path / "artifacts")
    datasets = DatasetStore(database.pool)
    dataset_id = await v1_dataset(database, real_candles("BTCUSDT_1m").take(np.arange(3_000)))
    for config in (tiny("repro"), tiny("repro-seed", seed=12)):
        await agents.create(
            config.name, config.algorithm, config.feature_set, config.decision_threshold, config.sections()
        )

    async def train(agent: str, stop_after: int | None = None) -> Any:
        return await train_agent(
            agents, datasets, agent_name=agent, dataset_id=dataset_id, contract=CONTRACT,
            checkpoint_root=tmp_path / "checkpoints", stop_after=stop_after,
        )  # fmt: skip

    async def content(result: Any) -> bytes:
        stored = await agents.artifact(result.version.id)
        assert stored is not None
        assert stored.checksum == result.checksum
        return bytes(stored.content)

    first, second = await train("repro"), await train("repro")
    assert (first.version.version, second.version.version) == (1, 2)  # two versions, one artifact
    assert first.checksum == second.checksum
    assert await content(first) == await content(second)
    # The version is in the record, not in the artifact.
    assert second.version.training_metrics["iterations"] == 4

    # Interrupted after a checkpoint (as Ctrl-C or a crash leaves it), then resumed: the same bytes.
    paused = await train("repro", stop_after=2)
    assert (paused.artifact_id, paused.iterations) == (None, 2)
    resumed = await train("repro")
    assert (resumed.version.id, resumed.resumed_from, resumed.version.version) == (paused.version.id, 2, 3)
    assert resumed.checksum == first.checksum
    assert await content(resumed) == await content(first)

    # Another seed: another network, not only another name in the provenance.
    other = await train("repro-seed")
    assert other.checksum != first.checksum
    assert first.checksum is not None
    assert other.checksum is not None
    mine = load_artifact(await content(first), first.checksum).layers
    theirs = load_artifact(await content(other), other.checksum).layers
    assert not np.array_equal(mine[0].weight, theirs[0].weight)


def test_a_remote_env_runner_trains_the_same_network_twice(
    ray_session: None, real_candles: Callable[[str], CandleColumns]
) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(2_000))
    rows = candles.take(np.arange(V1.warmup_bars, len(candles)))
    features = FeatureEngine(V1, candles.take(np.arange(V1.warmup_bars))).run(rows)
    market = MarketData(rows.open, rows.close, features, NormalizationStats.of(V1.market_features, features))
    agent = tiny("remote", env_runners=1, iterations=3)
    first, _ = fit_policy(agent, V1, market, RULES, {})
    second, _ = fit_policy(agent, V1, market, RULES, {})
    assert first.to_bytes() == second.to_bytes()


async def test_a_tuned_training_searches_nested_and_one_seed_gives_one_checksum(
    ray_session: None, database: Database, tmp_path: Path, real_candles: Callable[[str], CandleColumns]
) -> None:
    """`train --tune`: every sampled configuration with every seed scored on inner folds of the rows before
    the holdout, the best trained and recorded; the same search again chooses the same and trains the
    same bytes."""
    agents = AgentStore(database.pool, tmp_path / "artifacts")
    datasets = DatasetStore(database.pool)
    dataset_id = await v1_dataset(database, real_candles("BTCUSDT_1m").take(np.arange(3_000)))
    space = {"reward.turnover_penalty": [0.0, 0.002], "environment.min_hold_bars": [0, 5]}
    config = AgentConfig.model_validate(
        {
            "name": "tuned",
            "feature_set": "v1",
            "hyperparameters": TINY | {"iterations": 1, "num_epochs": 1},
            "environment": {"episode_bars": 150},
            "search": {"trials": 1, "seeds": [3, 4], "inner_folds": 2, "space": space},
        }
    )
    await agents.create(config.name, config.algorithm, config.feature_set, config.decision_threshold, config.sections())
    seen: list[dict[str, Any]] = []

    async def tuned() -> Any:
        return await train_agent(
            agents, datasets, agent_name="tuned", dataset_id=dataset_id, contract=CONTRACT,
            checkpoint_root=tmp_path / "checkpoints", tune=True, on_trial=seen.append,
        )  # fmt: skip

    first = await tuned()
    searched = first.version.training_metrics["search"]
    dataset = await datasets.get(dataset_id)
    assert dataset is not None
    assert searched["rows"] == dataset.row_count - dataset.row_count // 5, "the holdout is not searched on"
    assert len(searched["trials"]) == len(seen) == 2  # 1 configuration x 2 seeds
    # One configuration, with every seed.
    configurations = {
        tuple(sorted((k, v) for k, v in trial["choices"].items() if k != "hyperparameters.seed"))
        for trial in searched["trials"]
    }
    assert len(configurations) == 1
    assert sorted(trial["choices"]["hyperparameters.seed"] for trial in searched["trials"]) == [3, 4]
    for trial in searched["trials"]:
        assert [fold["fold"] for fold in trial["folds"]] == [1, 2]
        assert trial["score"] == pytest.approx(np.mean([fold["net_pnl"] for fold in trial["folds"]]))
    best = searched["best"]
    assert best["score"] == max(trial["score"] for trial in searched["trials"])
    stored = await agents.artifact(first.version.id)
    assert stored is not None
    provenance = load_artifact(stored.content, stored.checksum).provenance
    assert provenance["hyperparameters"]["seed"] == best["choices"]["hyperparameters.seed"]
    assert provenance["environment"]["min_hold_bars"] == best["choices"]["environment.min_hold_bars"]
    assert provenance["reward"]["turnover_penalty"] == best["choices"]["reward.turnover_penalty"]

    second = await tuned()
    assert second.version.training_metrics["search"]["best"]["choices"] == best["choices"]
    assert second.checksum == first.checksum
    with pytest.raises(TrainingError, match="has no \\[search\\] section"):
        await agents.create("plain", "PPO", "v1", 0.0, tiny("plain").sections())
        await train_agent(
            agents, datasets, agent_name="plain", dataset_id=dataset_id, contract=CONTRACT,
            checkpoint_root=tmp_path / "checkpoints", tune=True,
        )  # fmt: skip
