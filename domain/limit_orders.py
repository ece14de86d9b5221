"""The one limit-order fill model: how a post-only LIMIT entry at the touch fills, candle by candle. The
training environment, the nautilus backtest and paper execution honour it (the agreement tests hold them
equal); the simulator's venue fills resting limits by the same touch rule and volume share.

An entry the policy asks to make as a limit is placed with the decision's market orders, at the next
candle's open, at the touch of the decision close: a BUY at the close rounded down onto the tick grid, a
SELL rounded up. Then, candle by candle:

1. **At the open.** If a market order on the same side at the open would pay no more than the limit (a
   BUY's market price at the open, its slippage and tick rounding included, at or below the limit; a
   SELL's at or above): a limit placed at this open would take liquidity, so post-only **rejects** it;
   one that rested since an earlier candle **fills in full** at its price (the market opened through it).
2. **In the range.** Otherwise, if the candle's low (a BUY; a SELL: its high) reaches the price, the
   order fills at its price, as a maker: all of what is left, or with `volume_share` set, at most that
   share of the candle's volume (a partial fill; the rest waits for the next candle). `trigger` says what
   reaching is: `touch` (the low at or below a BUY's price) or `cross` (strictly below: the queue ahead at
   the price is assumed to take what trades there).
3. **Expiry.** What is left after `expiry_bars` candles (the candle it was placed in counts) is cancelled.

Exits, stops and reduce-only legs are always market orders: they must not wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

from domain.fills import FillRules, Side, market_fill, truncate_quantity

EntryKind = Literal["market", "limit"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("market", "limit")
Trigger = Literal["touch", "cross"]
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LimitRules:
    trigger: Trigger = "touch"
    expiry_bars: int = 1
    """Candles a limit entry lives, the one it was placed in included."""
    volume_share: Decimal | None = None
    """At most this share of a candle's volume fills per candle in the range (None: all that is left)."""

    def __post_init__(self) -> None:
        if self.expiry_bars < 1:
            raise ValueError("a limit entry lives at least one candle")
        if self.volume_share is not None and not ZERO < self.volume_share <= 1:
            raise ValueError("volume_share must be in (0, 1]")


def touch_price(side: Side, close: Decimal, rules: FillRules) -> Decimal:
    """Where a post-only entry decided at `close` rests: a BUY at the close rounded down onto the tick
    grid, a SELL rounded up."""
    return close.quantize(rules.tick, rounding=ROUND_FLOOR if side == "BUY" else ROUND_CEILING)


def opens_through(side: Side, price: Decimal, open_price: Decimal, rules: FillRules) -> bool:
    """A market order on `side` at `open_price` would pay no more than `price` (a BUY; a SELL: no less):
    step 1's rejection of a new limit, and full fill of a resting one."""
    market = market_fill(side, Decimal(1), open_price, rules).price
    return market <= price if side == "BUY" else market >= price


def reaches(side: Side, price: Decimal, extreme: Decimal, trigger: Trigger) -> bool:
    """The candle's `extreme` (its low for a BUY, its high for a SELL) reaches the limit `price`."""
    if side == "BUY":
        return extreme <= price if trigger == "touch" else extreme < price
    return extreme >= price if trigger == "touch" else extreme > price


def range_fill(
    side: Side,
    price: Decimal,
    remaining: Decimal,
    low: Decimal,
    high: Decimal,
    volume: Decimal,
    rules: LimitRules,
    fill_rules: FillRules,
) -> Decimal:
    """Step 2: the quantity a resting limit fills in a candle's range (0 when the range does not reach it)."""
    if not reaches(side, price, low if side == "BUY" else high, rules.trigger):
        return ZERO
    if rules.volume_share is None:
        return remaining
    return min(remaining, truncate_quantity(volume * rules.volume_share, fill_rules))
