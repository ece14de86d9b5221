"""The per-pair risk limits of the trading kernel: `risk_limit_sets`, allowed instruments, the pair's
trading state, and the stop-loss and take-profit exits.

Orders that only reduce a position pass the size limits (an exit must never be blocked by the limits
meant to stop risk growing); the trading state and the instrument list still apply to them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from domain.trading_state import TradingState, allows

# Reasons, stable strings recorded with every denial.
STATE_HALTED = "trading_halted"
STATE_REDUCING = "reduce_only"
INSTRUMENT_NOT_ALLOWED = "instrument_not_allowed"
MAX_ORDER_NOTIONAL = "max_order_notional"
MAX_POSITION_NOTIONAL = "max_position_notional"
MAX_LEVERAGE = "max_leverage"
MAX_ORDERS_PER_INTERVAL = "max_orders_per_interval"
STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    name: str
    max_position_notional: Decimal
    max_order_notional: Decimal
    max_orders_per_interval: int
    max_leverage: Decimal = Decimal(1)
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    allowed_instruments: frozenset[str] = frozenset()
    """Empty: every configured pair; otherwise only these."""

    def allows_instrument(self, pair: str) -> bool:
        return not self.allowed_instruments or pair in self.allowed_instruments


def limits_json(limits: RiskLimits) -> dict[str, Any]:
    """A limit set as recorded with a backtest's or an agent's parameters."""
    return {
        "name": limits.name,
        "max_position_notional": str(limits.max_position_notional),
        "max_order_notional": str(limits.max_order_notional),
        "max_orders_per_interval": limits.max_orders_per_interval,
        "max_leverage": str(limits.max_leverage),
        "stop_loss_pct": None if limits.stop_loss_pct is None else str(limits.stop_loss_pct),
        "take_profit_pct": None if limits.take_profit_pct is None else str(limits.take_profit_pct),
        "allowed_instruments": sorted(limits.allowed_instruments),
    }


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """An order about to be sent, with what it would do to the pair's position."""

    pair: str
    quantity: Decimal
    price: Decimal
    position_before: Decimal
    """Signed quantity before the order."""
    position_after: Decimal
    equity: Decimal
    interval_start_ms: int
    """The start of the decision interval (orders are counted per interval)."""

    @property
    def reduces_only(self) -> bool:
        before, after = self.position_before, self.position_after
        return abs(after) < abs(before) and (after == 0 or (after > 0) == (before > 0))


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    allowed: bool
    reason: str | None = None
    details: dict[str, str] = field(default_factory=dict)


ALLOW = RiskVerdict(True)


@dataclass
class PairRiskGuard:
    pair: str
    limits: RiskLimits
    state: TradingState = "HALTED"
    """Every pair starts HALTED until execution has reconciled with the venue."""
    _sent: deque[int] = field(default_factory=deque)

    def check(self, order: OrderCheck, already: int = 0) -> RiskVerdict:
        """`already`: orders of the same plan allowed before this one, not yet recorded as sent."""
        reduces_only = order.reduces_only
        if not allows(self.state, reduces_only):
            return RiskVerdict(False, STATE_HALTED if self.state == "HALTED" else STATE_REDUCING, {"state": self.state})
        if not self.limits.allows_instrument(order.pair):
            return RiskVerdict(
                False, INSTRUMENT_NOT_ALLOWED, {"allowed": ",".join(sorted(self.limits.allowed_instruments))}
            )
        sent = already + sum(1 for start in self._sent if start == order.interval_start_ms)
        if sent >= self.limits.max_orders_per_interval:
            return RiskVerdict(
                False, MAX_ORDERS_PER_INTERVAL, {"sent": str(sent), "limit": str(self.limits.max_orders_per_interval)}
            )
        if reduces_only:
            return ALLOW
        notional = order.quantity * order.price
        if notional > self.limits.max_order_notional:
            return RiskVerdict(
                False, MAX_ORDER_NOTIONAL, {"notional": str(notional), "limit": str(self.limits.max_order_notional)}
            )
        position = abs(order.position_after) * order.price
        if position > self.limits.max_position_notional:
            return RiskVerdict(
                False,
                MAX_POSITION_NOTIONAL,
                {"notional": str(position), "limit": str(self.limits.max_position_notional)},
            )
        if order.equity <= 0 or position / order.equity > self.limits.max_leverage:
            leverage = "inf" if order.equity <= 0 else str(position / order.equity)
            return RiskVerdict(False, MAX_LEVERAGE, {"leverage": leverage, "limit": str(self.limits.max_leverage)})
        return ALLOW

    def record_sent(self, interval_start_ms: int) -> None:
        """Count an order sent in this interval (only after it was allowed and sent)."""
        self._sent.append(interval_start_ms)
        while self._sent and self._sent[0] < interval_start_ms:
            self._sent.popleft()

    def exit_reason(self, position: Decimal, entry_price: Decimal, mark: Decimal) -> str | None:
        """Stop-loss or take-profit for an open position at `mark`, as a fraction of the entry price."""
        if position == 0 or entry_price <= 0:
            return None
        move = (mark - entry_price) / entry_price * (1 if position > 0 else -1)
        if self.limits.stop_loss_pct is not None and move <= -self.limits.stop_loss_pct:
            return STOP_LOSS
        if self.limits.take_profit_pct is not None and move >= self.limits.take_profit_pct:
            return TAKE_PROFIT
        return None
