"""BingX swap market-data websocket client (API.md section 5).

`MarketDataStream.events()` yields kline updates forever: it answers every `Ping` with `Pong`,
subscribes (at most 200 topics per connection, at most 10 subscribe messages a second, each
acknowledged by id), treats silence longer than `idle_timeout_sec` as a dead connection, and reconnects
with exponential backoff and jitter, subscribing again. After each (re)connection it yields
`StreamConnected` with the time the previous connection last heard from the venue, so the feed can
fetch whatever the outage missed over REST: the venue replays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from domain.errors import FatalVenueError, WireFormatError
from domain.market import Interval, parse_interval
from exchange.bingx.rest import RetryPolicy, SlidingWindowLimiter
from exchange.bingx.wire import PING, PONG, RATE_LIMIT_CODES, KlineBatch, decode_frame, parse_kline_push

MAX_TOPICS_PER_CONNECTION = 200
MAX_CONNECTIONS = 60
"""Websocket connections per IP: API.md reads 60 or 240 from two sources; plan for 60."""
SUBSCRIBES_PER_SECOND = 10

log = logging.getLogger("tradingd.exchange.ws")


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    topic: str
    batch: KlineBatch
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class StreamConnected:
    connection: int
    """1 for the first connection, 2 after the first reconnect, ..."""
    last_heard_ms: int | None
    """Wall time of the last frame of the previous connection (None on the first)."""


StreamEvent = KlineUpdate | StreamConnected


class SubscriptionRefusedError(FatalVenueError):
    """The venue refused a topic (unknown, or too many): reconnecting will not help."""


@dataclass
class StreamStats:
    connections: int = 0
    frames: int = 0
    pongs_sent: int = 0
    malformed: int = 0
    last_error: str = ""
    recent_rejections: deque[str] = field(default_factory=lambda: deque(maxlen=100))
    """Reasons of the latest rejected kline rows (bounded: the stream runs for days)."""


class _Reconnect(Exception):
    """Internal: the current connection is unusable; back off and connect again."""


def kline_topic(pair: str, interval: Interval) -> str:
    return f"{pair}@kline_{interval}"


class MarketDataStream:
    def __init__(
        self,
        url: str,
        topics: Sequence[str],
        *,
        idle_timeout_sec: float = 25.0,
        ack_timeout_sec: float = 10.0,
        backoff: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not topics:
            raise ValueError("no topics to subscribe")
        if len(topics) > MAX_TOPICS_PER_CONNECTION:
            raise ValueError(f"at most {MAX_TOPICS_PER_CONNECTION} topics per connection; split them across streams")
        if len(set(topics)) != len(topics):
            raise ValueError("a topic is listed twice")
        self.url = url
        self.topics = list(topics)
        self.idle_timeout_sec = idle_timeout_sec
        self.ack_timeout_sec = ack_timeout_sec
        self.backoff = backoff or RetryPolicy(attempts=1_000_000, base_delay_sec=0.5, max_delay_sec=30.0)
        self._sleep = sleep
        self.stats = StreamStats()
        self._socket: ClientConnection | None = None
        self._closed = False

    def is_closed(self) -> bool:
        """Set by `close()`, possibly from another task while `events()` runs (a method, so that type
        checkers do not narrow it across awaits)."""
        return self._closed

    def is_connected(self) -> bool:
        return self._socket is not None

    async def close(self) -> None:
        self._closed = True
        if self._socket is not None:
            await self._socket.close()

    async def events(self) -> AsyncIterator[StreamEvent]:
        failures = 0
        last_heard: int | None = None
        while not self.is_closed():
            try:
                # The venue's own heartbeat (`Ping`/`Pong` text, and reconnecting after
                # `idle_timeout_sec` of silence) keeps the connection; protocol-level pings are off.
                async with connect(
                    self.url, compression=None, max_size=2**22, open_timeout=10, ping_interval=None
                ) as socket:
                    self._socket = socket
                    self.stats.connections += 1
                    failures = 0
                    pending: dict[str, tuple[str, float]] = {}
                    # Subscriptions are paced (10 a second), so they go out from their own task while
                    # this one keeps reading: Pings must be answered during a long subscribe too.
                    subscriber = asyncio.create_task(self._subscribe(socket, pending))
                    try:
                        yield StreamConnected(self.stats.connections, last_heard)
                        async for event in self._receive(socket, pending, subscriber):
                            last_heard = _wall_ms()
                            if event is not None:
                                yield event
                    finally:
                        subscriber.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                            await subscriber
            except SubscriptionRefusedError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, _Reconnect) as error:
                if self.is_closed():
                    return
                self.stats.last_error = f"{type(error).__name__}: {error}"
                log.warning("market stream lost: %s; reconnecting", self.stats.last_error)
            except InvalidURI as error:
                raise FatalVenueError(f"invalid websocket URL {self.url}: {error}") from None
            finally:
                self._socket = None
            if self.is_closed():
                return
            await self._sleep(self.backoff.delay(failures))
            failures += 1

    async def _subscribe(self, socket: ClientConnection, pending: dict[str, tuple[str, float]]) -> None:
        """Send one `sub` per topic, paced; record each id awaiting its ack, with a deadline."""
        # A 5% margin on the window absorbs scheduling jitter between our clock and the venue's.
        limiter = SlidingWindowLimiter(SUBSCRIBES_PER_SECOND, window_sec=1.05)
        for topic in self.topics:
            await limiter.acquire(self._sleep)
            request_id = str(uuid.uuid4())
            pending[request_id] = (topic, time.monotonic() + self.ack_timeout_sec)
            await socket.send(json.dumps({"id": request_id, "reqType": "sub", "dataType": topic}))

    async def _receive(
        self, socket: ClientConnection, pending: dict[str, tuple[str, float]], subscriber: asyncio.Task[None]
    ) -> AsyncIterator[KlineUpdate | None]:
        while True:
            if subscriber.done() and not subscriber.cancelled() and subscriber.exception() is not None:
                raise _Reconnect(f"subscribing failed: {subscriber.exception()}")
            timeout = self.idle_timeout_sec
            if pending:
                first_deadline = min(deadline for _, deadline in pending.values())
                timeout = min(timeout, max(0.0, first_deadline - time.monotonic()))
            try:
                frame = await asyncio.wait_for(socket.recv(), timeout=timeout)
            except TimeoutError:
                if pending and min(d for _, d in pending.values()) <= time.monotonic():
                    raise _Reconnect("subscription not acknowledged in time") from None
                raise _Reconnect(f"no frame for {self.idle_timeout_sec} s") from None
            self.stats.frames += 1
            try:
                text = decode_frame(frame)
            except WireFormatError as error:
                self._malformed(str(error))
                continue
            if text == PING:
                await socket.send(PONG)
                self.stats.pongs_sent += 1
                yield None  # a heartbeat still counts as hearing from the venue
                continue
            yield self._handle(text, pending)

    def _handle(self, text: str, pending: dict[str, tuple[str, float]]) -> KlineUpdate | None:
        try:
            message: Any = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than any real frame
            self._malformed(f"not JSON: {text[:80]!r}")
            return None
        if not isinstance(message, dict):
            self._malformed("not a JSON object")
            return None
        key = message.get("id")
        is_ack = key is not None and (
            (isinstance(key, str) and key in pending) or ("code" in message and "dataType" not in message)
        )
        if is_ack:
            self._ack(message, pending)
            return None
        data_type = message.get("dataType")
        if isinstance(data_type, str) and "@kline_" in data_type:
            try:
                interval = parse_interval(data_type.rsplit("@kline_", 1)[1])
            except ValueError:
                self._malformed(f"unknown interval in {data_type}")
                return None
            batch = parse_kline_push(message, interval)
            self.stats.recent_rejections.extend(row.reason for row in batch.rejected)
            return KlineUpdate(data_type, batch, _wall_ms())
        if message.get("code") not in (0, None):
            self._malformed(f"error frame: {message}")
        return None

    def _ack(self, message: dict[str, Any], pending: dict[str, tuple[str, float]]) -> None:
        entry = pending.pop(str(message.get("id")), None)
        code = message.get("code")
        if entry is not None and isinstance(code, int) and code in RATE_LIMIT_CODES:
            raise _Reconnect(f"subscription to {entry[0]} rate-limited ({code})")
        if entry is not None and code not in (0, "0"):
            raise SubscriptionRefusedError(
                f"subscription to {entry[0]} refused: {code} {message.get('msg')}",
                code=code if isinstance(code, int) else None,
            )

    def _malformed(self, reason: str) -> None:
        self.stats.malformed += 1
        log.warning("malformed market frame ignored: %s", reason)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
