"""A perpetual contract's trading rules, as the venue states them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

CONTRACT_FIELDS = (
    "price_precision",
    "quantity_precision",
    "min_quantity",
    "min_notional",
    "maker_fee_rate",
    "taker_fee_rate",
    "max_long_leverage",
    "max_short_leverage",
)
"""The rules a dataset carries (`Contract.to_json`, `Contract.from_json`); the symbol, status and API
flags are the venue's state of the moment, not rules."""


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

    def to_json(self) -> dict[str, object]:
        """The trading rules, decimals as exact strings (tick and step shown beside the precisions)."""
        return {
            "symbol": self.symbol,
            "price_precision": self.price_precision,
            "quantity_precision": self.quantity_precision,
            "tick_size": str(self.tick_size),
            "step_size": str(self.step_size),
            "min_quantity": str(self.min_quantity),
            "min_notional": str(self.min_notional),
            "maker_fee_rate": str(self.maker_fee_rate),
            "taker_fee_rate": str(self.taker_fee_rate),
            "max_long_leverage": self.max_long_leverage,
            "max_short_leverage": self.max_short_leverage,
        }

    @classmethod
    def from_json(cls, symbol: str, document: Mapping[str, object]) -> Contract:
        """Rules as `to_json` writes them (or as a contract file states them) for `symbol`, checked:
        precisions 0..18, minimums and fees non-negative, leverage at least 1. Raises ValueError naming
        the field at fault. The contract reads as online and tradable."""
        unknown = sorted(set(document) - {*CONTRACT_FIELDS, "symbol", "tick_size", "step_size"})
        if unknown:
            raise ValueError(f"unknown contract field {unknown[0]!r} (known: {', '.join(CONTRACT_FIELDS)})")
        missing = [name for name in CONTRACT_FIELDS if name not in document]
        if missing:
            raise ValueError(f"contract field {missing[0]!r} is missing")
        stated = document.get("symbol", symbol)
        if stated != symbol:
            raise ValueError(f"the contract is for {stated}, not {symbol}")
        contract = cls(
            symbol,
            _integer(document, "price_precision", 0, 18),
            _integer(document, "quantity_precision", 0, 18),
            _decimal(document, "min_quantity"),
            _decimal(document, "min_notional"),
            _decimal(document, "maker_fee_rate"),
            _decimal(document, "taker_fee_rate"),
            _integer(document, "max_long_leverage", 1, 10_000),
            _integer(document, "max_short_leverage", 1, 10_000),
            status=1,
            api_tradable=True,
        )
        for name, derived in (("tick_size", contract.tick_size), ("step_size", contract.step_size)):
            if name in document and _decimal(document, name) != derived:
                raise ValueError(f"contract field {name!r} = {document[name]} disagrees with its precision ({derived})")
        return contract


def _integer(document: Mapping[str, object], name: str, low: int, high: int) -> int:
    value = document[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"contract field {name!r} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _decimal(document: Mapping[str, object], name: str) -> Decimal:
    value = document[name]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"contract field {name!r} must be a number, not {value!r}")
    try:
        parsed = Decimal(value if isinstance(value, str) else repr(value))
    except InvalidOperation:
        raise ValueError(f"contract field {name!r} must be a number, not {value!r}") from None
    if not parsed.is_finite() or parsed < 0:
        raise ValueError(f"contract field {name!r} must be a finite number at least 0, not {value!r}")
    return parsed
