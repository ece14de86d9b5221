"""BingX's private user-data stream (API.md 5.5): the account's order and balance events.

`UserDataStream.events()` runs forever: it creates a listenKey over REST, connects to the websocket
with it, extends the key every `extend_every_sec` (the venue keeps one 60 minutes; its docs advise 30),
answers every `Ping`, and yields each `ORDER_TRADE_UPDATE` as an `OrderUpdate` and each
`ACCOUNT_UPDATE` as an `AccountUpdate`. When the connection ends (the venue closed it, the key
expired, an extend was refused, silence beyond `idle_timeout_sec`) it yields `UserStreamLost`, backs
off, and starts again with a new key, yielding `UserStreamConnected` once connected. The venue replays
nothing: between `UserStreamLost` and the next `UserStreamConnected` the caller reads the orders over
REST, and after it reads them once more for what the gap missed. A frame that does not parse is
counted and skipped (`stats.malformed`), never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from domain.errors import FatalVenueError, VenueError, WireFormatError
from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.bingx.wire import PING, PONG, decode_frame

log = logging.getLogger("tradingd.exchange.user_stream")
EXTEND_EVERY_SEC = 30 * 60.0


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One `ORDER_TRADE_UPDATE`: the order as it stands, with its newest fill."""

    symbol: str
    client_order_id: str
    order_id: int
    side: str
    order_type: str
    execution: str
    """`x`: NEW, TRADE, CANCELED, CALCULATED, EXPIRED."""
    status: str
    """`X`: NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED (the stream spells CANCELED)."""
    quantity: Decimal
    average_price: Decimal
    filled: Decimal
    """`z`: all that has filled."""
    last_quantity: Decimal
    last_price: Decimal
    last_fee: Decimal
    """What the newest fill cost (positive; the venue sends `n` negative)."""
    time_ms: int


@dataclass(frozen=True, slots=True)
class PositionChange:
    symbol: str
    quantity: Decimal
    """Signed in one-way mode."""
    entry_price: Decimal
    unrealised_pnl: Decimal


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """One `ACCOUNT_UPDATE`: why (`m`: ORDER, FUNDING_FEE, ...), balances by asset, positions."""

    reason: str
    balances: tuple[tuple[str, Decimal], ...]
    positions: tuple[PositionChange, ...]
    time_ms: int


@dataclass(frozen=True, slots=True)
class UserStreamConnected:
    connection: int
    last_heard_ms: int | None
    """Wall time of the previous connection's last frame (None on the first): read what came since."""


@dataclass(frozen=True, slots=True)
class UserStreamLost:
    reason: str


UserEvent = OrderUpdate | AccountUpdate | UserStreamConnected | UserStreamLost


@dataclass
class UserStreamStats:
    connections: int = 0
    frames: int = 0
    malformed: int = 0
    extended: int = 0
    ignored: int = 0
    """Events of kinds we do not use (ACCOUNT_CONFIG_UPDATE, ...)."""
    last_error: str = ""
    last_frame_ms: int | None = None
    """Wall time of the newest frame (heartbeats included) or handshake."""


class _Reconnect(Exception):
    """Internal: this connection or its key is done; start again with a new key."""


class UserDataStream:
    def __init__(
        self,
        rest: BingXRest,
        ws_url: str,
        *,
        extend_every_sec: float = EXTEND_EVERY_SEC,
        idle_timeout_sec: float = 25.0,
        backoff: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rest = rest
        self.ws_url = ws_url
        self.extend_every_sec = extend_every_sec
        self.idle_timeout_sec = idle_timeout_sec
        self.backoff = backoff or RetryPolicy(attempts=1_000_000, base_delay_sec=0.5, max_delay_sec=30.0)
        self._sleep = sleep
        self.stats = UserStreamStats()
        self._socket: ClientConnection | None = None
        self._listen_key: str | None = None
        self._closed = False

    def is_closed(self) -> bool:
        return self._closed

    def is_connected(self) -> bool:
        return self._socket is not None

    async def close(self) -> None:
        """Stop, and delete the key (best effort: it lapses by itself within the hour)."""
        self._closed = True
        if self._socket is not None:
            await self._socket.close()
        key, self._listen_key = self._listen_key, None
        if key is not None:
            with contextlib.suppress(VenueError, OSError):
                await self.rest.listen_key("DELETE", key)

    async def events(self) -> AsyncIterator[UserEvent]:
        failures = 0
        while not self.is_closed():
            lost: str | None = None
            last_heard = self.stats.last_frame_ms
            try:
                key = await self.rest.listen_key("POST")
                if key is None:
                    raise WireFormatError("the venue answered no listenKey")
                self._listen_key = key
                url = f"{self.ws_url}?listenKey={key}"
                async with connect(url, compression=None, max_size=2**22, open_timeout=10, ping_interval=None) as ws:
                    self._socket = ws
                    self.stats.last_frame_ms = _wall_ms()  # the handshake is the venue's word too
                    self.stats.connections += 1
                    failures = 0
                    keeper = asyncio.create_task(self._keep_alive(key))
                    try:
                        yield UserStreamConnected(self.stats.connections, last_heard)
                        async for event in self._receive(ws, keeper):
                            yield event
                    finally:
                        keeper.cancel()
                        with contextlib.suppress(asyncio.CancelledError, VenueError, OSError):
                            await keeper
            except FatalVenueError:
                raise  # a wrong key or permission: connecting again cannot help
            except InvalidURI as error:
                raise FatalVenueError(f"invalid websocket URL {self.ws_url}: {error}") from None
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, _Reconnect, VenueError) as error:
                lost = f"{type(error).__name__}: {error}"
            finally:
                self._socket = None
            if self.is_closed():
                return
            reason = lost or "the venue ended the stream"
            self.stats.last_error = reason
            log.warning("user stream lost: %s; reconnecting", reason)
            yield UserStreamLost(reason)
            await self._sleep(self.backoff.delay(failures))
            failures += 1

    async def _keep_alive(self, key: str) -> None:
        """Extend the key on its period; a refusal (the key is gone) ends the connection."""
        while True:
            await asyncio.sleep(self.extend_every_sec)
            await self.rest.listen_key("PUT", key)
            self.stats.extended += 1

    async def _receive(self, ws: ClientConnection, keeper: asyncio.Task[None]) -> AsyncIterator[UserEvent]:
        while True:
            if keeper.done():
                error = None if keeper.cancelled() else keeper.exception()
                raise _Reconnect(f"extending the listenKey failed: {error}")
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=self.idle_timeout_sec)
            except TimeoutError:
                raise _Reconnect(f"no frame for {self.idle_timeout_sec} s") from None
            self.stats.frames += 1
            self.stats.last_frame_ms = _wall_ms()
            try:
                text = decode_frame(frame)
            except WireFormatError as error:
                self._malformed(str(error))
                continue
            if text == PING:
                await ws.send(PONG)
                continue
            event = self._event(text)
            if event is not None:
                yield event

    def _event(self, text: str) -> UserEvent | None:
        try:
            message: Any = json.loads(text)
        except (ValueError, RecursionError):
            self._malformed(f"not JSON: {text[:80]!r}")
            return None
        if not isinstance(message, dict):
            self._malformed("not a JSON object")
            return None
        kind = message.get("e")
        if kind == "listenKeyExpired":
            raise _Reconnect("the listenKey expired")
        try:
            if kind == "ORDER_TRADE_UPDATE":
                return _order_update(message)
            if kind == "ACCOUNT_UPDATE":
                return _account_update(message)
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self._malformed(f"{kind}: {type(error).__name__}: {error}")
            return None
        self.stats.ignored += 1
        return None

    def _malformed(self, reason: str) -> None:
        self.stats.malformed += 1
        log.warning("malformed user stream frame ignored: %s", reason[:200])


def _order_update(message: dict[str, Any]) -> OrderUpdate:
    o = message["o"]
    if not isinstance(o, dict):
        raise TypeError("o is not an object")
    return OrderUpdate(
        symbol=_text(o["s"]),
        client_order_id=_text(o.get("c", "")),
        order_id=_integer(o["i"]),
        side=_text(o["S"]),
        order_type=_text(o["o"]),
        execution=_text(o["x"]),
        status=_text(o["X"]),
        quantity=_decimal(o["q"]),
        average_price=_decimal(o.get("ap", "0")),
        filled=_decimal(o["z"]),
        last_quantity=_decimal(o.get("l", "0")),
        last_price=_decimal(o.get("L", "0")),
        last_fee=-_decimal(o.get("n", "0")),
        time_ms=_integer(o.get("T", message.get("E", 0))),
    )


def _account_update(message: dict[str, Any]) -> AccountUpdate:
    a = message["a"]
    if not isinstance(a, dict):
        raise TypeError("a is not an object")
    balances = tuple((_text(b["a"]), _decimal(b["wb"])) for b in a.get("B") or [])
    positions = tuple(
        PositionChange(_text(p["s"]), _decimal(p["pa"]), _decimal(p["ep"]), _decimal(p.get("up", "0")))
        for p in a.get("P") or []
    )
    return AccountUpdate(_text(a.get("m", "")), balances, positions, _integer(message.get("E", 0)))


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    number = int(value)
    if not 0 <= number < 2**63:
        raise ValueError(f"{number} is out of range")
    return number


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite() or abs(number) >= Decimal("1e30"):
        raise ValueError(f"{value!r} is out of range")
    return number


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
