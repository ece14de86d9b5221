"""The world a policy is backtested in: equity, exposure and slippage (an agent's training environment,
or the paper run's `[run]`), on a contract at its maximum leverage, under the pair's risk limits, paying
the dataset's funding. One place, so an evaluation and the holdout score of a training trade in the same
world, and the environment pays the same funding (`market_of`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.fills import FillRules
from domain.funding import NO_FUNDING, FundingSchedule
from domain.instruments import Contract
from domain.limit_orders import LimitRules
from features.normalization import NormalizationStats
from learning.agent_config import AgentConfig
from learning.env import MarketData
from learning.evaluation.backtest import BacktestSettings
from trading.limits import RiskLimits


@dataclass(frozen=True)
class World:
    """Equity, exposure and slippage a policy trades with (an agent's environment, or `[run]`)."""

    initial_equity: Decimal
    max_exposure: float
    slippage_bps: Decimal
    min_hold_bars: int = 0
    """The decision rule's minimum holding."""
    limit_rules: LimitRules | None = None
    """The limit fill model of the agent's limit entries (None: it enters at market)."""


def agent_world(agent: AgentConfig) -> World:
    """The world of the agent's training environment."""
    environment = agent.environment
    return World(
        Decimal(repr(environment.initial_equity)),
        environment.max_exposure,
        Decimal(repr(environment.slippage_bps)),
        environment.min_hold_bars,
        environment.limit_rules,
    )


def backtest_settings(
    contract: Contract, world: World, limits: RiskLimits | None, funding: FundingSchedule | None = None
) -> BacktestSettings:
    """`world` on `contract` at the lower of its long and short maximum leverage, under `limits`, paying
    `funding` (a dataset's; None: a dataset built before funding was stored, traded without)."""
    return BacktestSettings(
        contract,
        FillRules.of(contract, world.slippage_bps),
        world.initial_equity,
        world.max_exposure,
        leverage=min(contract.max_long_leverage, contract.max_short_leverage),
        limits=limits,
        min_hold_bars=world.min_hold_bars,
        funding=NO_FUNDING if funding is None else funding,
        limit_rules=world.limit_rules,
    )


def market_of(
    candles: CandleColumns, features: npt.NDArray[np.float64], stats: NormalizationStats, settings: BacktestSettings
) -> MarketData:
    """What the training environment trades over `candles`: prices, features and the funding of `settings`."""
    step = interval_ms(candles.interval)
    funding = settings.funding.per_bar(candles.open_time_ms, step) if len(settings.funding) else None
    return MarketData(candles.open, candles.close, features, stats, funding, candles.high, candles.low, candles.volume)


def settings_for(base: BacktestSettings, agent: AgentConfig) -> BacktestSettings:
    """`base` (its contract, limits and funding) in `agent`'s world: a searched configuration's slippage,
    size and minimum holding."""
    return backtest_settings(base.contract, agent_world(agent), base.limits, base.funding)
