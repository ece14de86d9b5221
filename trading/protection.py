"""Protective orders on a live venue: what an open position must carry, and the orders that carry it.

Every open position on a live venue has a reduce-only STOP_MARKET at the limit set's `stop_loss_pct`
from its entry price (and a TAKE_PROFIT_MARKET at `take_profit_pct` when the set has one), for the whole
position: the venue closes it even when this process is down. `wanted` gives the orders a position must
have; the execution core compares them with those it holds (`ProtectiveOrder`) and places what is
missing before it cancels what no longer fits, so the position is never without a stop while one is
moved. The triggers are the kernel's exits (`PairRiskGuard.exit_reason`: the same distances), rounded
onto the tick away from the entry, so the venue never triggers before the risk guard would.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from domain.fills import FillRules
from domain.messages import Side
from domain.orders import OrderState

ProtectionKind = Literal["stop_loss", "take_profit"]
ORDER_TYPES: dict[ProtectionKind, Literal["STOP_MARKET", "TAKE_PROFIT_MARKET"]] = {
    "stop_loss": "STOP_MARKET",
    "take_profit": "TAKE_PROFIT_MARKET",
}


@dataclass(frozen=True)
class Protection:
    """One protective order a position must have."""

    kind: ProtectionKind
    side: Side
    quantity: Decimal
    trigger: Decimal

    @property
    def order_type(self) -> Literal["STOP_MARKET", "TAKE_PROFIT_MARKET"]:
        return ORDER_TYPES[self.kind]


@dataclass(frozen=True)
class ProtectionRule:
    """The limit set's distances (fractions of the entry price)."""

    stop_loss_pct: Decimal
    take_profit_pct: Decimal | None = None


def wanted(quantity: Decimal, entry_price: Decimal, rule: ProtectionRule, rules: FillRules) -> list[Protection]:
    """The protective orders a position of signed `quantity` entered at `entry_price` must carry (none
    when flat)."""
    if quantity == 0 or entry_price <= 0:
        return []
    long = quantity > 0
    side: Side = "SELL" if long else "BUY"
    size = abs(quantity)
    stop = entry_price * (1 - rule.stop_loss_pct if long else 1 + rule.stop_loss_pct)
    found = [Protection("stop_loss", side, size, _away(stop, rules.tick, down=long))]
    if rule.take_profit_pct is not None:
        target = entry_price * (1 + rule.take_profit_pct if long else 1 - rule.take_profit_pct)
        found.append(Protection("take_profit", side, size, _away(target, rules.tick, down=not long)))
    return found


def _away(price: Decimal, tick: Decimal, *, down: bool) -> Decimal:
    """`price` on the tick grid, rounded down (a long's stop, a short's take-profit) or up."""
    steps = (price / tick).to_integral_value(rounding=ROUND_FLOOR if down else ROUND_CEILING)
    return max(tick, steps * tick)


@dataclass
class ProtectiveOrder:
    """A protective order as the book holds it (its row in `trade_executions` has the same id)."""

    execution_id: uuid.UUID
    client_order_id: str
    """Ours, for the journal (the venue takes none for conditional orders)."""
    kind: ProtectionKind
    side: Side
    quantity: Decimal
    trigger: Decimal
    trade_id: uuid.UUID
    state: OrderState = "intent"
    exchange_order_id: str | None = None

    @property
    def protection(self) -> Protection:
        return Protection(self.kind, self.side, self.quantity, self.trigger)

    @property
    def live(self) -> bool:
        """On the venue (or on its way there) and not being cancelled."""
        return self.state in ("intent", "submitted", "unknown", "accepted")

    def to_json(self) -> dict[str, Any]:
        return {
            "execution_id": str(self.execution_id),
            "client_order_id": self.client_order_id,
            "kind": self.kind,
            "side": self.side,
            "quantity": str(self.quantity),
            "trigger": str(self.trigger),
            "trade_id": str(self.trade_id),
            "state": self.state,
            "exchange_order_id": self.exchange_order_id,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ProtectiveOrder:
        return cls(
            uuid.UUID(item["execution_id"]),
            item["client_order_id"],
            item["kind"],
            item["side"],
            Decimal(item["quantity"]),
            Decimal(item["trigger"]),
            uuid.UUID(item["trade_id"]),
            item["state"],
            item["exchange_order_id"],
        )
