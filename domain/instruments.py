"""A perpetual contract's trading rules, as the venue states them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Contract:
    symbol: str
    price_precision: int
    quantity_precision: int
    min_quantity: Decimal
    min_notional: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    max_long_leverage: int
    max_short_leverage: int
    status: int
    api_tradable: bool

    @property
    def tick_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_precision)

    @property
    def step_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.quantity_precision)

    @property
    def active(self) -> bool:
        """Online (status 1) and open to API orders both ways."""
        return self.status == 1 and self.api_tradable
