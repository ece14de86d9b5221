"""What a live pair needs from the account before its first order, read and set at start.

- The contract: listed, online and open to API orders (its precision and minimums are what every
  order is checked against, `bingx_orders.contract_refusal`).
- One-way position mode (`positionSide=BOTH`, reduce-only allowed): switched when the account is in
  hedge mode with nothing open; refused otherwise (the venue will not switch with positions or
  orders open, 104103, and tradingd does not trade hedge mode).
- The leverage: the risk limits' `max_leverage` rounded up, exactly (a higher one would move the
  liquidation price closer than the protective stop on isolated margin), never above the contract's
  maximum.
- The margin type (`exchange.margin_type`): set when it differs and the venue allows it (not with a
  position or orders open on the symbol, 109400); otherwise refused, naming what to do.

Anything refused raises `AccountSetupError` with a sentence for the operator: the pair does not trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from domain.errors import RejectedError, UnknownSymbolError
from domain.instruments import Contract
from exchange.bingx.trading import BingXTrading


class AccountSetupError(Exception):
    """The account cannot be made ready for this pair; the message says why and what to do."""


@dataclass(frozen=True)
class PairSetup:
    contract: Contract
    leverage: int
    margin_type: str
    changed: tuple[str, ...]
    """What was set now (for the log and the audit), empty when all was as wanted."""


def venue_leverage(max_leverage: Decimal) -> int:
    """The venue's leverage for a guard that allows `max_leverage` (position notional over equity)."""
    return max(1, math.ceil(max_leverage))


async def prepare_pair(trading: BingXTrading, symbol: str, *, leverage: int, margin_type: str) -> PairSetup:
    """Check and set what `symbol` needs (see the module docstring); raises `AccountSetupError`."""
    try:
        listed = [c for c in await trading.rest.contracts(symbol) if c.symbol == symbol]
    except UnknownSymbolError:
        listed = []
    if not listed:
        raise AccountSetupError(f"{symbol} is not listed on the venue")
    contract = listed[0]
    if not contract.active:
        raise AccountSetupError(f"{symbol} is not open to API orders (status {contract.status}): it does not trade")
    changed: list[str] = []
    if await trading.hedge_mode():
        try:
            await trading.set_one_way_mode()
        except RejectedError as error:
            raise AccountSetupError(
                f"the account is in hedge position mode and cannot switch to one-way while positions or orders are "
                f"open ({error}); close them, or switch to one-way in the BingX app"
            ) from None
        changed.append("position mode: hedge -> one-way")
    current, ceiling = await trading.leverage(symbol)
    if leverage > ceiling:
        raise AccountSetupError(
            f"{symbol}: risk.max_leverage needs leverage {leverage}, above the contract's maximum {ceiling}"
        )
    if current != leverage:
        # Exactly what the guard needs, lowered too: on isolated margin a higher leverage locks less margin
        # and moves the liquidation price closer than the protective stop.
        try:
            await trading.set_leverage(symbol, leverage)
        except RejectedError as error:
            raise AccountSetupError(
                f"{symbol}: the venue refused leverage {leverage} (now {current}): {error}"
            ) from None
        changed.append(f"leverage: {current} -> {leverage}")
    found = await trading.margin_type(symbol)
    if found != margin_type:
        try:
            await trading.set_margin_type(symbol, margin_type)
        except RejectedError as error:
            raise AccountSetupError(
                f"{symbol} is on {found} margin and cannot change to {margin_type} with a position or orders open "
                f"({error}); close them, or set exchange.margin_type = {found!r}"
            ) from None
        changed.append(f"margin type: {found} -> {margin_type}")
    return PairSetup(contract, leverage, margin_type, tuple(changed))
