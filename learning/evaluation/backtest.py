"""One nautilus_trader backtest of one policy over a span of candles and their features.

The venue is a NETTING margin account in USDT (BingX's one-way mode) with the contract's leverage.
Our metrics are computed from the fills (`metrics.py`), not by nautilus's portfolio analyzer: the
analyzer appends to pandas series for every closed position, which makes long backtests quadratic
(docs/performance.md), and we need the same figures for paper runs, which nautilus never sees.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Money

from domain.candle_columns import CandleColumns
from domain.candles import interval_ms
from domain.fills import FillRules
from domain.funding import NO_FUNDING, FundingSchedule
from domain.instruments import Contract
from domain.limit_orders import LimitRules
from learning.evaluation.metrics import Metrics, Segment, SegmentBook, buy_and_hold, metrics, replay
from learning.evaluation.strategy import BarBook, BarDecision, PolicyStrategy
from learning.evaluation.venue import VENUE, VenueFees, bar_type, instrument_id, market_data, perpetual
from policies.baselines import Policy
from trading.limits import RiskLimits, limits_json

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BacktestSettings:
    contract: Contract
    rules: FillRules
    """The contract's grid and fees, and the slippage a market order pays."""
    initial_equity: Decimal
    max_exposure: float
    """A full target position's notional, as a multiple of equity (the agent's environment setting)."""
    leverage: int
    limits: RiskLimits | None = None
    """The pair's risk limit set (the daemon's `[risk]` settings): its stop-loss and take-profit exits
    and its limits apply as in live trading. None: no exits, no limits."""
    min_hold_bars: int = 0
    """The decision rule's minimum holding (the agent's `environment.min_hold_bars`)."""
    funding: FundingSchedule = NO_FUNDING
    """The pair's funding rates over the span (the dataset's), charged as the environment charges them."""
    limit_rules: LimitRules | None = None
    """The limit fill model of the policy's limit entries (the agent's `environment.limit`); None: the
    policy enters at market only."""

    def __post_init__(self) -> None:
        if self.leverage < 1:
            raise ValueError("leverage must be at least 1")
        if self.max_exposure > self.leverage:
            raise ValueError(
                f"max_exposure {self.max_exposure} needs leverage above {self.leverage}: a full position "
                "would not fit the margin"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "pair": self.contract.symbol,
            "initial_equity": str(self.initial_equity),
            "max_exposure": self.max_exposure,
            "leverage": self.leverage,
            **self.rules.to_json(),
            "risk": None if self.limits is None else limits_json(self.limits),
            "min_hold_bars": self.min_hold_bars,
            "funding": {"source": self.funding.source, "funding_times": len(self.funding)},
        }


@dataclass(frozen=True, eq=False)
class BacktestResult:
    policy: str
    segment: Segment
    book: SegmentBook
    """The segment's replay: equity per bar, positions, trades."""
    decisions: tuple[BarDecision, ...]
    metrics: Metrics
    ledger_balance: Decimal
    """Our own book's balance at the end (initial equity, realised PnL, fees, funding)."""
    venue_balance: Decimal
    """The nautilus account's balance at the end: must equal `ledger_balance` plus `funding`."""
    rejections: tuple[str, ...]
    seconds: float
    books: tuple[BarBook, ...] = ()
    """The strategy's position, fees and equity at every bar's close, after its decision."""
    funding: Decimal = Decimal(0)
    """Funding paid over the span (negative: received)."""

    @property
    def bars_per_second(self) -> float:
        return len(self.segment.close) / self.seconds if self.seconds > 0 else float("inf")


def run_backtest(
    policy: Policy, candles: CandleColumns, features: Floats, settings: BacktestSettings
) -> BacktestResult:
    """Trade `policy` over `candles` (consecutive, final) whose market features are the rows of
    `features`. The first bar's decision fills at the second bar's open; the last bar only marks."""
    if len(candles) < 2:
        raise ValueError("a backtest needs at least two candles")
    if features.shape[0] != len(candles):
        raise ValueError("features must have one row per candle")
    if np.any(np.diff(candles.open_time_ms) != interval_ms(candles.interval)):
        raise ValueError("the candles must be consecutive, one per interval, in order")
    contract = settings.contract
    step = interval_ms(candles.interval)
    rates = settings.funding.per_bar(candles.open_time_ms, step) if len(settings.funding) else None
    started = time.perf_counter()
    config = BacktestEngineConfig(trader_id=TraderId("EVALUATION-001"), logging=LoggingConfig(bypass_logging=True))
    engine = BacktestEngine(config)
    try:
        engine.add_venue(
            VENUE,
            OmsType.NETTING,
            AccountType.MARGIN,
            [Money(settings.initial_equity, USDT)],
            base_currency=USDT,
            default_leverage=Decimal(settings.leverage),
            fee_model=VenueFees(settings.rules),
            book_type=BookType.L2_MBP,
            bar_execution=False,  # the books are the open's and the range's; bars only tell a candle closed
            trade_execution=False,
            liquidity_consumption=True,  # a range's depth fills once: the volume share of a candle
        )
        instrument = perpetual(contract, settings.leverage)
        engine.add_instrument(instrument)
        bars, books = market_data(contract, settings.rules, candles, settings.limit_rules)
        engine.add_data(books)
        engine.add_data(bars)
        strategy = PolicyStrategy(
            policy,
            instrument=instrument_id(contract),
            bars=bar_type(contract, candles),
            size_precision=contract.quantity_precision,
            features=features,
            opens=candles.open,
            closes=candles.close,
            open_times_ms=candles.open_time_ms,
            rules=settings.rules,
            initial_equity=settings.initial_equity,
            max_exposure=settings.max_exposure,
            limits=settings.limits,
            pair=contract.symbol,
            min_hold_bars=settings.min_hold_bars,
            funding_rates=rates,
            limit_rules=settings.limit_rules,
            price_precision=contract.price_precision,
        )
        engine.add_strategy(strategy)
        _skip_portfolio_analyzer(engine)
        with warnings.catch_warnings():
            # nautilus calls pandas' deprecated Timestamp.utcnow when it logs the run's timing.
            warnings.filterwarnings("ignore", message=r".*Timestamp\.utcnow is deprecated")
            engine.run()
        account = engine.portfolio.account(VENUE)
        venue_balance = account.balance_total(USDT).as_decimal()
    finally:
        engine.dispose()
    segment = Segment(
        settings.initial_equity,
        candles.close,
        tuple(strategy.fills),
        step,
        int(candles.open_time_ms[0]),
        exit_rules=settings.rules,
        funding_rates=rates,
    )
    book = replay(segment)
    return BacktestResult(
        policy=policy.name,
        segment=segment,
        book=book,
        decisions=tuple(strategy.decisions),
        metrics=metrics([segment], [book]),
        ledger_balance=strategy.balance,
        funding=strategy.funding,
        venue_balance=venue_balance,
        rejections=tuple(strategy.rejections),
        seconds=time.perf_counter() - started,
        books=tuple(strategy.books),
    )


def market_segment(candles: CandleColumns, settings: BacktestSettings) -> Segment:
    """Buy-and-hold over `candles` in the backtest's world: its size, fees, slippage and funding."""
    step = interval_ms(candles.interval)
    return buy_and_hold(
        candles.open,
        candles.close,
        int(candles.open_time_ms[0]),
        step,
        settings.initial_equity,
        settings.max_exposure,
        settings.rules,
        settings.funding.per_bar(candles.open_time_ms, step) if len(settings.funding) else None,
    )


def _skip_portfolio_analyzer(engine: BacktestEngine) -> None:
    """The analyzer's per-position pandas appends are what make nautilus backtests superlinear; our
    metrics come from the fills instead."""
    analyzer = engine.portfolio.analyzer
    analyzer.record_trade = lambda *args, **kwargs: None
    analyzer.calculate_statistics = lambda *args, **kwargs: None
