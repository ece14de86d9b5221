"""A resting post-only limit entry, candle by candle (`domain.limit_orders`), as the training environment
and the backtests' cross-check step it. Pure values: each candle gives the fill, what still rests, and why
the order ended if it did."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from domain.fills import Fill, FillRules, Side, limit_fill
from domain.limit_orders import LimitRules, opens_through, range_fill
from domain.messages import OrderIntent

Ended = Literal["filled", "rejected", "expired"]


@dataclass(frozen=True, slots=True)
class RestingEntry:
    client_order_id: str
    side: Side
    price: Decimal
    remaining: Decimal
    candles_left: int
    rested: bool = False
    """On the book since an earlier candle's open (False: placed at this candle's open)."""

    @classmethod
    def of(cls, intent: OrderIntent, rules: LimitRules) -> RestingEntry:
        if intent.limit_price is None:
            raise ValueError(f"order {intent.client_order_id} is a market order, not a limit entry")
        return cls(intent.client_order_id, intent.side, intent.limit_price, intent.quantity, rules.expiry_bars)

    @property
    def signed(self) -> Decimal:
        return self.remaining if self.side == "BUY" else -self.remaining


@dataclass(frozen=True, slots=True)
class CandleStep:
    fill: Fill | None
    resting: RestingEntry | None
    """What still rests after the candle (None: the order ended)."""
    ended: Ended | None


def step_candle(
    entry: RestingEntry,
    open_price: Decimal,
    low: Decimal,
    high: Decimal,
    volume: Decimal,
    fill_rules: FillRules,
    rules: LimitRules,
) -> CandleStep:
    """One candle of `entry`'s life: the open (a new order that would take is rejected, a rested one the
    open went through fills in full), then the range (a maker fill, capped by the volume share), then
    expiry."""
    if opens_through(entry.side, entry.price, open_price, fill_rules):
        if not entry.rested:
            return CandleStep(None, None, "rejected")
        return CandleStep(limit_fill(entry.side, entry.remaining, entry.price, fill_rules), None, "filled")
    quantity = range_fill(entry.side, entry.price, entry.remaining, low, high, volume, rules, fill_rules)
    fill = limit_fill(entry.side, quantity, entry.price, fill_rules) if quantity > 0 else None
    remaining = entry.remaining - quantity
    if remaining == 0:
        return CandleStep(fill, None, "filled")
    if entry.candles_left <= 1:
        return CandleStep(fill, None, "expired")
    return CandleStep(fill, replace(entry, remaining=remaining, candles_left=entry.candles_left - 1, rested=True), None)


def resting_json(entry: RestingEntry) -> dict[str, str | int | bool]:
    return {
        "client_order_id": entry.client_order_id,
        "side": entry.side,
        "price": str(entry.price),
        "remaining": str(entry.remaining),
        "candles_left": entry.candles_left,
        "rested": entry.rested,
    }


def resting_from_json(item: Mapping[str, Any]) -> RestingEntry:
    return RestingEntry(
        str(item["client_order_id"]),
        item["side"],
        Decimal(item["price"]),
        Decimal(item["remaining"]),
        int(item["candles_left"]),
        bool(item["rested"]),
    )
