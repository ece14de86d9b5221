"""Evaluation benchmark: nautilus_trader backtest throughput (bars/s) for an agent's exported policy and
for the hold and ema_cross baselines in the same run, and the wall time of a walk-forward evaluation of
one month of 1m bars with 5 folds (the default agent configuration trained on every fold, then every
policy backtested on it).

    uv run python -m benchmarks.evaluation [--write] [--iterations N]

Uses ../shared/data/candles (BTCUSDT 1m, January 2025) with v2 features when present, else synthetic
candles. `--write` replaces the evaluation section of docs/performance.md with this run's figures.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from benchmarks.features import month
from benchmarks.report import write_section
from domain.candle_columns import CandleColumns
from domain.fills import FillRules
from domain.instruments import Contract
from exchange.sim.candle_file import as_columns
from features.definitions import V2
from features.engine import FeatureEngine
from features.normalization import NormalizationStats
from learning.agent_config import AgentConfig
from learning.evaluation.backtest import BacktestResult, BacktestSettings, run_backtest
from learning.evaluation.folds import Fold, FoldSpec, walk_forward_folds
from learning.evaluation.service import FoldTrainer
from learning.evaluation.walk_forward import FixedPolicy, PolicyMaker, evaluate_folds
from policies.artifact import Layer, PolicyArtifact
from policies.baselines import ArtifactPolicy, baseline

START, END = "<!-- evaluation-bench:start -->", "<!-- evaluation-bench:end -->"
CONTRACT = Contract(
    "BTC-USDT", 1, 4, Decimal("0.0001"), Decimal("2"), Decimal("0.0002"), Decimal("0.0005"), 125, 125, 1, True
)
SETTINGS = BacktestSettings(CONTRACT, FillRules.of(CONTRACT, Decimal(2)), Decimal(10_000), 1.0, leverage=125)


def dataset() -> tuple[CandleColumns, np.ndarray, str]:
    data, source = month()
    candles = as_columns(data, "BTC-USDT", "1m")
    engine = FeatureEngine(V2, candles.take(np.arange(V2.warmup_bars)))
    rows = candles.take(np.arange(V2.warmup_bars, len(candles)))
    return rows, engine.run(rows), source


def untrained_agent(features: np.ndarray, agent: AgentConfig) -> ArtifactPolicy:
    """The default network shape with random weights: inference costs what a trained one's does, and it
    changes its mind often (the expensive case for a backtest: many orders)."""
    rng = np.random.default_rng(0)
    widths = [len(V2.market_features) + 4, *agent.hyperparameters.hidden_layers, len(agent.environment.targets)]
    layers = tuple(
        Layer(
            rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32),
            np.zeros(n_out, np.float32),
            "tanh" if index < len(widths) - 2 else "linear",
        )
        for index, (n_in, n_out) in enumerate(itertools.pairwise(widths))
    )
    artifact = PolicyArtifact(
        layers, V2.name, V2.schema_hash, V2.market_features, V2.state_features,
        NormalizationStats.of(V2.market_features, features), agent.environment.targets, 0.0,
        {"agent": "bench", "version": "random"},
    )  # fmt: skip
    return ArtifactPolicy(artifact, V2)


@dataclass(frozen=True)
class WalkForwardFigures:
    folds: int
    iterations: int
    batch: int
    wall: float
    backtesting: float
    backtests: int


def markdown(source: str, bars: int, rates: dict[str, tuple[float, int]], walk: WalkForwardFigures) -> str:
    hold = rates["hold"][0]
    lines = [
        START,
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.evaluation --write` on "
        f"{platform.machine()}, Python {platform.python_version()}, {source} ({bars:,} bars), v2 "
        "features, a NETTING margin account on the simulated BingX contract.",
        "",
        "| what | figure | beside it, same run |",
        "| --- | --- | --- |",
    ]
    for name, (rate, fills) in rates.items():
        beside = f"hold: {hold:,.0f} bars/s" if name != "hold" else ""
        lines.append(
            f"| backtest throughput, {name}, {bars:,} bars | {rate:,.0f} bars/s ({fills:,} fills) | {beside} |"
        )
    lines.append(
        f"| walk-forward, {walk.folds} folds over the month (the agent trained on each fold: {walk.iterations} PPO "
        f"iterations, {walk.iterations * walk.batch:,} env steps; then it and 3 baselines backtested) | "
        f"{walk.wall:,.1f} s | of which backtests {walk.backtesting:,.1f} s ({walk.backtests} backtests) |"
    )
    return "\n".join([*lines, END])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--iterations", type=int, default=20, help="PPO iterations per fold (default: 20)")
    args = parser.parse_args()
    candles, features, source = dataset()
    agent = AgentConfig(name="bench").with_choices({"hyperparameters.iterations": args.iterations})

    rates: dict[str, tuple[float, int]] = {}
    for name, policy in (
        ("hold", baseline("hold", V2)),
        ("ema_cross", baseline("ema_cross", V2)),
        ("agent (exported 64x64 policy)", untrained_agent(features, agent)),
    ):
        run_backtest(policy, candles.take(np.arange(2_000)), features[:2_000], SETTINGS)  # warm-up
        result = run_backtest(policy, candles, features, SETTINGS)
        rates[name] = (result.bars_per_second, len(result.segment.fills))

    layout = FoldSpec(5, purge_bars=60, embargo_bars=60, min_train_bars=1_440)
    folds = walk_forward_folds(len(candles), layout)
    trainer = FoldTrainer("agent:bench", agent, V2, SETTINGS, {"agent": "bench", "version": "walk-forward"})
    makers: list[PolicyMaker] = [trainer]
    makers += [FixedPolicy(baseline(name, V2)) for name in ("hold", "momentum", "ema_cross")]
    backtesting = 0.0

    def timed(fold: Fold, policy: str, result: BacktestResult) -> None:
        nonlocal backtesting
        backtesting += result.seconds

    began = time.perf_counter()
    evaluation = evaluate_folds(candles, features, folds, makers, SETTINGS, timed)
    wall = time.perf_counter() - began

    walk = WalkForwardFigures(
        len(folds),
        agent.hyperparameters.iterations,
        agent.hyperparameters.train_batch_size,
        wall,
        backtesting,
        len(makers) * len(evaluation.evaluated),
    )
    section = markdown(source, len(candles), rates, walk)
    print(section)
    if args.write:
        write_section(START, END, section, heading="Evaluation")


if __name__ == "__main__":
    main()
