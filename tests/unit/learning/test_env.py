"""The trading environment on real candles: gymnasium's checker, seeded reproducibility, and the same
fills, fees and slippage as the venue simulator and paper execution (one implementation, domain.fills)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from domain.candle_columns import CandleColumns
from domain.fills import Position, market_fill
from exchange.sim.account import SimAccount
from exchange.sim.server import ContractSpec
from features.batch import batch_features
from features.definitions import V1
from features.normalization import NormalizationStats
from learning.agent_config import Environment, Reward
from learning.env import MarketData, TradingEnv

RULES = ContractSpec().fill_rules()  # the simulated venue's default contract


def make_env(
    real_candles: Callable[[str], CandleColumns],
    environment: Environment | None = None,
    reward: Reward | None = None,
    rows: int = 3_000,
) -> TradingEnv:
    candles = real_candles("BTCUSDT_1m").take(np.arange(200, 200 + rows))
    features = batch_features(V1, real_candles("BTCUSDT_1m"))[200 : 200 + rows]
    market = MarketData(candles.open, candles.close, features, NormalizationStats.of(V1.market_features, features))
    return TradingEnv(
        {
            "market": market,
            "rules": RULES,
            "environment": environment or Environment(episode_bars=500, max_exposure=1.0),
            "reward": reward or Reward(),
        }
    )


def test_gymnasiums_env_checker_passes(real_candles: Callable[[str], CandleColumns]) -> None:
    check_env(make_env(real_candles), skip_render_check=True)


def test_a_seed_reproduces_an_episode_exactly(real_candles: Callable[[str], CandleColumns]) -> None:
    def episode(seed: int) -> tuple[list[np.ndarray], list[float], list[int]]:
        env = make_env(real_candles, Environment(episode_bars=300, position_sizes=(0.5, 1.0), max_exposure=1.0))
        observation, info = env.reset(seed=seed)
        env.action_space.seed(seed)
        observations, rewards, starts = [observation], [], [info["t"]]
        done = False
        while not done:
            observation, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            observations.append(observation)
            rewards.append(reward)
            done = terminated or truncated
        return observations, rewards, starts

    first, again, other = episode(11), episode(11), episode(12)
    assert first[2] == again[2]
    assert all(np.array_equal(a, b) for a, b in zip(first[0], again[0], strict=True))
    assert first[1] == again[1]
    assert len(first[1]) == 300
    assert first[2] != other[2] or first[1] != other[1]


def test_the_env_charges_what_the_venue_simulator_charges_for_a_scripted_sequence(
    real_candles: Callable[[str], CandleColumns],
) -> None:
    """Long, longer (half to full), flat, short, long: each target is sized at the decision candle's
    close, each order fills at the next candle's open with the simulator's slippage and fee (a flip
    through zero is a reduce-only close, then the opening order), and equity is the simulator account's
    balance plus its unrealised PnL at the close."""
    env = make_env(real_candles, Environment(episode_bars=100, position_sizes=(0.5, 1.0), max_exposure=2.0))
    flat, targets = env.targets.index(0.0), env.targets
    script = [targets.index(0.5), targets.index(1.0), targets.index(1.0), flat, targets.index(-1.0), targets.index(1.0)]
    _, info = env.reset(options={"start": 40})
    venue = SimAccount({"BTC-USDT": RULES}, balance=Decimal(10_000), leverage=Decimal(10))
    mirror, fills = Position(), 0
    t = info["t"]
    for action in script:
        equity = info["equity"]
        _, reward, _, _, info = env.step(action)
        price = Decimal(repr(float(env.market.open[t + 1])))
        decided_at = Decimal(repr(float(env.market.close[t])))
        wanted = abs(Decimal(repr(targets[action]))) * Decimal(repr(equity)) * 2 / decided_at
        wanted = wanted.quantize(RULES.step, rounding="ROUND_DOWN")
        delta = (wanted if targets[action] > 0 else -wanted) - mirror.quantity
        held = mirror.quantity
        legs = (
            [-held, delta + held]
            if held and wanted and (delta > 0) != (held > 0) and abs(delta) > abs(held)
            else [delta]
        )
        for leg in (leg for leg in legs if leg):
            side = "BUY" if leg > 0 else "SELL"
            venue.place("BTC-USDT", side, "MARKET", abs(leg), None, f"o{fills}", False, price, 0)
            mirror.apply(market_fill(side, abs(leg), price, RULES))
            fills += 1
        t += 1
        close = Decimal(repr(float(env.market.close[t])))
        expected = venue.balance + venue.unrealised("BTC-USDT", close)
        assert info["equity"] == pytest.approx(float(expected), rel=1e-12)
        assert reward == pytest.approx(math.log(info["equity"] / equity), rel=1e-9)  # log equity, fees in it
        assert Decimal(repr(info["position"])) == venue.positions["BTC-USDT"].quantity
    assert info["trades"] == fills == 6  # the repeated full long trades nothing; short to long is two legs
    paid = sum((-order.commission for order in venue.orders.values()), Decimal(0))
    assert Decimal(repr(info["fees"])) == paid


def test_the_reward_is_log_equity_or_the_equity_change(real_candles: Callable[[str], CandleColumns]) -> None:
    logged = make_env(real_candles)
    changed = make_env(real_candles, reward=Reward(kind="equity_change"))
    for env in (logged, changed):
        env.reset(options={"start": 10})
    long = logged.targets.index(1.0)
    rewards: list[tuple[float, float]] = []
    before = 10_000.0
    for _ in range(20):
        _, r_log, *_, info = logged.step(long)
        _, r_change, *_ = changed.step(long)
        # The entry's fee and slippage are a loss on the first step, in both.
        assert r_log == pytest.approx(math.log(info["equity"] / before), rel=1e-12)
        assert r_change == pytest.approx((info["equity"] - before) / 10_000, rel=1e-12)
        rewards.append((r_log, r_change))
        before = info["equity"]
    assert rewards[0][0] < 0
    assert rewards[0][1] < 0
    # Over an episode the logs sum to the log of the equity's growth: compounding is what is maximised.
    assert sum(r for r, _ in rewards) == pytest.approx(math.log(before / 10_000), rel=1e-9)


def test_penalties_and_bad_actions(real_candles: Callable[[str], CandleColumns]) -> None:
    plain = make_env(real_candles)
    shaped = make_env(real_candles, reward=Reward(turnover_penalty=0.5, drawdown_penalty=1.0))
    plain.reset(options={"start": 10})
    shaped.reset(options={"start": 10})
    long = plain.targets.index(1.0)
    _, r_plain, *_ = plain.step(long)
    _, r_shaped, *_ = shaped.step(long)
    assert r_shaped < r_plain - 0.4  # half the traded notional (about the equity) as a fraction of it
    with pytest.raises(ValueError, match="not one of"):
        plain.step(7)
    with pytest.raises(ValueError, match="start must be"):
        plain.reset(options={"start": 10_000})
