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
from nautilus_trader.model.data import Bar, BarType, OrderBookDepth10
from nautilus_trader.model.enums import LiquiditySide, OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from domain.fills import Fill, FillRules, Position
from domain.funding import funding_payment
from domain.limit_orders import LimitRules
from domain.messages import OrderIntent
from learning.evaluation.metrics import SIGNAL_FLIP, TimedFill
from policies.baselines import Policy
from trading.kernel import Book, PairKernel, Sizing, bars_after_candle, bars_after_fill, observation, unlimited
from trading.limits import RiskLimits

NS_PER_MS = 1_000_000
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
    resting: Decimal = Decimal(0)
    """A resting limit entry's signed quantity still to fill."""


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
        limit_rules: LimitRules | None = None,
        price_precision: int = 8,
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
        self._limit_rules = limit_rules
        self._price_precision = price_precision
        self._books_per_bar = 1 if limit_rules is None else 2
        self._pending: tuple[OrderIntent, ...] = ()
        self._reasons: dict[Any, str] = {}
        self._bar = -1
        self._books = -1
        self._quote = -1
        """The bar whose open book was seen last (fills are stamped with it)."""
        self._bars_held = 0
        self._resting: Any = None
        """The resting limit entry (a nautilus order), if one rests."""
        self._resting_remaining = Decimal(0)
        self._resting_until = -1
        """The last bar the resting entry lives through."""

    def on_start(self) -> None:
        self.subscribe_bars(self._bars)
        self.subscribe_order_book_depth(self._instrument)

    def on_bar(self, bar: Bar) -> None:
        self._bar += 1
        row = self._bar
        if row != self._quote:
            raise RuntimeError(f"bar {row} arrived after the book of bar {self._quote}: the data is out of order")
        if self._resting is not None and row >= self._resting_until:
            self._cancel_resting()
        mark = Decimal(repr(float(self._closes[row])))
        if self._funding_rates is not None and self._funding_rates[row]:
            paid = funding_payment(self.position.quantity, mark, float(self._funding_rates[row]))
            self.funding += paid
            self.balance -= paid
        self._bars_held = bars_after_candle(self.position.quantity, self._bars_held)
        book = Book.of(self.position, self._bars_held, funding=self.funding, resting=self._resting_signed)
        equity = self.sizing.equity(book, mark)
        self.books.append(BarBook(self.position.quantity, self.position.fees, equity, book.resting))
        if row == len(self._closes) - 1:
            return  # the last bar only marks: no later open to trade on
        decision = self.policy.decide(self._features[row], observation(book, mark, self.sizing, equity))
        if decision.entry == "limit" and self._limit_rules is None:
            raise ValueError(f"{self.policy.name} asks for limit entries, but the backtest has no limit fill model")
        made = self.kernel.decide(decision.target, book, mark, row, row, entry=decision.entry)
        if made.cancels_resting:
            self._cancel_resting(expired=False)
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

    def on_order_book_depth(self, depth: OrderBookDepth10) -> None:
        self._books += 1
        if self._books % self._books_per_bar:
            return  # a bar's range: it fills resting entries, nothing is sent on it
        self._quote += 1
        if not self._pending:
            return
        orders, self._pending = self._pending, ()
        flips = len(orders) == 2 and orders[0].reason == "target"
        for intent in orders:  # the market legs first, then a limit entry rests
            side = OrderSide.BUY if intent.side == "BUY" else OrderSide.SELL
            quantity = Quantity(intent.quantity, self._size_precision)
            if intent.limit_price is not None:
                assert self._limit_rules is not None
                order = self.order_factory.limit(
                    self._instrument, side, quantity, Price(intent.limit_price, self._price_precision), post_only=True
                )
                self._resting = order
                self._resting_remaining = intent.quantity
                self._resting_until = self._quote + self._limit_rules.expiry_bars - 1
            else:
                order = self.order_factory.market(self._instrument, side, quantity, reduce_only=intent.reduce_only)
            if intent.reason != "target":
                self._reasons[order.client_order_id] = intent.reason
            elif flips and intent.reduce_only:  # the close of a flip ends its trade as a flip
                self._reasons[order.client_order_id] = SIGNAL_FLIP
            self.submit_order(order)

    @property
    def _resting_signed(self) -> Decimal:
        if self._resting is None:
            return Decimal(0)
        return self._resting_remaining if self._resting.side == OrderSide.BUY else -self._resting_remaining

    def _cancel_resting(self, expired: bool = True) -> None:
        """The resting entry ends unfilled (in part): it expired (nothing is held, as the kernel is told),
        or an exit is due."""
        if self._resting is None:
            return
        self.cancel_order(self._resting)
        self._resting = None
        if expired:
            self.kernel.expired()

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
        # The bar whose book filled it: a resting entry fills as nautilus reads a book, before the
        # strategy hears of that book, so the fill's own time says which bar it was.
        row = int(np.searchsorted(self._open_times, event.ts_event // NS_PER_MS, side="right")) - 1
        self.fills.append(TimedFill(row, int(self._open_times[row]), fill, reason))
        if self._resting is not None and event.client_order_id == self._resting.client_order_id:
            self._resting_remaining -= fill.quantity
            if self._resting_remaining == 0:
                self._resting = None

    def on_order_rejected(self, event: Any) -> None:
        if self._resting is not None and event.client_order_id == self._resting.client_order_id and event.due_post_only:
            self._resting = None  # post-only: it would have taken at the open (domain.limit_orders step 1)
            self.kernel.expired()
            return
        self.rejections.append(str(event.reason))

    def on_order_denied(self, event: Any) -> None:
        self.rejections.append(str(event.reason))
