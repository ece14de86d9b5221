"""The contract of the trading kernel: live trading, training and backtests trade alike.

On 4,000 real 1m candles of two pairs, with scripted decisions (long, short, flat, half and full, holds)
and with a baseline policy, three paths are driven bar by bar:

- **live**: each pair's `PolicyCore`, `RiskCore` (one account guard for both) and `ExecutionCore` with
  the paper venue, driven in process exactly as the execution stage applies a plan (the journal's write
  aside): the working orders fill at the candle's open, the plan's orders are placed and submitted to
  the venue, then the position report goes back to the risk guard and the policy;
- **training**: `TradingEnv`, given the same decisions;
- **backtest**: the nautilus_trader backtest (`run_backtest`).

All three hold the same position, have placed the same orders and paid the same fees, and have the
same equity at every bar's close (to 1e-8), with tight stop-loss and take-profit distances that force
exits (asserted to happen) and an order-notional limit that denies full positions from flat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from domain.candle_columns import CandleColumns
from domain.candles import Candle, ms_to_datetime
from domain.fills import FillRules, market_fill
from domain.funding import NO_FUNDING, FundingSchedule, base_rate_schedule
from domain.instruments import Contract
from domain.limit_orders import EntryKind, LimitRules
from domain.messages import MarketInput, OrderIntent, PolicyDecision, decision_sequence
from features.batch import batch_features
from features.definitions import V2
from features.normalization import NormalizationStats
from learning.agent_config import Environment, LimitEntries, Reward
from learning.env import MarketData, TradingEnv
from learning.evaluation.backtest import BacktestSettings, run_backtest
from pipeline.execution.core import ExecutionCore
from pipeline.execution.venue import PaperVenue
from pipeline.policy.core import PolicyCore
from pipeline.risk.account import AccountPolicy, AccountVerdict
from pipeline.risk.blocks import AccountView
from pipeline.risk.core import RiskCore
from pipeline.risk.desk import AccountDesk
from policies.baselines import Decision, Policy, baseline
from trading.context import PairContext
from trading.limits import RiskLimits

D = Decimal
BARS = 4_000
RUN_ID = "00000000-0000-4000-8000-00000000a9ee"
EQUITY = D(10_000)
CONTRACTS = {
    "BTC-USDT": Contract("BTC-USDT", 1, 4, D("0.0001"), D(2), D("0.0002"), D("0.0005"), 125, 125, 1, True),
    "ETH-USDT": Contract("ETH-USDT", 2, 3, D("0.001"), D(2), D("0.0002"), D("0.0005"), 125, 125, 1, True),
}
RULES = {pair: FillRules.of(contract, D(2)) for pair, contract in CONTRACTS.items()}
LIMITS = RiskLimits(
    "agreement",
    max_position_notional=D(12_000),
    max_order_notional=D(8_000),  # a full target from flat (about 10,000) is denied; half passes
    max_orders_per_interval=3,
    max_leverage=D("1.5"),
    stop_loss_pct=D("0.003"),
    take_profit_pct=D("0.004"),
    allowed_instruments=frozenset(CONTRACTS),
)
WIDE = replace(LIMITS, name="wide", max_order_notional=D(20_000))
"""For a baseline, whose targets are all full positions."""
TARGETS = (-1.0, -0.5, 0.0, 0.5, 1.0)
Floats = npt.NDArray[np.float64]


def script(bars: int, seed: int) -> list[float | None]:
    """Mostly HOLD, a new target now and then: flips through zero, half and full, flat."""
    rng = np.random.default_rng(seed)
    return [float(rng.choice(TARGETS)) if rng.random() < 0.06 else None for _ in range(bars)]


def limit_script(bars: int, seed: int) -> list[tuple[float | None, EntryKind]]:
    """`script`, each new target entered as a post-only limit two times in three."""
    rng = np.random.default_rng(seed + 1)
    return [(target, "limit" if rng.random() < 0.67 else "market") for target in script(bars, seed)]


class Scripted:
    """A policy that says what the script says, bar after bar (a target, or a target and its entry)."""

    def __init__(self, targets: list[float | None] | list[tuple[float | None, EntryKind]]) -> None:
        self.name = "scripted"
        self.targets = targets
        self.calls = 0

    def decide(self, market_features: Floats, state: Floats) -> Decision:
        step = self.targets[self.calls]
        target, entry = step if isinstance(step, tuple) else (step, "market")
        self.calls += 1
        return Decision(target, 1.0, None, "scripted_hold" if target is None else None, entry)


class Account:
    """The real account guard, generous enough to allow everything (the pairs' limits decide)."""

    def __init__(self) -> None:
        policy = AccountPolicy("wide", D(10**9), D(10**9), D(10**9), 10**6, timedelta(minutes=1))
        self.desk = AccountDesk(policy, None, datetime(2025, 1, 1, tzinfo=UTC))
        self.checks = 0

    async def observe(self, at_ms: int) -> AccountView:
        return self.desk.observe(ms_to_datetime(at_ms))

    async def check(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        self.checks += 1
        return self.desk.guard.check({}, pair, after, reduces_only, self.desk.now)


@dataclass(frozen=True)
class Bar:
    """After a bar: the position, cumulative fees and equity at its close, and the orders decided on it."""

    position: Decimal
    fees: Decimal
    equity: Decimal
    orders: tuple[tuple[str, Decimal, bool, str, int, Decimal | None], ...]


def orders_of(intents: tuple[OrderIntent, ...]) -> tuple[tuple[str, Decimal, bool, str, int, Decimal | None], ...]:
    return tuple((o.side, o.quantity, o.reduce_only, o.reason, o.leg, o.limit_price) for o in intents)


@pytest.fixture(scope="module")
def market(real_candles: Callable[[str], CandleColumns]) -> dict[str, tuple[CandleColumns, Floats]]:
    spans = {}
    for pair, name in (("BTC-USDT", "BTCUSDT_1m"), ("ETH-USDT", "ETHUSDT_1m")):
        candles = real_candles(name)
        rows = np.arange(2_000, 2_000 + BARS)
        spans[pair] = (candles.take(rows), batch_features(V2, candles.take(np.arange(0, 2_000 + BARS)))[rows])
    return spans


async def live(
    spans: dict[str, tuple[CandleColumns, Floats]],
    deciders: dict[str, Callable[[], Policy]],
    limits: RiskLimits,
    limit_rules: LimitRules | None = None,
    funding: FundingSchedule = NO_FUNDING,
) -> dict[str, list[Bar]]:
    """Both pairs through their risk guards (one account) and paper books, candle by candle; the venue's
    `funding` rates are what the stage would find stored for the times each plan may pay."""
    rates = {int(t): D(repr(float(r))) for t, r in zip(funding.times_ms, funding.rates, strict=True)}
    account = Account()
    pipelines = {}
    for pair in spans:
        context = PairContext(RUN_ID, pair, "1m", "paper", "v2", "p", EQUITY, D(1), limit_rules=limit_rules)
        risk = RiskCore(context, limits, RULES[pair], account)
        risk.reconciled()
        policy = PolicyCore(deciders[pair](), context, rules=RULES[pair])
        pipelines[pair] = (context, risk, policy, ExecutionCore(context, RULES[pair], PaperVenue()))
    bars: dict[str, list[Bar]] = {pair: [] for pair in spans}
    for t in range(BARS):
        for pair, (candles, features) in spans.items():
            context, risk, policy, execution = pipelines[pair]
            open_ms = int(candles.open_time_ms[t])
            candle = Candle(
                pair,
                "1m",
                open_ms,
                float(candles.open[t]),
                float(candles.high[t]),
                float(candles.low[t]),
                float(candles.close[t]),
                float(candles.volume[t]),
            )
            sequence = decision_sequence("1m", open_ms)
            market = MarketInput(
                context.run_id, pair, "1m", sequence, f"{pair}.{t}", candle, tuple(features[t]), None, {}, None, 0.0
            )
            # The last bar only marks: no later open to fill on.
            decision = PolicyDecision(market, "end", None, 1.0) if t == BARS - 1 else policy.decide(market)
            plan, _ = await risk.plan(decision)
            # The execution stage without its journal: each step the core returns is accepted as written,
            # then its orders go to the paper venue and the venue's answers are the next step.
            step = execution.on_plan(plan, {t: rates[t] for t in execution.funding_wanted(plan) if t in rates})
            assert step is not None, f"{pair} bar {t}: a new candle is always a new decision"
            execution.recorded(step)
            if step.submit:
                execution.recorded(execution.submitted(await execution.venue.submit(step.submit)))
            report = execution.report()
            position = execution.book.position
            mark = D(repr(candle.close))
            risk.on_report(report)
            policy.on_report(report)
            equity = EQUITY + position.realised - position.fees - position.funding + position.unrealised(mark)
            assert equity == execution.equity()
            bars[pair].append(Bar(position.quantity, position.fees, equity, orders_of(plan.orders)))
    assert account.checks > 0
    return bars


def environment(
    candles: CandleColumns,
    features: Floats,
    pair: str,
    decisions: list[float | None] | list[tuple[float | None, EntryKind]],
    limits: RiskLimits,
    limit: LimitEntries | None = None,
    funding: FundingSchedule = NO_FUNDING,
) -> list[Bar]:
    stats = NormalizationStats.of(V2.market_features, features)
    rates = funding.per_bar(candles.open_time_ms, 60_000) if len(funding) else None
    ranges = (candles.high, candles.low, candles.volume)
    entries: tuple[EntryKind, ...] = ("market",) if limit is None else ("market", "limit")
    env = TradingEnv(
        {
            "market": MarketData(candles.open, candles.close, features, stats, rates, *ranges),
            "rules": RULES[pair],
            "environment": Environment(
                episode_bars=BARS,
                position_sizes=(0.5, 1.0),
                initial_equity=10_000.0,
                max_exposure=1.0,
                entries=entries,
                limit=limit or LimitEntries(),
            ),
            "reward": Reward(),
            "limits": limits,
            "pair": pair,
        }
    )
    _, info = env.reset(options={"start": 0})
    bars = []
    for step in decisions:
        target, entry = step if isinstance(step, tuple) else (step, "market")
        _, _, terminated, _, info = env.step_decision(target, entry)
        assert not terminated
        bars.append(Bar(env.position.quantity, env.position.fees, info["equity_exact"], orders_of(info["orders"])))
    return bars


def exit_cost(position: Decimal, pair: str, backtest: Any) -> Decimal:
    """What closing `position` by a market order at the last close costs: slippage and the taker fee."""
    if not position:
        return D(0)
    close = D(repr(float(backtest.segment.close[-1])))
    fill = market_fill("SELL" if position > 0 else "BUY", abs(position), close, RULES[pair])
    return fill.fee + (close - fill.price) * position


def assert_agree(pair: str, live_bars: list[Bar], env_bars: list[Bar], backtest: Any) -> None:
    tolerance = D("0.00000001")
    books, decisions = backtest.books, backtest.decisions
    assert len(books) == BARS
    assert len(decisions) == len(env_bars) == BARS - 1
    for t in range(BARS):
        here = live_bars[t]
        book = books[t]
        assert here.position == book.position, f"{pair} bar {t}: live and backtest positions"
        assert abs(here.fees - book.fees) <= tolerance, f"{pair} bar {t}: fees"
        assert abs(here.equity - book.equity) <= tolerance, f"{pair} bar {t}: equity"
        if t < BARS - 1:
            assert here.orders == orders_of(decisions[t].orders), f"{pair} bar {t}: live and backtest orders"
            assert here.orders == env_bars[t].orders, f"{pair} bar {t}: live and environment orders"
        if t > 0:  # the environment's step t-1 ends at bar t's close
            trained = env_bars[t - 1]
            assert here.position == trained.position, f"{pair} bar {t}: live and environment positions"
            assert abs(here.fees - trained.fees) <= tolerance, f"{pair} bar {t}: environment fees"
            # The episode's last step values the position as a market exit at that close would leave it.
            marked = here.equity if t < BARS - 1 else here.equity - exit_cost(here.position, pair, backtest)
            assert abs(marked - trained.equity) <= tolerance, f"{pair} bar {t}: environment equity"
    assert backtest.rejections == ()
    # nautilus's account knows no funding: its balance is ours before the funding we paid.
    assert backtest.venue_balance == pytest.approx(backtest.ledger_balance + backtest.funding, abs=tolerance)


def reasons(bars: list[Bar]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for bar in bars:
        for order in bar.orders:
            counted[order[3]] = counted.get(order[3], 0) + 1
    return counted


def varied_funding(candles: CandleColumns) -> FundingSchedule:
    """A funding rate at every funding time of the span, large and of both signs, so that paying it
    moves the equity well beyond the tolerance (the offline preset's 0.01% would too, barely)."""
    preset = base_rate_schedule(int(candles.open_time_ms[0]), int(candles.open_time_ms[-1]) + 60_000)
    rates = np.array([0.002 if i % 3 else -0.0015 for i in range(len(preset))])
    return FundingSchedule(preset.times_ms, rates, "test:varied")


async def test_live_training_and_backtest_agree_on_scripted_decisions(
    market: dict[str, tuple[CandleColumns, Floats]],
) -> None:
    """Funding charged too, at varied rates: paper pays it as the environment and nautilus do."""
    scripts = {pair: script(BARS, seed) for pair, seed in zip(market, (15, 51), strict=True)}
    funding = varied_funding(market["BTC-USDT"][0])
    assert [int(t) for t in funding.times_ms] == [int(t) for t in varied_funding(market["ETH-USDT"][0]).times_ms]
    live_bars = await live(
        market, {pair: (lambda s=s: Scripted(s)) for pair, s in scripts.items()}, LIMITS, funding=funding
    )
    for pair, (candles, features) in market.items():
        decisions = scripts[pair][: BARS - 1]
        settings = BacktestSettings(
            CONTRACTS[pair], RULES[pair], EQUITY, 1.0, leverage=5, limits=LIMITS, funding=funding
        )
        backtest = run_backtest(Scripted(decisions), candles, features, settings)
        env_bars = environment(candles, features, pair, decisions, LIMITS, funding=funding)
        assert_agree(pair, live_bars[pair], env_bars, backtest)
        assert len(funding) >= 6
        assert backtest.funding != 0, f"{pair}: no funding paid (flat through every funding time?)"
        counted = reasons(live_bars[pair])
        assert counted.get("stop_loss", 0) >= 3, counted
        assert counted.get("take_profit", 0) >= 3, counted
        assert counted.get("target", 0) >= 50, counted
        assert any(d.risk == "max_order_notional" for d in backtest.decisions), "the order limit denied nothing"
        assert any(o[2] and o[3] == "target" for bar in live_bars[pair] for o in bar.orders), "no flip"


async def test_live_training_and_backtest_agree_on_a_baseline(market: dict[str, tuple[CandleColumns, Floats]]) -> None:
    live_bars = await live(market, {pair: (lambda: baseline("momentum", V2)) for pair in market}, WIDE)
    for pair, (candles, features) in market.items():
        settings = BacktestSettings(CONTRACTS[pair], RULES[pair], EQUITY, 1.0, leverage=5, limits=WIDE)
        backtest = run_backtest(baseline("momentum", V2), candles, features, settings)
        decisions = [d.target for d in backtest.decisions]
        env_bars = environment(candles, features, pair, decisions, WIDE)
        assert_agree(pair, live_bars[pair], env_bars, backtest)
        counted = reasons(live_bars[pair])
        assert counted.get("stop_loss", 0) + counted.get("take_profit", 0) >= 3, counted
        assert counted.get("target", 0) >= 20, counted


async def test_live_training_and_backtest_agree_on_limit_entries(
    market: dict[str, tuple[CandleColumns, Floats]],
) -> None:
    """Post-only limit entries (two in three new targets) through the paper venue, the environment and
    nautilus, by the one limit fill model: touch, three candles to live, a small share of each candle's
    volume, so entries fill in parts, expire, are rejected at an open and are cancelled by exits."""
    limit = LimitEntries(trigger="touch", expiry_bars=3, volume_share=0.0005)
    scripts = {pair: limit_script(BARS, seed) for pair, seed in zip(market, (15, 51), strict=True)}
    live_bars = await live(
        market, {pair: (lambda s=s: Scripted(s)) for pair, s in scripts.items()}, LIMITS, limit.rules
    )
    for pair, (candles, features) in market.items():
        decisions = scripts[pair][: BARS - 1]
        settings = BacktestSettings(
            CONTRACTS[pair], RULES[pair], EQUITY, 1.0, leverage=5, limits=LIMITS, limit_rules=limit.rules
        )
        backtest = run_backtest(Scripted(decisions), candles, features, settings)
        env_bars = environment(candles, features, pair, decisions, LIMITS, limit)
        assert_agree(pair, live_bars[pair], env_bars, backtest)
        makers = [timed for timed in backtest.segment.fills if timed.fill.liquidity == "maker"]
        entries = sum(1 for bar in live_bars[pair] for order in bar.orders if order[5] is not None)
        assert entries >= 30, entries
        assert len(makers) > entries, "entries should fill in parts over several candles"
        counted = reasons(live_bars[pair])
        assert counted.get("stop_loss", 0) + counted.get("take_profit", 0) >= 3, counted
