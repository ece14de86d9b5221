"""The simulator's signed endpoints: orders, positions, balance (API.md section 6).

Authentication follows the venue: `X-BX-APIKEY` must name a known key (100413), the signature must
match (100001; missing: 100412) by the recommended rule (received order, else sorted), and the
timestamp must lie within `recvWindow` before and `forward_tolerance_ms` after the server's wall
clock (100421). Parameters may come in the query string, a form body or a JSON object body (API.md
1.2; `timestamp` and `signature` inside it, booleans and numbers as the venue writes them); the query
wins over the body.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from domain.fills import Side
from exchange.bingx.signing import verify
from exchange.sim.account import AccountError, OrderType, SimAccount, SimOrder, TimeInForce
from exchange.sim.crash_window import CrashWindow
from exchange.sim.envelope import error, ok, ok_without_data

OrderOutcome = Literal["504", "timeout", "reset"]


@dataclass
class TradingFaults:
    """The ambiguous outcomes and refusals a test arms for the next orders (`POST /sim/faults` too)."""

    lose_next_order_response: bool = False
    """Book the next order, then answer HTTP 504 (the outcome is unknown to the client)."""
    next_order_outcomes: deque[OrderOutcome] = field(default_factory=deque)
    """Each next order is booked, then its answer is lost: `504` (Gateway Timeout), `timeout` (no answer
    for `hang_sec`, longer than any client waits) or `reset` (the connection cut)."""
    hang_sec: float = 120.0
    rest_lag_ms: int = 0
    """Order reads (query, open orders, history) show each order as it was this long ago, while the user
    stream reports at once: a fill that arrives only on the stream, for that long."""
    reject_next_orders: deque[int] = field(default_factory=deque)
    """Each next order is refused with this business code, and not booked (the error families of API.md
    2.4: 101204 margin, 101400 minimum, 100410 rate limit, 80012 busy, 101415 suspended, ...)."""
    refuse_next_cancels: deque[int] = field(default_factory=deque)
    """Each next cancel refused with that code (109201, say), the order left as it is."""
    window: CrashWindow = field(default_factory=CrashWindow)
    """The crash window armed, or caught and frozen (`exchange.sim.crash_window`)."""


class TradingRoutes:
    def __init__(
        self,
        account: SimAccount,
        api_keys: Mapping[str, str],
        last_price: Callable[[str], Decimal | None],
        *,
        forward_tolerance_ms: int = 1000,
        max_recv_window_ms: int = 60_000,
    ) -> None:
        self.account = account
        self.api_keys = dict(api_keys)
        self.last_price = last_price
        self.forward_tolerance_ms = forward_tolerance_ms
        self.max_recv_window_ms = max_recv_window_ms
        self.faults = TradingFaults()
        self.orders_posted: Counter[str] = Counter()
        """Order submissions by client order id, counted as they arrive (one whose answer hangs too; not
        one a `before_submit` crash window keeps from the venue)."""

    def register(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/openApi/swap/v2/trade/order", self._signed(self._place))
        router.add_get("/openApi/swap/v2/trade/order", self._signed(self._query))
        router.add_delete("/openApi/swap/v2/trade/order", self._signed(self._cancel))
        router.add_get("/openApi/swap/v2/trade/openOrders", self._signed(self._open_orders))
        router.add_get("/openApi/swap/v2/trade/allOrders", self._signed(self._all_orders))
        router.add_get("/openApi/swap/v2/user/positions", self._signed(self._positions))
        router.add_get("/openApi/swap/v3/user/balance", self._signed(self._balance))
        router.add_post("/openApi/swap/v2/trade/closeAllPositions", self._signed(self._close_all))
        router.add_get("/openApi/swap/v2/trade/leverage", self._signed(self._leverage))
        router.add_post("/openApi/swap/v2/trade/leverage", self._signed(self._set_leverage))
        router.add_get("/openApi/swap/v2/trade/marginType", self._signed(self._margin_type))
        router.add_post("/openApi/swap/v2/trade/marginType", self._signed(self._set_margin_type))
        router.add_get("/openApi/swap/v1/positionSide/dual", self._signed(self._position_mode))
        router.add_post("/openApi/swap/v1/positionSide/dual", self._signed(self._set_position_mode))

    # ---------------------------------------------------------------- authentication

    def _signed(self, handler: Callable[[dict[str, str]], web.Response]) -> Callable[[web.Request], Any]:
        async def wrapped(request: web.Request) -> web.Response:
            pairs = parse_qsl(request.query_string, keep_blank_values=True)
            if request.can_read_body:
                body = await request.text()
                query_keys = {key for key, _ in pairs}
                try:
                    received = _body_pairs(body, request.content_type)
                except ValueError as bad:
                    return error(109400, f"invalid body: {bad}")
                pairs += [(k, v) for k, v in received if k not in query_keys]
            params = dict(pairs)
            window = self.faults.window
            if window.frozen:  # caught while this request's body was read: it is held as every later one
                return await window.hold()
            refusal = self._authenticate(request.headers.get("X-BX-APIKEY"), pairs, params)
            if refusal is not None:
                return refusal
            caught = window.catches_order(params) if handler == self._place else None
            if caught == "before_submit":
                return await window.hold()
            if handler == self._place and (cid := params.get("clientOrderId", params.get("clientOrderID"))):
                self.orders_posted[cid] += 1
            try:
                if handler == self._cancel and self._replacing_a_stop(params):
                    return await window.hold()
                response = handler(params)
                if caught == "before_answer":
                    return await window.hold_answer(response)
                if handler == self._place and self.faults.next_order_outcomes:  # booked: lose its answer
                    return await self._lose(request, response, self.faults.next_order_outcomes.popleft())
                return response
            except AccountError as refused:
                if caught is not None:  # refused, so not booked: not the instant; the next order is caught
                    window.rearm(caught)
                return error(refused.code, str(refused))
            except (KeyError, InvalidOperation, ValueError) as bad:
                return error(109400, f"invalid parameter: {bad}")

        return wrapped

    def _authenticate(
        self, api_key: str | None, pairs: list[tuple[str, str]], params: dict[str, str]
    ) -> web.Response | None:
        if not api_key or api_key not in self.api_keys:
            return error(100413, "incorrect apiKey")
        signature = params.get("signature")
        if not signature:
            return error(100412, "signature is missing")
        if not verify([p for p in pairs if p[0] != "signature"], self.api_keys[api_key], signature):
            return error(100001, "signature verification failed")
        try:
            timestamp = int(params["timestamp"])
            recv_window = min(int(params.get("recvWindow", "5000")), self.max_recv_window_ms)
        except (KeyError, ValueError):
            return error(100421, "Null timestamp or timestamp mismatch")
        now = time.time_ns() // 1_000_000
        if timestamp < now - recv_window or timestamp > now + self.forward_tolerance_ms:
            return error(100421, "Null timestamp or timestamp mismatch")
        return None

    async def _lose(self, request: web.Request, booked: web.Response, outcome: OrderOutcome) -> web.Response:
        """The order is booked (and on the user stream); only its answer is lost."""
        if outcome == "504":
            return web.Response(status=504, text="Gateway Timeout")
        if outcome == "timeout":
            await asyncio.sleep(self.faults.hang_sec)
            return booked  # long after the client gave up
        if request.transport is not None:
            request.transport.abort()  # reset: the connection is cut before any answer
        return booked

    def _replacing_a_stop(self, params: dict[str, str]) -> bool:
        """Whether the crash window catches this cancel: of a stop while another of its type is open."""
        if self.faults.window.armed != "stop_replacement":
            return False
        order = self._find(params)
        others = [o for o in self.account.open_orders(order.symbol) if o.type == order.type and o is not order]
        return self.faults.window.catches_cancel(order.symbol, order.type, order.order_id, len(others))

    def _read(self, order: SimOrder) -> SimOrder:
        return order.as_of(_now() - self.faults.rest_lag_ms) if self.faults.rest_lag_ms else order

    def external_order(self, symbol: str, side: Side, quantity: Decimal) -> SimOrder:
        """A market order placed on the account from outside (the app, another bot): no client order id."""
        last = self.last_price(symbol)
        if last is None:
            raise AccountError(109425, f"symbol {symbol} does not exist")
        return self.account.place(symbol, side, "MARKET", quantity, None, "", False, last, _now())

    # ---------------------------------------------------------------- endpoints

    def _place(self, params: dict[str, str]) -> web.Response:
        """Book an order; every refusal raises (`AccountError`), so an answer from here is a booking."""
        if self.faults.reject_next_orders:
            code = self.faults.reject_next_orders.popleft()
            raise AccountError(code, f"refused ({code}, a fault the simulator was asked for)")
        symbol = params["symbol"]
        side = _SIDES.get(params["side"].upper())
        order_type = _TYPES.get(params["type"].upper())
        if side is None or order_type is None:
            raise AccountError(
                109400, "side must be BUY/SELL and type MARKET, LIMIT, STOP_MARKET or TAKE_PROFIT_MARKET"
            )
        if params.get("positionSide", "LONG").upper() != "BOTH":
            # An omitted positionSide means LONG, which one-way mode refuses (API.md 6.1).
            raise AccountError(109400, "positionSide must be BOTH in one-way mode")
        last = self.last_price(symbol)
        if last is None:
            raise AccountError(109425, f"symbol {symbol} does not exist")
        client_id = params.get("clientOrderId", params.get("clientOrderID", ""))
        time_in_force = _time_in_force(params.get("timeInForce", "GTC"))
        price = Decimal(params["price"]) if "price" in params else None
        close_position = params.get("closePosition", "false").lower() == "true"
        order = self.account.place(
            symbol,
            side,
            order_type,
            Decimal(params["quantity"]) if "quantity" in params or not close_position else Decimal(0),
            price,
            client_id,
            params.get("reduceOnly", "false").lower() == "true",
            last,
            _now(),
            stop_price=Decimal(params["stopPrice"]) if "stopPrice" in params else None,
            close_position=close_position,
            time_in_force=time_in_force,
        )
        if self.faults.lose_next_order_response:
            self.faults.lose_next_order_response = False
            return web.Response(status=504, text="Gateway Timeout")
        echo = {
            "symbol": symbol,
            "orderId": order.order_id,
            "side": side,
            "positionSide": "BOTH",
            "type": order_type,
            "clientOrderID": order.client_order_id,
            "workingType": "MARK_PRICE",
            "quantity": str(order.quantity),
            "price": str(order.price or 0),
            "stopPrice": str(order.stop_price or 0),
            "timeInForce": order.time_in_force,
            "closePosition": "true" if order.close_position else "false",
            "reduceOnly": order.reduce_only,
            "status": order.status,
            "avgPrice": str(order.avg_price),
            "executedQty": str(order.executed),
        }
        return ok({"order": echo})

    def _query(self, params: dict[str, str]) -> web.Response:
        return ok({"order": _order_json(self._read(self._find(params)))})

    def _cancel(self, params: dict[str, str]) -> web.Response:
        if self.faults.refuse_next_cancels:
            code = self.faults.refuse_next_cancels.popleft()
            raise AccountError(code, f"cancel refused ({code}, a fault the simulator was asked for)")
        return ok({"order": _order_json(self.account.cancel(self._find(params), _now()))})

    def _open_orders(self, params: dict[str, str]) -> web.Response:
        orders = [self._read(o) for o in self.account.orders.values() if params.get("symbol", o.symbol) == o.symbol]
        return ok({"orders": [_order_json(o) for o in orders if o.status in ("NEW", "PARTIALLY_FILLED")]})

    def _all_orders(self, params: dict[str, str]) -> web.Response:
        """Order history (API.md 6.4): one symbol's orders of any status placed within a window of at most
        7 days (by default the last 7), from `orderId` on, oldest first, at most `limit` (500; 1,000)."""
        symbol = params["symbol"]
        self.account.require_symbol(symbol)
        limit = int(params.get("limit", "500"))
        if not 1 <= limit <= 1000:
            return error(109400, "limit must be between 1 and 1000")
        end = int(params["endTime"]) if "endTime" in params else _now()
        start = int(params["startTime"]) if "startTime" in params else end - WEEK_MS
        if end - start > WEEK_MS:
            return error(80014, "the time window is more than seven days")
        first_id = int(params.get("orderId", "0"))
        orders = sorted(
            (o for o in self.account.orders.values() if o.symbol == symbol and start <= o.time_ms <= end),
            key=lambda o: o.order_id,
        )
        return ok({"orders": [_order_json(self._read(o)) for o in orders if o.order_id >= first_id][:limit]})

    def _positions(self, params: dict[str, str]) -> web.Response:
        rows = []
        for symbol, position in sorted(self.account.positions.items()):
            if position.quantity == 0 or params.get("symbol", symbol) != symbol:
                continue
            mark = self.last_price(symbol) or position.entry_price
            rows.append(
                {
                    "positionId": str(zlib.crc32(symbol.encode())),
                    "symbol": symbol,
                    "currency": "USDT",
                    "positionSide": "LONG" if position.quantity > 0 else "SHORT",
                    "isolated": self.account.margin_type_of(symbol) != "CROSSED",
                    "positionAmt": str(abs(position.quantity)),
                    "availableAmt": str(abs(position.quantity)),
                    "avgPrice": str(position.entry_price),
                    "leverage": self.account.leverage_of(symbol),
                    "unrealizedProfit": str(self.account.unrealised(symbol, mark)),
                    "realisedProfit": str(position.realised),
                    "markPrice": str(mark),
                    "liquidationPrice": 0.0,
                    "updateTime": _now(),
                }
            )
        return ok(rows)

    def _balance(self, _params: dict[str, str]) -> web.Response:
        unrealised = sum(
            (self.account.unrealised(s, self.last_price(s) or Decimal(0)) for s in self.account.positions), Decimal(0)
        )
        balance = self.account.balance
        return ok(
            [
                {
                    "userId": "1",
                    "asset": "USDT",
                    "balance": str(balance),
                    "equity": str(balance + unrealised),
                    "unrealizedProfit": str(unrealised),
                    "realisedProfit": "0",
                    "availableMargin": str(balance),
                    "usedMargin": "0",
                    "freezedMargin": "0",
                    "shortUid": "1",
                }
            ]
        )

    def _close_all(self, params: dict[str, str]) -> web.Response:
        prices = {s: self.last_price(s) or Decimal(0) for s in self.account.positions}
        closed = self.account.close_all(params.get("symbol"), prices, _now())
        return ok({"success": closed, "failed": None})

    def _leverage(self, params: dict[str, str]) -> web.Response:
        symbol = params["symbol"]
        self.account.require_symbol(symbol)
        leverage = self.account.leverage_of(symbol)
        ceiling = self.account.max_leverage.get(symbol, 125)
        available = self.account.balance * leverage
        return ok(
            {
                "longLeverage": leverage,
                "shortLeverage": leverage,
                "maxLongLeverage": ceiling,
                "maxShortLeverage": ceiling,
                "availableLongVol": "0",
                "availableShortVol": "0",
                "availableLongVal": str(available),
                "availableShortVal": str(available),
                "maxPositionLongVal": str(available),
                "maxPositionShortVal": str(available),
            }
        )

    def _set_leverage(self, params: dict[str, str]) -> web.Response:
        symbol = params["symbol"]
        leverage = self.account.set_leverage(symbol, params["side"].upper(), int(params["leverage"]))
        available = str(self.account.balance * leverage)
        return ok(
            {"leverage": leverage, "symbol": symbol, "availableLongVal": available, "availableShortVal": available}
        )

    def _margin_type(self, params: dict[str, str]) -> web.Response:
        symbol = params["symbol"]
        self.account.require_symbol(symbol)
        return ok({"marginType": self.account.margin_type_of(symbol)})

    def _set_margin_type(self, params: dict[str, str]) -> web.Response:
        self.account.set_margin_type(params["symbol"], params["marginType"].upper())
        return ok_without_data()

    def _position_mode(self, _params: dict[str, str]) -> web.Response:
        return ok({"dualSidePosition": "false"})

    def _set_position_mode(self, params: dict[str, str]) -> web.Response:
        value = params["dualSidePosition"].lower()
        if value not in ("true", "false"):
            return error(109400, "dualSidePosition must be true or false")
        self.account.set_dual_side(value == "true")
        return ok({"dualSidePosition": "false"})

    def _find(self, params: dict[str, str]) -> SimOrder:
        order_id = int(params["orderId"]) if "orderId" in params else None
        client_id = params.get("clientOrderId", params.get("clientOrderID"))
        return self.account.find(order_id, client_id)


def _body_pairs(body: str, content_type: str) -> list[tuple[str, str]]:
    """A form body's pairs, or a JSON object's (values as text: `true`/`false`, numbers as written)."""
    if content_type != "application/json":
        return parse_qsl(body, keep_blank_values=True)
    if not body.strip():
        return []
    try:
        document = json.loads(body, parse_float=str, parse_int=str)
    except (ValueError, RecursionError) as bad:
        raise ValueError("not JSON") from bad
    if not isinstance(document, dict):
        raise ValueError("a JSON body must be an object")
    return [(str(key), _json_text(value)) for key, value in document.items()]


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


WEEK_MS = 7 * 86_400_000
_SIDES: dict[str, Side] = {"BUY": "BUY", "SELL": "SELL"}
_TYPES: dict[str, OrderType] = {
    "MARKET": "MARKET",
    "LIMIT": "LIMIT",
    "STOP_MARKET": "STOP_MARKET",
    "TAKE_PROFIT_MARKET": "TAKE_PROFIT_MARKET",
}


def _time_in_force(value: str) -> TimeInForce:
    """API.md 6.2's `timeInForce`, exact casing: GTC and PostOnly are honoured; IOC and FOK are the
    venue's but not simulated, so they are refused rather than treated as GTC."""
    if value in ("GTC", "PostOnly"):
        return "PostOnly" if value == "PostOnly" else "GTC"
    if value in ("IOC", "FOK"):
        raise AccountError(109400, f"timeInForce {value} is not simulated: use GTC or PostOnly")
    raise AccountError(109400, f"timeInForce must be GTC, IOC, FOK or PostOnly (exact casing), not {value!r}")


def _order_json(order: SimOrder) -> dict[str, Any]:
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "side": order.side,
        "positionSide": "BOTH",
        "type": order.type,
        "origQty": str(order.quantity),
        "price": str(order.price or 0),
        "executedQty": str(order.executed),
        "avgPrice": str(order.avg_price),
        "cumQuote": str(order.cum_quote),
        "stopPrice": "" if order.stop_price is None else str(order.stop_price),
        "profit": "0",
        "commission": str(order.commission),
        "status": order.status,
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "clientOrderId": order.client_order_id,
        "leverage": "",
        "workingType": "MARK_PRICE",
        "reduceOnly": order.reduce_only,
    }


def _now() -> int:
    return time.time_ns() // 1_000_000
