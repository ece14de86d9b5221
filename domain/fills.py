"""How an order fills, what it costs, and what it does to a position: one implementation for the
simulator's venue and the training environment (and for paper execution, which the daemon builds on
it), so an agent learns in the world it will trade in.

Decimal throughout: prices sit on a tick grid and fees are charged to the 1e-8 USDT, as on the venue.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Literal

from domain.instruments import Contract

Side = Literal["BUY", "SELL"]
FEE_QUANTUM = Decimal("0.00000001")
BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class FillRules:
    """A contract's grid and fees, and the slippage a market order is charged beyond the last price."""

    tick: Decimal
    step: Decimal
    min_quantity: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    slippage_bps: Decimal = Decimal(2)

    def to_json(self) -> dict[str, str]:
        return {
            "tick": str(self.tick),
            "step": str(self.step),
            "min_quantity": str(self.min_quantity),
            "min_notional": str(self.min_notional),
            "maker_fee": str(self.maker_fee),
            "taker_fee": str(self.taker_fee),
            "slippage_bps": str(self.slippage_bps),
        }

    @classmethod
    def of(cls, contract: Contract, slippage_bps: Decimal) -> FillRules:
        return cls(
            contract.tick_size,
            contract.step_size,
            contract.min_quantity,
            contract.min_notional,
            contract.maker_fee_rate,
            contract.taker_fee_rate,
            slippage_bps,
        )


@dataclass(frozen=True, slots=True)
class Fill:
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    """Positive: what the account pays (the venue reports it negated, as commission)."""
    liquidity: Literal["taker", "maker"]

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "BUY" else -self.quantity


def truncate_quantity(quantity: Decimal, rules: FillRules) -> Decimal:
    """The venue truncates an order's quantity to the step size, silently."""
    return quantity.quantize(rules.step, rounding=ROUND_DOWN)


def below_minimum(quantity: Decimal, price: Decimal, rules: FillRules) -> bool:
    return quantity < rules.min_quantity or quantity * price < rules.min_notional


def rebalance_quantity(
    target: float, max_notional: Decimal, price: Decimal, position: Decimal, rules: FillRules
) -> Decimal:
    """The signed quantity of the market order that moves `position` to `target` (a signed fraction of
    the maximum position, whose notional is `max_notional`) at `price`: 0 when nothing is to be sent (the
    position is there already, or the order would fall below the venue's minimums).

    The buy-and-hold reference of the evaluation reports sizes with it; a policy's orders are sized by
    the trading kernel (`trading.kernel`), at the decision candle's close."""
    wanted = truncate_quantity(abs(Decimal(repr(target))) * max_notional / price, rules)
    delta = (wanted if target > 0 else -wanted) - position
    if delta == 0 or below_minimum(abs(delta), price, rules):
        return Decimal(0)
    return delta


def market_fill(side: Side, quantity: Decimal, last_price: Decimal, rules: FillRules) -> Fill:
    """A market order: the last price moved against the taker by the slippage, then onto the tick grid
    against the taker too (so any slippage costs at least a tick), paying the taker fee."""
    sign = 1 if side == "BUY" else -1
    slipped = last_price * (1 + sign * rules.slippage_bps / BPS)
    price = slipped.quantize(rules.tick, rounding=ROUND_CEILING if side == "BUY" else ROUND_FLOOR)
    return Fill(side, quantity, price, fee(quantity, price, rules.taker_fee), "taker")


def exit_fill(quantity: Decimal, last_price: Decimal, rules: FillRules) -> Fill:
    """The market order that closes a signed position of `quantity` at `last_price`: what an open position
    at the end of an episode or a backtest is worth leaving by."""
    return market_fill("SELL" if quantity > 0 else "BUY", abs(quantity), last_price, rules)


def limit_fill(side: Side, quantity: Decimal, price: Decimal, rules: FillRules) -> Fill:
    """A resting limit order the market crossed: its own price, the maker fee."""
    return Fill(side, quantity, price, fee(quantity, price, rules.maker_fee), "maker")


def fee(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    return (quantity * price * rate).quantize(FEE_QUANTUM)


@dataclass(slots=True)
class Position:
    """A one-way (net) position: the venue's average-entry accounting."""

    quantity: Decimal = Decimal(0)
    """Signed: positive long, negative short."""
    entry_price: Decimal = Decimal(0)
    realised: Decimal = Decimal(0)
    """Realised PnL before fees."""
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)
    """Funding paid at funding times (negative: received), `domain.funding`; never part of a fill."""

    def apply(self, fill: Fill) -> Decimal:
        """Book a fill; returns the PnL it realised (before its fee)."""
        self.fees += fill.fee
        signed = fill.signed_quantity
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            total = self.quantity + signed
            self.entry_price = (self.entry_price * self.quantity + fill.price * signed) / total
            self.quantity = total
            return Decimal(0)
        closing = min(abs(signed), abs(self.quantity))
        pnl = (fill.price - self.entry_price) * closing * (1 if self.quantity > 0 else -1)
        self.realised += pnl
        remaining = self.quantity + signed
        if remaining == 0 or (remaining > 0) == (self.quantity > 0):
            self.quantity = remaining
            if remaining == 0:
                self.entry_price = Decimal(0)
        else:  # flipped through zero: the rest opens the other side at the fill price
            self.quantity = remaining
            self.entry_price = fill.price
        return pnl

    def unrealised(self, mark: Decimal) -> Decimal:
        return (mark - self.entry_price) * self.quantity
