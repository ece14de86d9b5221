"""Agent benchmark: per-decision inference latency of the exported numpy policy next to the same network
in torch (the RLlib module), one thread, in the same run; environment steps/s; RLlib PPO sampled and
trained env steps/s with the default agent configuration.

    uv run python -m benchmarks.agents [--write]

Uses ../shared/data/candles (BTCUSDT 1m, January 2025) with v2 features when present, else synthetic
candles. `--write` replaces the agents section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from benchmarks.features import month
from benchmarks.market_data import percentile
from benchmarks.report import write_section
from exchange.sim.candle_file import as_columns
from exchange.sim.server import ContractSpec
from features.definitions import V2
from features.engine import FeatureEngine
from features.normalization import NormalizationStats
from learning.agent_config import AgentConfig
from learning.env import MarketData, TradingEnv
from learning.export import module_logits, policy_layers
from learning.training import ensure_ray, ppo_config
from policies.artifact import PolicyArtifact
from policies.baselines import ArtifactPolicy

START, END = "<!-- agents-bench:start -->", "<!-- agents-bench:end -->"
RULES = ContractSpec().fill_rules()  # the simulated venue's default contract


def market() -> tuple[MarketData, str]:
    data, source = month()
    candles = as_columns(data, "BTC-USDT", "1m")
    engine = FeatureEngine(V2, candles.take(np.arange(V2.warmup_bars)))
    rows = candles.take(np.arange(V2.warmup_bars, len(candles)))
    features = engine.run(rows)
    return MarketData(rows.open, rows.close, features, NormalizationStats.of(V2.market_features, features)), source


def env_steps_per_second(config: dict[str, Any], steps: int = 100_000) -> float:
    env = TradingEnv(config)
    env.reset(seed=0)
    env.action_space.seed(0)
    began = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - began)


def inference(
    module: Any, artifact: PolicyArtifact, observations: np.ndarray, decisions: int = 5_000
) -> dict[str, float]:
    """Microseconds per decision on one thread: the artifact policy's whole `decide` (scaling, network,
    softmax, threshold) and the torch module's forward pass alone, on the same inputs."""
    torch.set_num_threads(1)
    policy = ArtifactPolicy(artifact, V2)
    market_width = len(V2.market_features)
    numpy_times, torch_times = [], []
    for row in observations[:decisions]:
        began = time.perf_counter()
        policy.decide(row[:market_width].astype(np.float64), row[market_width:].astype(np.float64))
        numpy_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        module_logits(module, row[None, :])
        torch_times.append(time.perf_counter() - began)
    return {
        "numpy_p50": percentile(numpy_times, 0.5) * 1e6,
        "numpy_p99": percentile(numpy_times, 0.99) * 1e6,
        "torch_p50": percentile(torch_times, 0.5) * 1e6,
        "torch_p99": percentile(torch_times, 0.99) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    data, source = market()
    agent = AgentConfig(name="bench")
    config = {"market": data, "rules": RULES, "environment": agent.environment, "reward": agent.reward}
    env_rate = env_steps_per_second(config)

    ensure_ray()
    algo = ppo_config(agent, config).build_algo()
    algo.train()  # warm-up: the first iteration pays for compilation and allocation
    began = time.perf_counter()
    steps_before = algo.train()["num_env_steps_sampled_lifetime"]
    for _ in range(args.iterations - 1):
        steps_after = algo.train()["num_env_steps_sampled_lifetime"]
    rllib_rate = (steps_after - steps_before + agent.hyperparameters.train_batch_size) / (time.perf_counter() - began)
    module = algo.get_module()
    layers = policy_layers(module)
    artifact = PolicyArtifact(
        layers, V2.name, V2.schema_hash, V2.market_features, V2.state_features, data.stats,
        agent.environment.targets, agent.decision_threshold, {},
    )  # fmt: skip
    env = TradingEnv(config)
    observations = np.concatenate([env.scaled, np.zeros((len(env.scaled), 4), np.float32)], axis=1)
    latency = inference(module, artifact, observations)
    algo.stop()

    hidden = "x".join(str(width) for width in agent.hyperparameters.hidden_layers)
    section = "\n".join(
        [
            START,
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.agents --write` on "
            f"{platform.machine()}, Python {platform.python_version()}, {source}, v2 features "
            f"({len(V2.market_features)} + 4 state inputs), the default agent configuration.",
            "",
            "| what | figure | beside it, same run |",
            "| --- | --- | --- |",
            f"| inference per decision, exported numpy policy ({hidden} tanh MLP; scaling, network, softmax, "
            f"threshold), one thread | p50 {latency['numpy_p50']:.1f} us, p99 {latency['numpy_p99']:.1f} us "
            f"| the same network in torch (the RLlib module's forward pass alone): p50 {latency['torch_p50']:.1f} us, "
            f"p99 {latency['torch_p99']:.1f} us |",
            f"| environment steps (random actions, fills through `domain.fills`) | {env_rate:,.0f} steps/s | |",
            f"| RLlib PPO, sampled and trained ({agent.hyperparameters.envs_per_env_runner} envs in the "
            f"training process, batch {agent.hyperparameters.train_batch_size}, "
            f"{agent.hyperparameters.num_epochs} epochs) | {rllib_rate:,.0f} env steps/s | |",
            END,
        ]
    )
    print(section)
    if args.write:
        write_section(START, END, section, heading="Agents")


if __name__ == "__main__":
    main()
