"""A policy as a nautilus_trader Strategy: the decisions of the live path, the orders of the training
environment.

On each bar's close the strategy builds the policy's inputs exactly as the environment builds its
observation (the dataset row's market features, then `state_features` of its position marked at that
close) and asks the policy. A HOLD, or the target already held, trades nothing. A new target is sized
by `domain.fills.rebalance_quantity` from the equity at that close and sent as one market order on the
next bar's open quote. The policy applies its own `decision_threshold` (an artifact's, or the agent
configuration's), as in the daemon.

The strategy keeps its own book of the fills nautilus reports (`domain.fills.Position`), because the
policy's state and the order sizes must come from the same accounting as in training; the venue's
account balance is kept too, as a cross-check.
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

from actors.policy.policies import Policy
from domain.fills import Fill, FillRules, Position, rebalance_quantity
from features.state import state_features
from learning.evaluation.metrics import TimedFill

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BarDecision:
    row: int
    target: float | None
    """None: HOLD."""
    confidence: float
    action: int | None
    hold_reason: str | None


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
        self._max_exposure = max_exposure
        self.position = Position()
        self.balance = initial_equity
        self.decisions: list[BarDecision] = []
        self.fills: list[TimedFill] = []
        self.rejections: list[str] = []
        self._equity = float(initial_equity)
        self._target = 0.0
        self._pending: float | None = None
        self._bar = -1
        self._quote = -1
        self._side = 0
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
        unrealised = self.position.unrealised(mark)
        self._equity = float(self.balance + unrealised)
        side = _side(self.position.quantity)
        self._bars_held = 0 if side != self._side or not side else self._bars_held
        self._bars_held += 1 if side else 0
        self._side = side
        if row == len(self._closes) - 1:
            return  # the last bar only marks: no later open to trade on
        state = state_features(
            float(self.position.quantity),
            float(unrealised),
            self._equity,
            self._equity * self._max_exposure,
            float(mark),
            self._bars_held,
        )
        decision = self.policy.decide(self._features[row], state)
        self.decisions.append(
            BarDecision(row, decision.target, decision.confidence, decision.action, decision.hold_reason)
        )
        if decision.target is not None and decision.target != self._target:
            self._pending = decision.target
            self._target = decision.target

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self._quote += 1
        if self._pending is None:
            return
        target, self._pending = self._pending, None
        price = Decimal(repr(float(self._opens[self._quote])))
        max_notional = Decimal(repr(self._equity * self._max_exposure))
        delta = rebalance_quantity(target, max_notional, price, self.position.quantity, self._rules)
        if delta == 0:
            return
        order = self.order_factory.market(
            self._instrument,
            OrderSide.BUY if delta > 0 else OrderSide.SELL,
            Quantity(abs(delta), self._size_precision),
        )
        self.submit_order(order)

    def on_order_filled(self, event: Any) -> None:
        fill = Fill(
            "BUY" if event.order_side == OrderSide.BUY else "SELL",
            event.last_qty.as_decimal(),
            event.last_px.as_decimal(),
            event.commission.as_decimal(),
            "maker" if event.liquidity_side == LiquiditySide.MAKER else "taker",
        )
        self.balance += self.position.apply(fill) - fill.fee
        self.fills.append(TimedFill(self._quote, int(self._open_times[self._quote]), fill))

    def on_order_rejected(self, event: Any) -> None:
        self.rejections.append(str(event.reason))

    def on_order_denied(self, event: Any) -> None:
        self.rejections.append(str(event.reason))


def _side(quantity: Decimal) -> int:
    return (quantity > 0) - (quantity < 0)
