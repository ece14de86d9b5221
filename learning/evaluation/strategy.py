"""A policy as a nautilus_trader Strategy: the decisions of the live path, the orders of the training
environment.

On each bar's close the strategy builds the policy's inputs exactly as the environment builds its
observation (the dataset row's market features, then the trading kernel's position-state features of
its position marked at that close) and asks the policy. The trading kernel (`trading.kernel`, the rule
the live risk guard and the environment run) makes the orders: a stop-loss or take-profit exit from the
limit set wins over the policy, the target held already trades nothing, a new target is sized from the
equity at that close and truncated to the step, a move through zero is a reduce-only close then an
opening order, and the pair's limits may deny a leg. The orders are sent as market orders on the next
bar's open quote. The policy applies its own `decision_threshold` (an artifact's, or the agent
configuration's), as in the daemon.

The strategy keeps its own book of the fills nautilus reports (`domain.fills.Position`), because the
policy's state and the order sizes must come from the same accounting as in training; the venue's
account balance is kept too, as a cross-check. Funding is charged on that book at the close of each bar a
funding time falls within (`domain.funding`), as the environment charges it; nautilus's account does not
see it, so its balance is ours plus the funding paid.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from nautilus_trader.model.data import Bar, BarType, QuoteTick
from nautilus_trader.model.enums import LiquiditySide, OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy

from domain.fills import Fill, FillRules, Position
from domain.funding import funding_payment
from domain.messages import OrderIntent
from learning.evaluation.metrics import SIGNAL_FLIP, TimedFill
from policies.baselines import Policy
from trading.kernel import Book, PairKernel, Sizing, bars_after_candle, bars_after_fill, observation, unlimited
from trading.limits import RiskLimits

BACKTEST_RUN = "backtest"
"""The run id the backtest's client order ids are named with."""

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BarDecision:
    row: int
    target: float | None
    """None: HOLD."""
    confidence: float
    action: int | None
    hold_reason: str | None
    orders: tuple[OrderIntent, ...] = ()
    """What the trading kernel made of it (sent on the next bar's open)."""
    risk: str | None = None
    """The reason a leg was denied, if one was."""


@dataclass(slots=True)
class BarBook:
    """The strategy's book at a bar's close, once its decision was taken."""

    position: Decimal
    fees: Decimal
    equity: Decimal


class PolicyStrategy(Strategy):  # type: ignore[misc]  # nautilus's Cython base class is untyped
    def __init__(
        self,
        policy: Policy,
        *,
        instrument: InstrumentId,
        bars: BarType,
        size_precision: int,
        features: Floats,
        opens: Floats,
        closes: Floats,
        open_times_ms: npt.NDArray[np.int64],
        rules: FillRules,
        initial_equity: Decimal,
        max_exposure: float,
        limits: RiskLimits | None = None,
        pair: str = "PAIR",
        min_hold_bars: int = 0,
        funding_rates: Floats | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy
        self._instrument = instrument
        self._bars = bars
        self._size_precision = size_precision
        self._features = features
        self._opens = opens
        self._closes = closes
        self._open_times = open_times_ms
        self._rules = rules
        self.sizing = Sizing(initial_equity, Decimal(repr(float(max_exposure))))
        self.kernel = PairKernel(
            pair, BACKTEST_RUN, limits or unlimited(), rules, self.sizing, held_target=0.0, min_hold_bars=min_hold_bars
        )
        self.position = Position()
        self.balance = initial_equity
        """Initial equity plus realised PnL less fees and funding."""
        self.funding = Decimal(0)
        """Funding paid (nautilus's account does not know it: its balance is ours plus this)."""
        self._funding_rates = funding_rates
        self.decisions: list[BarDecision] = []
        self.fills: list[TimedFill] = []
        self.books: list[BarBook] = []
        self.rejections: list[str] = []
        self._pending: tuple[OrderIntent, ...] = ()
        self._reasons: dict[Any, str] = {}
        self._bar = -1
        self._quote = -1
        self._bars_held = 0

    def on_start(self) -> None:
        self.subscribe_bars(self._bars)
        self.subscribe_quote_ticks(self._instrument)

    def on_bar(self, bar: Bar) -> None:
        self._bar += 1
        row = self._bar
        if row != self._quote:
            raise RuntimeError(f"bar {row} arrived after quote {self._quote}: the data is out of order")
        mark = Decimal(repr(float(self._closes[row])))
        if self._funding_rates is not None and self._funding_rates[row]:
            paid = funding_payment(self.position.quantity, mark, float(self._funding_rates[row]))
            self.funding += paid
            self.balance -= paid
        self._bars_held = bars_after_candle(self.position.quantity, self._bars_held)
        book = Book.of(self.position, self._bars_held, funding=self.funding)
        equity = self.sizing.equity(book, mark)
        self.books.append(BarBook(self.position.quantity, self.position.fees, equity))
        if row == len(self._closes) - 1:
            return  # the last bar only marks: no later open to trade on
        decision = self.policy.decide(self._features[row], observation(book, mark, self.sizing, equity))
        made = self.kernel.decide(decision.target, book, mark, row, row)
        self._pending = made.orders
        self.decisions.append(
            BarDecision(
                row,
                decision.target,
                decision.confidence,
                decision.action,
                decision.hold_reason,
                made.orders,
                made.outcome.reason,
            )
        )

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self._quote += 1
        if not self._pending:
            return
        orders, self._pending = self._pending, ()
        flips = len(orders) == 2 and orders[0].reason == "target"
        for intent in orders:
            order = self.order_factory.market(
                self._instrument,
                OrderSide.BUY if intent.side == "BUY" else OrderSide.SELL,
                Quantity(intent.quantity, self._size_precision),
                reduce_only=intent.reduce_only,
            )
            if intent.reason != "target":
                self._reasons[order.client_order_id] = intent.reason
            elif flips and intent.reduce_only:  # the close of a flip ends its trade as a flip
                self._reasons[order.client_order_id] = SIGNAL_FLIP
            self.submit_order(order)

    def on_order_filled(self, event: Any) -> None:
        fill = Fill(
            "BUY" if event.order_side == OrderSide.BUY else "SELL",
            event.last_qty.as_decimal(),
            event.last_px.as_decimal(),
            event.commission.as_decimal(),
            "maker" if event.liquidity_side == LiquiditySide.MAKER else "taker",
        )
        before = self.position.quantity
        self.balance += self.position.apply(fill) - fill.fee
        self._bars_held = bars_after_fill(before, self.position.quantity, self._bars_held)
        reason = self._reasons.pop(event.client_order_id, None)
        self.fills.append(TimedFill(self._quote, int(self._open_times[self._quote]), fill, reason))

    def on_order_rejected(self, event: Any) -> None:
        self.rejections.append(str(event.reason))

    def on_order_denied(self, event: Any) -> None:
        self.rejections.append(str(event.reason))
