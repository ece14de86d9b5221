"""`promotion_gates.walk_forward_holdout`: each walk-forward fold trains as `tradingd train` does, on its
training rows less their last `holdout_share`, scores the artifact there, and stands aside over its test
span when that score fails the holdout gate. Two agents alike but for the gate's threshold train one
artifact per fold (one seed, one data): the one whose gate cannot pass trades nothing, the other trades."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import numpy as np
import pytest
import ray

from domain.candle_columns import CandleColumns
from exchange.sim.server import ContractSpec
from features.definitions import V1
from features.engine import FeatureEngine
from learning.agent_config import AgentConfig
from learning.evaluation.folds import FoldSpec, walk_forward_folds
from learning.evaluation.holdout import HOLDOUT, IN_SAMPLE, STOOD_ASIDE
from learning.evaluation.service import FoldTrainer
from learning.evaluation.walk_forward import evaluate_folds
from learning.evaluation.world import agent_world, backtest_settings
from learning.training import ensure_ray
from trading.limits import RiskLimits

CONTRACT = ContractSpec().contract("BTC-USDT")
LIMITS = RiskLimits("training", Decimal(20_000), Decimal(20_000), 2, Decimal(2), Decimal("0.05"), Decimal("0.08"))
TINY = {
    "iterations": 1,
    "train_batch_size": 400,
    "minibatch_size": 200,
    "num_epochs": 1,
    "hidden_layers": [8],
    "envs_per_env_runner": 2,
    "seed": 5,
}


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ensure_ray()
    yield
    ray.shutdown()


def agent(name: str, min_net_pnl: float) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "name": name,
            "feature_set": "v1",
            "hyperparameters": TINY,
            "environment": {"episode_bars": 200, "max_exposure": 0.5},
            "promotion_gates": {
                "walk_forward_holdout": True,
                "holdout_share": 0.25,
                "min_net_pnl": min_net_pnl,
                "max_drawdown": 1.0,
            },
        }
    )


def test_a_fold_whose_holdout_fails_the_gate_stands_aside_and_one_that_passes_trades(
    ray_session: None, real_candles: Callable[[str], CandleColumns]
) -> None:
    candles = real_candles("BTCUSDT_1m").take(np.arange(3_200))
    engine = FeatureEngine(V1, candles.take(np.arange(V1.warmup_bars)))
    rows = candles.take(np.arange(V1.warmup_bars, len(candles)))
    features = engine.run(rows)
    hopeless, lenient = agent("hopeless", 1e12), agent("lenient", -1e12)
    settings = backtest_settings(CONTRACT, agent_world(lenient), LIMITS)
    folds = walk_forward_folds(len(rows), FoldSpec(2))
    makers = [FoldTrainer(config.name, config, V1, settings, {"agent": config.name}) for config in (hopeless, lenient)]
    evaluation = evaluate_folds(rows, features, folds, makers, settings)
    assert len(evaluation.evaluated) == 2
    for outcome in evaluation.evaluated:
        held = outcome.fold.train_bars // 4
        for name in ("hopeless", "lenient"):
            figures = outcome.training[name]
            # trained on the first 75% of the fold's training rows, scored on the rest, out of sample
            assert figures[IN_SAMPLE]["rows"] == outcome.fold.train_bars - held
            assert (figures[HOLDOUT]["rows"], figures[HOLDOUT]["sample"]) == (held, "out_of_sample")
            assert figures[HOLDOUT]["to_ms"] == int(rows.open_time_ms[outcome.fold.train_end - 1])
        # one seed and one data: one artifact, one holdout score; only the gate differs
        assert outcome.training["hopeless"][HOLDOUT] == outcome.training["lenient"][HOLDOUT] | {
            "seconds": outcome.training["hopeless"][HOLDOUT]["seconds"]
        }
        assert outcome.training["hopeless"][STOOD_ASIDE].startswith("its holdout net PnL ")
        assert STOOD_ASIDE not in outcome.training["lenient"]
        aside, traded = outcome.results["hopeless"].metrics, outcome.results["lenient"].metrics
        assert (aside.trade_count, aside.net_pnl, aside.fees, aside.exposure_time) == (0, 0.0, 0.0, 0.0)
        assert traded.trade_count > 0
