"""The simulator's user-data stream (API.md 5.5): listenKeys over REST, account events on the websocket.

- `POST /openApi/user/auth/userDataStream` (header `X-BX-APIKEY` of a known key) answers
  `{"listenKey": "..."}`, valid `ttl_sec` (60 min) from its creation or its last `PUT ...?listenKey=`;
  `DELETE` ends it. A key that expired, or was deleted, is unknown to both (100400).
- A websocket on the market path with `?listenKey=` gets the account's events, gzip like every frame,
  with the same heartbeat: `ORDER_TRADE_UPDATE` on every order change (`x` NEW, TRADE, CANCELED; `X` the
  status, spelled `CANCELED` here as on the venue's stream) and `ACCOUNT_UPDATE` after every fill (`m`
  ORDER; the USDT balance and the symbol's position, `pa` signed in one-way mode) and every funding paid
  (`m` FUNDING_FEE). When its key expires the
  connection gets `{"e": "listenKeyExpired"}` and is closed.

The account is one for every API key, so every open listenKey gets every event. What the venue answers to
an extend or a delete is not in the spec: here `{}` with HTTP 200.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from domain.fills import Fill, Position
from exchange.sim.account import SimAccount, SimOrder
from exchange.sim.envelope import error

LISTEN_KEY_TTL_SEC = 3600.0


@dataclass
class UserStreams:
    api_keys: dict[str, str]
    account: SimAccount
    last_price: Callable[[str], Decimal | None]
    ttl_sec: float = LISTEN_KEY_TTL_SEC
    expires: dict[str, float] = field(default_factory=dict)
    """listenKey -> when it expires (time.monotonic())."""
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    """Where events go: the stream's connections subscribe (`MarketStream`)."""
    muted: Callable[[], bool] = lambda: False
    """While true, events are dropped: a crash window froze the venue (the daemon is as good as dead)."""

    def __post_init__(self) -> None:
        self.account.on_change = self._order_changed

    def register(self, app: web.Application) -> None:
        path = "/openApi/user/auth/userDataStream"
        app.router.add_post(path, self._create)
        app.router.add_put(path, self._extend)
        app.router.add_delete(path, self._delete)

    def valid(self, listen_key: str) -> bool:
        expires = self.expires.get(listen_key)
        if expires is None:
            return False
        if time.monotonic() >= expires:
            del self.expires[listen_key]
            return False
        return True

    def expire_all(self) -> None:
        """Fault: every listenKey expires now (its connections are told at their next heartbeat)."""
        for key in self.expires:
            self.expires[key] = 0.0

    # ---------------------------------------------------------------- REST

    async def _create(self, request: web.Request) -> web.Response:
        if request.headers.get("X-BX-APIKEY") not in self.api_keys:
            return error(100413, "incorrect apiKey")
        key = secrets.token_hex(32)
        self.expires[key] = time.monotonic() + self.ttl_sec
        return web.json_response({"listenKey": key})

    async def _extend(self, request: web.Request) -> web.Response:
        key = request.query.get("listenKey", "")
        if not self.valid(key):
            return error(100400, "listenKey does not exist")
        self.expires[key] = time.monotonic() + self.ttl_sec
        return web.json_response({})

    async def _delete(self, request: web.Request) -> web.Response:
        key = request.query.get("listenKey", "")
        if not self.valid(key):
            return error(100400, "listenKey does not exist")
        del self.expires[key]
        return web.json_response({})

    # ---------------------------------------------------------------- events

    def _order_changed(self, order: SimOrder, execution: str, fill: Fill | None) -> None:
        now = _wall_ms()
        self._publish({"e": "ORDER_TRADE_UPDATE", "E": now, "o": order_event(order, execution, fill, now)})
        if fill is not None:
            self._publish({"e": "ACCOUNT_UPDATE", "E": now, "a": self._account_event(order.symbol)})

    def funding_fee(self, symbol: str) -> None:
        """The account paid (or received) funding on its `symbol` position: its balances and position."""
        self._publish({"e": "ACCOUNT_UPDATE", "E": _wall_ms(), "a": self._account_event(symbol, "FUNDING_FEE")})

    def _account_event(self, symbol: str, reason: str = "ORDER") -> dict[str, Any]:
        position = self.account.positions.get(symbol, Position())
        mark = self.last_price(symbol) or position.entry_price
        balance = str(self.account.balance)
        margin = "isolated" if self.account.margin_type_of(symbol) != "CROSSED" else "cross"
        return {
            "m": reason,
            "B": [{"a": "USDT", "wb": balance, "cw": balance, "bc": "0"}],
            "P": [
                {
                    "s": symbol,
                    "pa": str(position.quantity),
                    "ep": str(position.entry_price),
                    "up": str(self.account.unrealised(symbol, mark)),
                    "mt": margin,
                    "iw": "0",
                    "ps": "BOTH",
                }
            ],
        }

    def _publish(self, event: dict[str, Any]) -> None:
        if self.muted():
            return
        for listener in list(self.listeners):
            listener(event)


def order_event(order: SimOrder, execution: str, fill: Fill | None, now_ms: int) -> dict[str, Any]:
    status = "CANCELED" if order.status == "CANCELLED" else order.status
    return {
        "s": order.symbol,
        "c": order.client_order_id,
        "i": order.order_id,
        "S": order.side,
        "o": order.type,
        "q": str(order.quantity),
        "p": str(order.price or 0),
        "sp": str(order.stop_price or 0),
        "ap": str(order.avg_price),
        "x": execution,
        "X": status,
        "N": "USDT",
        "n": str(-fill.fee if fill is not None else Decimal(0)),
        "T": now_ms,
        "wt": "MARK_PRICE",
        "ps": "BOTH",
        "rp": str(order.last_realised if fill is not None else Decimal(0)),
        "z": str(order.executed),
        "l": str(fill.quantity if fill is not None else Decimal(0)),
        "L": str(fill.price if fill is not None else Decimal(0)),
    }


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
