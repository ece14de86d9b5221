"""The trading environment: a `gymnasium.Env` over a dataset version.

One step is one candle. The agent sees the scaled market features of the candle that just became final
and its position state, and picks a target position. The order that moves the position there fills at
the next candle's open, through `domain.fills` (the slippage, tick rounding and fees of paper execution
and of the simulator's venue), and the step's reward is the change in equity to that candle's close,
as a fraction of the initial equity, less the configured drawdown and turnover penalties.

Choosing the same target as before trades nothing, so a held position is not churned as equity moves.
Funding is not charged: datasets hold no funding rates yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from domain.fills import FillRules, Position, market_fill, rebalance_quantity
from features.normalization import SCALE_CLIP, NormalizationStats
from features.spec import STATE_FEATURES
from features.state import state_features
from learning.agent_config import Environment, Reward

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class MarketData:
    """What the environment trades over: prices per candle and the market features of each."""

    open: Floats
    close: Floats
    features: Floats
    stats: NormalizationStats

    def __post_init__(self) -> None:
        if not len(self.open) == len(self.close) == len(self.features):
            raise ValueError("open, close and features must have one row per candle")
        if self.features.shape[1] != len(self.stats.names):
            raise ValueError("the normalisation statistics must cover every feature column")


class TradingEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)
    position: Position
    trades: int
    _balance: Decimal
    _equity: float
    _peak: float
    _drawdown: float
    _target: float
    _bars_held: int
    _t: int
    _steps_left: int
    _mark: Decimal

    def __init__(self, config: dict[str, Any]) -> None:
        """`config`: `market` (MarketData), `rules` (FillRules), `environment` (Environment), `reward`
        (Reward). A plain dict, as RLlib hands env configs to the env runners."""
        self.market: MarketData = config["market"]
        self.rules: FillRules = config["rules"]
        self.settings: Environment = config["environment"]
        self.shaping: Reward = config["reward"]
        self.targets = self.settings.targets
        self.scaled = self.market.stats.scale(self.market.features).astype(np.float32)
        if len(self.market.close) < 2:
            raise ValueError("the environment needs at least two candles")
        width = self.scaled.shape[1] + len(STATE_FEATURES)
        # Scaled features within +-SCALE_CLIP; state: side, size (<= 1), unrealised PnL share, days held.
        high = np.full(width, np.float32(SCALE_CLIP))
        high[-len(STATE_FEATURES) :] = (1.0, 2.0, 100.0, 1e6)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.targets))
        self._reset_state(0, 1)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        """A window of `episode_bars` steps at a seeded random start (the whole dataset if shorter);
        `options={"start": i}` fixes the first candle."""
        super().reset(seed=seed)
        last = len(self.market.close) - 1  # the final candle only closes the last step
        steps = min(self.settings.episode_bars, last)
        if options and "start" in options:
            start = int(options["start"])
            if not 0 <= start < last:
                raise ValueError(f"start must be in [0, {last})")
            steps = min(steps, last - start)
        else:
            start = int(self.np_random.integers(0, last - steps + 1))
        self._reset_state(start, steps)
        return self._observation(), self._info()

    def step(self, action: np.int64 | int) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(np.int64(action)):
            raise ValueError(f"action {action!r} is not one of 0..{len(self.targets) - 1}")
        target = self.targets[int(action)]
        t = self._t
        before = self._equity
        traded = Decimal(0)
        side_before = _side(self.position.quantity)
        if target != self._target:
            traded = self._trade_to(target, Decimal(repr(float(self.market.open[t + 1]))))
            self._target = target
        side = _side(self.position.quantity)
        self._bars_held = 0 if side != side_before or not side else self._bars_held
        self._bars_held += 1 if side else 0
        self._t = t + 1
        mark = Decimal(repr(float(self.market.close[self._t])))
        self._mark = mark
        self._equity = float(self._balance + self.position.unrealised(mark))
        self._peak = max(self._peak, self._equity)
        initial = self.settings.initial_equity
        reward = (self._equity - before) / initial
        drawdown = (self._peak - self._equity) / self._peak
        reward -= self.shaping.drawdown_penalty * max(0.0, drawdown - self._drawdown)
        reward -= self.shaping.turnover_penalty * float(traded) / initial
        self._drawdown = drawdown
        self._steps_left -= 1
        terminated = self._equity <= initial * self.settings.bust_equity_fraction
        truncated = self._steps_left == 0 and not terminated
        return self._observation(), float(reward), terminated, truncated, self._info()

    def _trade_to(self, target: float, price: Decimal) -> Decimal:
        """Market order from the current position to `target` (a signed fraction of the maximum
        position) at `price`; returns the notional traded."""
        max_notional = Decimal(repr(self._equity * self.settings.max_exposure))
        delta = rebalance_quantity(target, max_notional, price, self.position.quantity, self.rules)
        if delta == 0:
            return Decimal(0)
        fill = market_fill("BUY" if delta > 0 else "SELL", abs(delta), price, self.rules)
        self._balance += self.position.apply(fill) - fill.fee
        self.trades += 1
        return fill.quantity * fill.price

    def _reset_state(self, start: int, steps: int) -> None:
        self.position = Position()
        self.trades = 0
        self._balance = Decimal(repr(self.settings.initial_equity))
        self._equity = self._peak = self.settings.initial_equity
        self._drawdown = 0.0
        self._target = 0.0
        self._bars_held = 0
        self._t = start
        self._steps_left = steps
        self._mark = Decimal(repr(float(self.market.close[start])))

    def _observation(self) -> npt.NDArray[np.float32]:
        mark = float(self._mark)
        state = state_features(
            float(self.position.quantity),
            float(self.position.unrealised(self._mark)),
            self._equity,
            self._equity * self.settings.max_exposure,
            mark,
            self._bars_held,
        )
        return np.concatenate([self.scaled[self._t], state.astype(np.float32)])

    def _info(self) -> dict[str, Any]:
        return {
            "t": self._t,
            "equity": self._equity,
            "position": float(self.position.quantity),
            "target": self._target,
            "trades": self.trades,
            "fees": float(self.position.fees),
            "realised": float(self.position.realised),
        }


def _side(quantity: Decimal) -> int:
    return (quantity > 0) - (quantity < 0)
