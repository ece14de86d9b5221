"""One world for training and evaluation: a nautilus_trader backtest of a baseline policy and the
gymnasium environment, given the same candles and the same decisions, hold the same position after
every bar and end with the same equity; nautilus's own account agrees with our book to the cent."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from domain.candle_columns import CandleColumns
from domain.fills import FillRules
from domain.funding import FundingSchedule
from domain.instruments import Contract
from domain.limit_orders import EntryKind
from features.definitions import V2
from features.normalization import NormalizationStats
from features.spec import STATE_FEATURES
from learning.agent_config import Environment, Reward
from learning.env import MarketData, TradingEnv
from learning.evaluation.backtest import BacktestSettings, run_backtest
from learning.evaluation.metrics import replay
from policies.artifact import Layer, PolicyArtifact
from policies.baselines import ArtifactPolicy, baseline
from trading.limits import RiskLimits

CONTRACT = Contract(
    "BTC-USDT", 1, 4, Decimal("0.0001"), Decimal("2"), Decimal("0.0002"), Decimal("0.0005"), 125, 125, 1, True
)
RULES = FillRules.of(CONTRACT, Decimal(2))
SETTINGS = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5)
STOPS = RiskLimits("stops", Decimal(20_000), Decimal(20_000), 3, Decimal(2), Decimal("0.004"), Decimal("0.006"))
"""Exits close enough to fire on 1m candles, so the exits' precedence over the minimum holding is exercised."""


def environment_of(candles: CandleColumns, features: np.ndarray, funding: np.ndarray | None = None) -> TradingEnv:
    """The training environment over the whole span, in the backtest's world (no limits)."""
    market = MarketData(
        candles.open, candles.close, features, NormalizationStats.of(V2.market_features, features), funding
    )
    environment = Environment(episode_bars=len(candles), initial_equity=10_000.0, max_exposure=1.0, slippage_bps=2.0)
    env = TradingEnv({"market": market, "rules": RULES, "environment": environment, "reward": Reward()})
    env.reset(options={"start": 0})
    return env


def replayed(env: TradingEnv, decisions: Any) -> Iterator[tuple[bool, dict[str, Any]]]:
    """The backtest's decisions stepped through `env` (HOLD as the target held): each step's outcome."""
    held = 0.0
    for decision in decisions:
        held = held if decision.target is None else decision.target
        _, _, terminated, _, info = env.step(env.targets.index(held))
        yield terminated, info


@pytest.mark.parametrize("name", ["ema_cross", "momentum"])
def test_the_backtest_and_the_environment_trade_alike(span: tuple[CandleColumns, np.ndarray], name: str) -> None:
    candles, features = span
    result = run_backtest(baseline(name, V2), candles, features, SETTINGS)
    book = replay(result.segment)
    assert len(result.segment.fills) > 50, "the baseline should trade often enough to compare"
    assert result.rejections == ()

    env = environment_of(candles, features)
    for decision, (terminated, info) in zip(result.decisions, replayed(env, result.decisions), strict=True):
        row = decision.row + 1
        assert not terminated
        assert Decimal(repr(info["position"])) == Decimal(repr(float(book.position[row]))), f"bar {row}"
        assert info["equity"] == pytest.approx(book.equity[row], abs=1e-6), f"bar {row}"
    assert env.trades == len(result.segment.fills)
    # The fills' fees alike; the metrics add the exit fee of a position still open at the end, as the
    # environment's last step values it.
    assert float(env.position.fees) == pytest.approx(float(sum(timed.fill.fee for timed in result.segment.fills)))
    final = env._equity
    assert result.metrics.net_pnl == pytest.approx(final - 10_000.0, abs=1e-6)
    # nautilus's account (its own PnL accounting, our fee model) against our book of its fills.
    assert result.venue_balance == pytest.approx(result.ledger_balance, abs=Decimal("0.00000001"))


def test_a_hold_policy_trades_nothing(span: tuple[CandleColumns, np.ndarray]) -> None:
    candles, features = span
    result = run_backtest(baseline("hold", V2), candles, features, SETTINGS)
    assert result.segment.fills == ()
    assert result.metrics.net_pnl == 0
    assert result.metrics.trade_count == 0
    assert result.venue_balance == Decimal(10_000)
    assert len(result.decisions) == len(candles) - 1
    assert all(decision.hold_reason == "hold_policy" for decision in result.decisions)


def test_settings_that_cannot_hold_a_full_position_are_refused() -> None:
    with pytest.raises(ValueError, match="needs leverage above 1"):
        BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=2.0, leverage=1)


def test_gapped_candles_are_refused(span: tuple[CandleColumns, np.ndarray]) -> None:
    candles, features = span
    rows = np.r_[0:100, 101:200]
    with pytest.raises(ValueError, match="consecutive"):
        run_backtest(baseline("hold", V2), candles.take(rows), features[rows], SETTINGS)


def scripted_artifact(
    threshold: float,
    features: tuple[str, ...] = ("ret_1", "ret_5", "ret_15"),
    targets: tuple[float, ...] = (-1.0, 0.0, 1.0),
    entries: tuple[EntryKind, ...] = (),
) -> PolicyArtifact:
    """A network whose logits are V2 market features as scaled, one per action, chosen so the actions move
    often and come near ties: by default short on `ret_1`, flat on `ret_5`, long on `ret_15` (whichever is
    largest)."""
    inputs = len(V2.market_features) + len(STATE_FEATURES)
    weight = np.zeros((inputs, len(features)), dtype=np.float32)
    for action, name in enumerate(features):
        weight[V2.market_features.index(name), action] = 1.0
    stats = NormalizationStats(
        V2.market_features, np.zeros(len(V2.market_features)), np.full(len(V2.market_features), 0.002), 1
    )
    return PolicyArtifact(
        layers=(Layer(weight, np.zeros(len(features), dtype=np.float32), "linear"),),
        feature_set=V2.name,
        feature_schema_hash=V2.schema_hash,
        market_features=V2.market_features,
        state_features=STATE_FEATURES,
        normalization=stats,
        targets=targets,
        decision_threshold=threshold,
        provenance={},
        entries=entries,
    )


@pytest.mark.parametrize(("threshold", "min_hold"), [(0.0, 0), (0.45, 0), (0.0, 7), (0.45, 7)])
def test_the_decision_rule_is_one_in_the_environment_and_the_kernel(
    span: tuple[CandleColumns, np.ndarray], threshold: float, min_hold: int
) -> None:
    """The same network's outputs, decided by the one rule (most probable action, HOLD below the threshold,
    the minimum holding), trade the same in the environment as in the nautilus backtest, bar by bar."""
    candles, features = span
    policy = ArtifactPolicy(scripted_artifact(threshold), V2)
    settings = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5, limits=STOPS,
                                min_hold_bars=min_hold)  # fmt: skip
    result = run_backtest(policy, candles, features, settings)
    book = replay(result.segment)
    holds = sum(1 for decision in result.decisions if decision.target is None)
    assert (holds > 100) == (threshold > 0), "the threshold HOLDs only when set"

    market = MarketData(candles.open, candles.close, features, policy.artifact.normalization)
    environment = Environment(
        episode_bars=len(candles),
        initial_equity=10_000.0,
        max_exposure=1.0,
        slippage_bps=2.0,
        min_hold_bars=min_hold,
        bust_equity_fraction=0.0,  # the backtest runs to the end, however much it loses
    )
    env = TradingEnv({"market": market, "rules": RULES, "environment": environment, "reward": Reward(),
                      "limits": STOPS, "pair": "BTC-USDT"})  # fmt: skip
    observation, _ = env.reset(options={"start": 0})
    for decision in result.decisions:
        ours = policy.decide_inputs(observation)
        assert (ours.target, ours.action) == (decision.target, decision.action), f"bar {decision.row}"
        observation, _, terminated, _, info = env.step(env.action_for(ours.target))
        row = decision.row + 1
        assert not terminated
        assert Decimal(repr(info["position"])) == Decimal(repr(float(book.position[row]))), f"bar {row}"
        assert info["equity"] == pytest.approx(book.equity[row], abs=1e-6), f"bar {row}"
    assert env.trades == len(result.segment.fills) > 100
    assert result.venue_balance == pytest.approx(result.ledger_balance, abs=Decimal("0.00000001"))
    if min_hold:  # no position the policy moved was younger than the minimum holding
        assert all(trade.holding_ms >= min_hold * 60_000 for trade in book.trades if trade.reason.startswith("signal"))


def test_funding_is_charged_alike_in_the_environment_and_the_backtest(span: tuple[CandleColumns, np.ndarray]) -> None:
    """Funding times every 8 hours at rates large enough to matter (+-0.1%), both signs: the environment's
    equity equals the backtest's after every bar, and nautilus's balance is ours plus the funding paid."""
    candles, features = span
    first = int(candles.open_time_ms[0])
    times = np.arange(first - first % 28_800_000 + 28_800_000, int(candles.open_time_ms[-1]), 28_800_000)
    schedule = FundingSchedule(times.astype(np.int64), np.resize([0.001, -0.0005, 0.0008], len(times)), "test")
    assert len(schedule) >= 5
    settings = BacktestSettings(CONTRACT, RULES, Decimal(10_000), max_exposure=1.0, leverage=5, funding=schedule)
    result = run_backtest(baseline("ema_cross", V2), candles, features, settings)
    plain = run_backtest(baseline("ema_cross", V2), candles, features, SETTINGS)
    book = replay(result.segment)
    assert result.funding != 0
    assert result.metrics.funding == pytest.approx(float(result.funding))
    # Funding moves the equity the next orders are sized from, so only the first payment is exact to compare.
    assert result.metrics.net_pnl != plain.metrics.net_pnl
    assert result.venue_balance == pytest.approx(result.ledger_balance + result.funding, abs=Decimal("0.00000001"))

    env = environment_of(candles, features, schedule.per_bar(candles.open_time_ms, 60_000))
    for decision, (_, info) in zip(result.decisions, replayed(env, result.decisions), strict=True):
        assert info["equity"] == pytest.approx(book.equity[decision.row + 1], abs=1e-6), f"bar {decision.row + 1}"
    assert info["funding"] == pytest.approx(float(result.funding), abs=1e-8)
