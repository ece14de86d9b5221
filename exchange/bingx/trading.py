"""Orders, positions and balance (API.md section 6), in one-way position mode (`positionSide=BOTH`,
`reduceOnly` allowed). Placing and cancelling are sent exactly once; the caller resolves an
`UnknownOutcomeError` by querying the order by its client order id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from domain.errors import WireFormatError
from exchange.bingx.rest import BingXRest

Side = Literal["BUY", "SELL"]
OrderType = Literal["MARKET", "LIMIT"]
ConditionalType = Literal["STOP_MARKET", "TAKE_PROFIT_MARKET"]
TimeInForce = Literal["GTC", "PostOnly"]
"""A LIMIT order's `timeInForce` (API.md 6.2, exact casing): `PostOnly` is refused (101215) rather than
filled when it would take liquidity."""
CLIENT_ORDER_ID = re.compile(r"^[a-z0-9_-]{1,40}$")
OPEN_STATUSES = frozenset({"NEW", "PENDING", "PARTIALLY_FILLED"})


@dataclass(frozen=True)
class VenueOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    status: str
    quantity: Decimal
    executed_quantity: Decimal
    avg_price: Decimal
    commission: Decimal
    stop_price: Decimal | None = None
    """A conditional order's trigger (None for MARKET and LIMIT)."""
    reduce_only: bool = False
    price: Decimal | None = None
    """A LIMIT order's price (None for MARKET and the conditional types)."""

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class VenuePosition:
    symbol: str
    quantity: Decimal
    """Signed: positive long, negative short (the venue sends a positive amount and a side)."""
    entry_price: Decimal
    unrealised_pnl: Decimal


@dataclass(frozen=True)
class VenueBalance:
    asset: str
    balance: Decimal
    equity: Decimal
    available_margin: Decimal
    user_id: str | None = None
    """`userId`: the account the keys belong to (a rotation must not move to another one)."""


MARGIN_ASSET = "USDT"
"""The asset USDT-margined swaps are margined in: the account's equity is this balance's."""


def margin_balance(balances: list[VenueBalance]) -> VenueBalance | None:
    """The USDT balance among the account's (None: the account holds none)."""
    return next((b for b in balances if b.asset == MARGIN_ASSET), None)


class BingXTrading:
    def __init__(self, rest: BingXRest) -> None:
        self.rest = rest

    async def place_order(
        self,
        symbol: str,
        side: Side,
        order_type: OrderType,
        quantity: Decimal,
        *,
        client_order_id: str,
        price: Decimal | None = None,
        reduce_only: bool = False,
        time_in_force: TimeInForce | None = None,
    ) -> VenueOrder:
        if not CLIENT_ORDER_ID.match(client_order_id):
            # The venue lower-cases ids; ours are lower-case already so the echo matches what we stored.
            raise ValueError("client order ids must be 1-40 characters of [a-z0-9_-]")
        if (order_type == "LIMIT") != (price is not None):
            raise ValueError("LIMIT orders need a price; MARKET orders take none")
        if time_in_force is not None and order_type != "LIMIT":
            raise ValueError("timeInForce is a LIMIT order's")
        params = _order_params(symbol, side, order_type, quantity, reduce_only)
        params["clientOrderId"] = client_order_id
        if price is not None:
            params["price"] = _text(price)
        if time_in_force is not None:
            params["timeInForce"] = time_in_force
        data = await self.rest.write("POST", "/openApi/swap/v2/trade/order", params)
        echo = _object(data, "order")
        echoed_id = str(echo.get("clientOrderID", echo.get("clientOrderId", "")))
        if echoed_id != client_order_id:
            raise WireFormatError(f"the venue echoed client order id {echoed_id!r}, not {client_order_id!r}")
        return _order(echo)

    async def place_conditional(
        self, symbol: str, side: Side, order_type: ConditionalType, quantity: Decimal, stop_price: Decimal
    ) -> VenueOrder:
        """A reduce-only STOP_MARKET or TAKE_PROFIT_MARKET that triggers on the last price (`CONTRACT_PRICE`,
        the price the candles and the risk guard's exits follow). The venue takes no client order id for
        these (API.md 7.1): the order is known by its order id, and an answer that was lost is found among
        the open orders by type, side, quantity and trigger."""
        params = _order_params(symbol, side, order_type, quantity, True)
        params.update(stopPrice=_text(stop_price), workingType="CONTRACT_PRICE")
        return _order(_object(await self.rest.write("POST", "/openApi/swap/v2/trade/order", params), "order"))

    async def query_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        params = _order_ref(symbol, order_id, client_order_id)
        return _order(_object(await self.rest.read("/openApi/swap/v2/trade/order", params, signed=True), "order"))

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> VenueOrder:
        params = _order_ref(symbol, order_id, client_order_id)
        return _order(_object(await self.rest.write("DELETE", "/openApi/swap/v2/trade/order", params), "order"))

    async def open_orders(self, symbol: str | None = None) -> list[VenueOrder]:
        data = await self.rest.read("/openApi/swap/v2/trade/openOrders", _some(symbol=symbol), signed=True)
        orders = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(orders, list):
            raise WireFormatError("openOrders: expected data.orders")
        return [_order(order) for order in orders]

    async def all_orders(
        self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None, limit: int = 500
    ) -> list[VenueOrder]:
        """The symbol's orders of any status in a window of at most 7 days (the venue's default: the last
        7), up to `limit` (at most 1000)."""
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be 1..1000")
        params = _some(symbol=symbol, startTime=start_ms, endTime=end_ms, limit=limit)
        data = await self.rest.read("/openApi/swap/v2/trade/allOrders", params, signed=True)
        orders = data.get("orders") if isinstance(data, dict) else None
        if not isinstance(orders, list):
            raise WireFormatError("allOrders: expected data.orders")
        return [_order(order) for order in orders]

    async def positions(self, symbol: str | None = None) -> list[VenuePosition]:
        data = await self.rest.read("/openApi/swap/v2/user/positions", _some(symbol=symbol), signed=True)
        if not isinstance(data, list):
            raise WireFormatError("positions: expected a list")
        positions = []
        for row in data:
            amount = Decimal(str(row["positionAmt"]))
            positions.append(
                VenuePosition(
                    str(row["symbol"]),
                    amount if row["positionSide"] != "SHORT" else -amount,
                    Decimal(str(row["avgPrice"])),
                    Decimal(str(row["unrealizedProfit"])),
                )
            )
        return positions

    async def balance(self) -> list[VenueBalance]:
        data = await self.rest.read("/openApi/swap/v3/user/balance", {}, signed=True)
        if not isinstance(data, list):
            raise WireFormatError("balance: expected a list (v3)")
        return [
            VenueBalance(
                str(r["asset"]),
                Decimal(str(r["balance"])),
                Decimal(str(r["equity"])),
                Decimal(str(r["availableMargin"])),
                None if r.get("userId") in (None, "") else str(r["userId"]),
            )
            for r in data
        ]

    # ---------------------------------------------------------------- account settings (API.md 6.1, 6.9)

    async def hedge_mode(self) -> bool:
        """Whether the account is in hedge (dual) position mode; tradingd trades one-way only."""
        data = await self.rest.read("/openApi/swap/v1/positionSide/dual", {}, signed=True)
        value = data.get("dualSidePosition") if isinstance(data, dict) else None
        if str(value).lower() not in ("true", "false"):
            raise WireFormatError(f"positionSide/dual: dualSidePosition is {value!r}")
        return str(value).lower() == "true"

    async def set_one_way_mode(self) -> None:
        """One-way position mode, account-wide (refused with 104103 while positions or orders are open)."""
        await self.rest.write("POST", "/openApi/swap/v1/positionSide/dual", {"dualSidePosition": "false"})

    async def leverage(self, symbol: str) -> tuple[int, int]:
        """The symbol's leverage now and its maximum (one-way: the long side's, which BOTH sets)."""
        data = await self.rest.read("/openApi/swap/v2/trade/leverage", {"symbol": symbol}, signed=True)
        try:
            return int(data["longLeverage"]), int(data["maxLongLeverage"])
        except (KeyError, TypeError, ValueError):
            raise WireFormatError(f"leverage: unexpected answer {str(data)[:200]}") from None

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        params = {"symbol": symbol, "side": "BOTH", "leverage": leverage}
        await self.rest.write("POST", "/openApi/swap/v2/trade/leverage", params)

    async def margin_type(self, symbol: str) -> str:
        data = await self.rest.read("/openApi/swap/v2/trade/marginType", {"symbol": symbol}, signed=True)
        value = data.get("marginType") if isinstance(data, dict) else None
        if not isinstance(value, str):
            raise WireFormatError(f"marginType: unexpected answer {str(data)[:200]}")
        return value

    async def set_margin_type(self, symbol: str, margin_type: str) -> None:
        """ISOLATED or CROSSED (refused with 109400 while the symbol has a position or orders)."""
        await self.rest.write(
            "POST", "/openApi/swap/v2/trade/marginType", {"symbol": symbol, "marginType": margin_type}
        )

    async def close_all_positions(self, symbol: str | None = None) -> list[int]:
        data = await self.rest.write("POST", "/openApi/swap/v2/trade/closeAllPositions", _some(symbol=symbol))
        success = data.get("success") if isinstance(data, dict) else None
        if not isinstance(success, list):
            raise WireFormatError("closeAllPositions: expected data.success")
        return [int(order_id) for order_id in success]


def _order(row: Any) -> VenueOrder:
    if not isinstance(row, dict):
        raise WireFormatError("order: expected an object")
    try:
        return VenueOrder(
            order_id=int(row["orderId"] if "orderId" in row else row["orderID"]),
            client_order_id=str(row.get("clientOrderId", row.get("clientOrderID", ""))),
            symbol=str(row["symbol"]),
            side=str(row["side"]),
            type=str(row["type"]),
            status=str(row.get("status", "NEW")),
            quantity=Decimal(str(row.get("origQty", row.get("quantity", "0")))),
            executed_quantity=Decimal(str(row.get("executedQty", "0"))),
            avg_price=Decimal(str(row.get("avgPrice", "0") or "0")),
            commission=Decimal(str(row.get("commission", "0") or "0")),
            stop_price=_stop_price(row.get("stopPrice")),
            reduce_only=row.get("reduceOnly") in (True, "true"),
            price=_stop_price(row.get("price")) if str(row.get("type")) == "LIMIT" else None,
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as error:
        raise WireFormatError(f"malformed order: {error}") from None


def _order_params(symbol: str, side: Side, order_type: str, quantity: Decimal, reduce_only: bool) -> dict[str, object]:
    """What every order sends, in one-way position mode."""
    return {
        "symbol": symbol, "side": side, "positionSide": "BOTH", "type": order_type, "quantity": _text(quantity),
        "reduceOnly": reduce_only,
    }  # fmt: skip


def _stop_price(value: Any) -> Decimal | None:
    """A trigger (or a limit's price) as the venue sends it: a number or a string; empty or 0 for an
    order without one."""
    if value in (None, "", 0, "0"):
        return None
    price = Decimal(str(value))
    return price if price > 0 else None


def _object(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise WireFormatError(f"expected data.{key}")
    return data[key]


def _order_ref(symbol: str, order_id: int | None, client_order_id: str | None) -> dict[str, object]:
    if (order_id is None) == (client_order_id is None):
        raise ValueError("give exactly one of order_id and client_order_id")
    params: dict[str, object] = {"symbol": symbol}
    if order_id is not None:
        params["orderId"] = order_id
    else:
        params["clientOrderId"] = client_order_id
    return params


def _some(**params: object) -> dict[str, object]:
    return {key: value for key, value in params.items() if value is not None}


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")
