"""The trading environment: a `gymnasium.Env` over a dataset version.

One step is one candle. The agent sees the scaled market features of the candle that just became final
and its position state, and picks a target position. The trading kernel (`trading.kernel`, the rule the
live risk guard and the backtests run) turns it into orders: a stop-loss or take-profit exit from the
limit set wins over the agent (checked at this candle's close against the entry price), the target held
already trades nothing, the target is sized from the equity at this close and truncated to the step, a
move through zero is a reduce-only close then an opening order, and the pair's limits (order and
position notional, leverage, orders per interval) may deny a leg. The orders fill at the next candle's
open as paper fills them (`trading.kernel.fill_candle`, `domain.fills`: the slippage, tick rounding and
fees of paper execution and of the simulator's venue), and the step's reward is the change in equity to
that candle's close, fees included: its logarithm (`reward.kind = "log_equity"`, the default) or the change
as a fraction of the initial equity (`equity_change`), less the configured drawdown and turnover
penalties. The episode's last step values a position still open as a market exit at its close would
(slippage and the taker fee), as a backtest's end does: an episode does not end on a free exit.

The limit set is the env config's `limits` (training and evaluation pass the daemon's `[risk]`
settings; none: no exits and no limits). `info` carries what the kernel did: the step's `orders` and
`fills`, the cumulative `fees`, and the `equity` (and `equity_exact`, a Decimal) at the close.
Funding (`MarketData.funding`, the dataset's schedule per candle) is paid at the close of each candle a
funding time falls within, by the position held through it (`domain.funding`), as the backtests charge it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from domain.fills import Fill, FillRules, Position
from domain.limit_orders import EntryKind
from features.normalization import SCALE_CLIP, NormalizationStats
from features.spec import STATE_FEATURES
from learning.agent_config import Environment, Reward
from trading.kernel import Book, PairKernel, Sizing, fill_candle, observation, pay_funding, unlimited
from trading.limits import RiskLimits
from trading.resting import RestingEntry, step_candle

ZERO = Decimal(0)
ENV_RUN = "training"
"""The run id the environment's client order ids are named with."""
RUIN = 1e-6
"""The share of the initial equity below which `log_equity` counts equity as gone (log of 0 is -inf)."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class MarketData:
    """What the environment trades over: prices per candle and the market features of each."""

    open: Floats
    close: Floats
    features: Floats
    stats: NormalizationStats
    funding: Floats | None = None
    """The funding rate charged at each candle's close (`FundingSchedule.per_bar`); None: no funding."""
    high: Floats | None = None
    low: Floats | None = None
    volume: Floats | None = None
    """Each candle's range and volume: what a resting limit entry fills by (needed only for limits)."""

    def __post_init__(self) -> None:
        if not len(self.open) == len(self.close) == len(self.features):
            raise ValueError("open, close and features must have one row per candle")
        if self.funding is not None and len(self.funding) != len(self.close):
            raise ValueError("one funding rate per candle")
        ranges = (self.high, self.low, self.volume)
        if any(column is not None and len(column) != len(self.close) for column in ranges):
            raise ValueError("high, low and volume must have one row per candle")
        if self.features.shape[1] != len(self.stats.names):
            raise ValueError("the normalisation statistics must cover every feature column")


class TradingEnv(gym.Env[npt.NDArray[np.float32], np.int64]):
    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute)
    book: Book
    """The position once the last step's orders filled (the kernel's book value)."""
    kernel: PairKernel
    trades: int
    _equity: float
    _exact: Decimal
    _peak: float
    _drawdown: float
    _t: int
    _steps_left: int
    _mark: Decimal
    _resting: RestingEntry | None
    """The limit entry resting on the book, if one is."""
    _limit_ended: str | None
    """How a limit entry ended in the last step (filled, rejected, expired, cancelled by an exit), if one did."""

    def __init__(self, config: dict[str, Any]) -> None:
        """`config`: `market` (MarketData), `rules` (FillRules), `environment` (Environment), `reward`
        (Reward), optionally `limits` (RiskLimits: exits and pair limits; none by default) and `pair`
        (the instrument the limit set's `allowed_instruments` is checked against). A plain dict, as RLlib
        hands env configs to the env runners."""
        self.market: MarketData = config["market"]
        self.rules: FillRules = config["rules"]
        self.settings: Environment = config["environment"]
        self.shaping: Reward = config["reward"]
        self.limits: RiskLimits = config.get("limits") or unlimited()
        self.pair: str = config.get("pair") or next(iter(sorted(self.limits.allowed_instruments)), "PAIR")
        self.sizing = Sizing(
            Decimal(repr(float(self.settings.initial_equity))), Decimal(repr(float(self.settings.max_exposure)))
        )
        self._opens = _decimals(self.market.open)
        self._closes = _decimals(self.market.close)
        funding = self.market.funding
        self._funding: list[float] | None = None if funding is None or not funding.any() else funding.tolist()
        self.targets: tuple[float, ...] = self.settings.targets
        self.actions: tuple[tuple[float, EntryKind], ...] = self.settings.actions
        self.limit_rules = self.settings.limit_rules
        self._ranges: tuple[list[Decimal], list[Decimal], list[Decimal]] | None = None
        if self.limit_rules is not None:
            high, low, volume = self.market.high, self.market.low, self.market.volume
            if high is None or low is None or volume is None:
                raise ValueError("limit entries need each candle's high, low and volume in the market data")
            self._ranges = (_decimals(high), _decimals(low), _decimals(volume))
        self._bust = self.sizing.initial_equity * Decimal(repr(float(self.settings.bust_equity_fraction)))
        self.scaled = self.market.stats.scale(self.market.features).astype(np.float32)
        if len(self.market.close) < 2:
            raise ValueError("the environment needs at least two candles")
        width = self.scaled.shape[1] + len(STATE_FEATURES)
        # Scaled features within +-SCALE_CLIP; state: side, size (<= 1), unrealised PnL share, days held.
        high = np.full(width, np.float32(SCALE_CLIP))
        high[-len(STATE_FEATURES) :] = (1.0, 2.0, 100.0, 1e6)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.actions))
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
            raise ValueError(f"action {action!r} is not one of 0..{len(self.actions) - 1}")
        target, entry = self.actions[int(action)]
        return self.step_decision(target, entry)

    def step_decision(
        self, target: float | None, entry: EntryKind = "market"
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """`step` for a decision rather than an action: a target (or HOLD, None, which no action is: the
        kernel keeps the position) and how to enter. For scripted decisions and a backtest's, replayed."""
        if target is not None and (target, entry) not in self.actions:
            raise ValueError(f"({target}, {entry!r}) is not one of the environment's actions")
        t = self._t
        before = self._equity
        decision = self.kernel.decide(target, self.book, self._closes[t], t, t, entry=entry)
        self._limit_ended = None
        if decision.cancels_resting:
            self._resting = None
            self._limit_ended = "cancelled"
        price = self._opens[t + 1]  # the orders fill at the next candle's open, as paper fills them
        orders = []
        for intent in decision.orders:
            if intent.limit_price is None:
                orders.append((intent.signed_quantity, price))
            else:
                assert self.limit_rules is not None
                self._resting = RestingEntry.of(intent, self.limit_rules)
        limit_fills = self._step_resting(t + 1)
        self.book, fills = fill_candle(
            replace(self.book, pending=decision.signed_quantity), orders, self.rules, limit_fills
        )
        self.book = replace(self.book, resting=ZERO if self._resting is None else self._resting.signed)
        if self._funding is not None:  # the position held through the candle pays at its close
            self.book = pay_funding(self.book, self._closes[t + 1], self._funding[t + 1])
        traded = sum((fill.quantity * fill.price for fill in fills), Decimal(0))
        self.trades += len(fills)
        self._t = t + 1
        self._mark = self._closes[self._t]
        self._steps_left -= 1
        self._exact = self.sizing.equity(self.book, self._mark)
        terminated = self._exact <= self._bust
        truncated = self._steps_left == 0 and not terminated
        if terminated or truncated:  # the last step is worth what a market exit at its close leaves
            self._exact = self.sizing.exit_equity(self.book, self._mark, self.rules)
        self._equity = float(self._exact)
        self._peak = max(self._peak, self._equity)
        initial = self.settings.initial_equity
        if self.shaping.kind == "log_equity":
            # Equity at or below zero is ruin: the floor keeps the logarithm finite, and heavily negative.
            reward = math.log(max(self._equity, initial * RUIN) / max(before, initial * RUIN))
        else:
            reward = (self._equity - before) / initial
        drawdown = (self._peak - self._equity) / self._peak
        reward -= self.shaping.drawdown_penalty * max(0.0, drawdown - self._drawdown)
        reward -= self.shaping.turnover_penalty * float(traded) / initial
        self._drawdown = drawdown
        info = self._info()
        info["orders"] = decision.orders
        info["fills"] = tuple(fills)
        info["risk"] = decision.outcome
        info["limit_ended"] = self._limit_ended
        return self._observation(), float(reward), terminated, truncated, info

    def action_for(self, target: float | None, entry: EntryKind = "market") -> int:
        """The action that asks for `target` with `entry`; HOLD (None) is the held target's, which trades
        nothing, as the kernel treats HOLD."""
        chosen = self.kernel.held_target if target is None else target
        return self.actions.index((0.0 if chosen is None else chosen, entry))

    def _step_resting(self, t: int) -> tuple[Fill, ...]:
        """The resting limit entry through candle `t`: its fill, if any; one that ended without filling in
        full tells the kernel nothing is held."""
        if self._resting is None:
            return ()
        assert self._ranges is not None
        assert self.limit_rules is not None
        high, low, volume = self._ranges
        step = step_candle(self._resting, self._opens[t], low[t], high[t], volume[t], self.rules, self.limit_rules)
        self._resting = step.resting
        self._limit_ended = step.ended or self._limit_ended
        if step.ended in ("rejected", "expired"):
            self.kernel.expired()
        return () if step.fill is None else (step.fill,)

    @property
    def position(self) -> Position:
        """The net position (a copy: the environment's book is a value)."""
        book = self.book
        return Position(book.quantity, book.entry_price, book.realised, book.fees)

    def _reset_state(self, start: int, steps: int) -> None:
        self.book = Book()
        self._resting = None
        self.kernel = PairKernel(
            self.pair,
            ENV_RUN,
            self.limits,
            self.rules,
            self.sizing,
            held_target=0.0,
            min_hold_bars=self.settings.min_hold_bars,
        )
        self.trades = 0
        self._exact = self.sizing.initial_equity
        self._equity = self._peak = float(self._exact)
        self._drawdown = 0.0
        self._t = start
        self._steps_left = steps
        self._mark = self._closes[start]

    def _observation(self) -> npt.NDArray[np.float32]:
        state = observation(self.book, self._mark, self.sizing, self._exact)
        return np.concatenate([self.scaled[self._t], state.astype(np.float32)])

    def _info(self) -> dict[str, Any]:
        book = self.book
        return {
            "t": self._t,
            "equity": self._equity,
            "equity_exact": self._exact,
            "position": float(book.quantity),
            "target": self.kernel.held_target,
            "trades": self.trades,
            "fees": float(book.fees),
            "funding": float(book.funding),
            "realised": float(book.realised),
            "resting": float(book.resting),
            "orders": (),
            "fills": (),
        }


def _decimals(column: Floats) -> list[Decimal]:
    return [Decimal(repr(value)) for value in column.tolist()]
