"""The simulator's websocket market stream (path `/swap-market`), following API.md section 5.

Every server frame is binary gzip (heartbeats too); the server sends `Ping` every few seconds and drops
a client that does not answer `Pong`. Subscriptions are acknowledged by id; at most 200 topics per
connection (80403 beyond). Kline pushes carry `T` = open time and no close flag, one per simulated
second per topic, from the replay clock that `MarketLoop` advances.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import WSMsgType, web

from domain.market import INTERVALS
from exchange.sim.replay import ReplayClock, ReplaySeries

if TYPE_CHECKING:
    from exchange.sim.user_stream import UserStreams

MAX_TOPICS = 200
MAX_SUBSCRIBES_PER_SEC = 10
_KLINE_TOPIC = re.compile(r"^(?P<symbol>[A-Z0-9]+-[A-Z0-9]+)@kline_(?P<interval>\w+)$")

Pace = Literal["manual", "fast"] | float
"""`manual`: tests call `step`; `fast`: as fast as the clients read; a number: times real time."""


@dataclass
class StreamFaults:
    stalled: bool = False
    """No frames at all (no pushes, no pings) while set; connections stay open."""
    answer_pongs_required: bool = True


@dataclass
class _Connection:
    socket: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)
    last_pong: float = field(default_factory=time.monotonic)
    subscribe_times: list[float] = field(default_factory=list)
    listen_key: str | None = None
    """A user-data stream's key (`?listenKey=`): the account's events come here, in order."""
    events: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)


class MarketStream:
    """Websocket connections, their topics, heartbeats and pushes."""

    def __init__(
        self,
        series: Mapping[tuple[str, str], ReplaySeries],
        clock: ReplayClock,
        *,
        ping_interval_sec: float = 5.0,
        pong_timeout_sec: float = 15.0,
        subscribes_per_sec: int = MAX_SUBSCRIBES_PER_SEC,
    ) -> None:
        self.series = series
        self.subscribes_per_sec = subscribes_per_sec
        self.clock = clock
        self.ping_interval_sec = ping_interval_sec
        self.pong_timeout_sec = pong_timeout_sec
        self.faults = StreamFaults()
        self.connections: list[_Connection] = []
        self.frames_sent = 0
        self.connections_accepted = 0
        self.subscribe_log: list[str] = []
        self.user_streams: UserStreams | None = None
        """Set by the simulator: what a `?listenKey=` connection is checked against and fed from."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        listen_key = request.query.get("listenKey")
        if listen_key is not None and (self.user_streams is None or not self.user_streams.valid(listen_key)):
            return web.Response(status=404, text="listenKey does not exist")
        socket = web.WebSocketResponse(autoping=False)
        await socket.prepare(request)
        connection = _Connection(socket, listen_key=listen_key)
        self.connections.append(connection)
        self.connections_accepted += 1
        heartbeat = asyncio.create_task(self._heartbeat(connection))
        sender = None
        if listen_key is not None and self.user_streams is not None:
            sender = asyncio.create_task(self._send_events(connection))
            self.user_streams.listeners.append(listener := _enqueue(connection))
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(connection, message.data)
                elif message.type == WSMsgType.PING:  # RFC 6455: a ping is answered, whatever the app does
                    await socket.pong(message.data)
                elif message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            for task in (heartbeat, sender):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if sender is not None and self.user_streams is not None:
                self.user_streams.listeners.remove(listener)
            self.connections.remove(connection)
        return socket

    async def drop_user_streams(self) -> None:
        """Fault: the venue closes every user-data stream connection (its listenKeys stay valid)."""
        for connection in list(self.connections):
            if connection.listen_key is not None:
                await connection.socket.close(code=1012, message=b"service restart")

    async def _send_events(self, connection: _Connection) -> None:
        while not connection.socket.closed:
            frame = await connection.events.get()
            if not self.faults.stalled:
                await self._send(connection, frame)

    async def push(self) -> None:
        """Send every subscribed topic's current candle view to its subscribers."""
        if self.faults.stalled:
            return
        now = self.clock.now_ms()
        frames: dict[str, bytes] = {}
        for connection in list(self.connections):
            for topic in sorted(connection.topics):
                frame = frames.get(topic)
                if frame is None:
                    frame = self._kline_frame(topic, now) or b""
                    frames[topic] = frame
                if frame:
                    await self._send(connection, frame)

    async def inject(self, frame: bytes | str) -> None:
        """Fault: send an arbitrary frame (malformed, non-gzip, ...) to every connection."""
        for connection in list(self.connections):
            if isinstance(frame, str):
                await connection.socket.send_str(frame)
            else:
                await self._send(connection, frame)

    async def drop_all(self) -> None:
        """Fault: the venue closes every connection (a deploy, in real life)."""
        for connection in list(self.connections):
            await connection.socket.close(code=1012, message=b"service restart")

    async def close(self) -> None:
        for connection in list(self.connections):
            await connection.socket.close(code=1001, message=b"server shutdown")

    # ---------------------------------------------------------------- internals

    async def _on_text(self, connection: _Connection, text: str) -> None:
        if text == "Pong":
            connection.last_pong = time.monotonic()
            return
        try:
            request = json.loads(text)
        except ValueError:
            await self._send(connection, _gzip({"code": 100400, "msg": "invalid request", "timestamp": _wall_ms()}))
            return
        if not isinstance(request, dict):
            await self._send(connection, _gzip({"code": 100400, "msg": "invalid request", "timestamp": _wall_ms()}))
            return
        request_id = request.get("id", "")
        request_type = request.get("reqType", "sub")  # old examples omit it; treat as sub
        topic = request.get("dataType")
        now = time.monotonic()
        connection.subscribe_times = [t for t in connection.subscribe_times if now - t < 1.0] + [now]
        if len(connection.subscribe_times) > self.subscribes_per_sec:
            await self._send(connection, _ack(request_id, 100410, "too many subscribe requests"))
            return
        if not isinstance(topic, str) or not self._known_topic(topic):
            await self._send(connection, _ack(request_id, 100400, f"invalid dataType {topic!r}"))
            return
        if request_type == "unsub":
            connection.topics.discard(topic)
            await self._send(connection, _ack(request_id, 0, ""))
            return
        if request_type != "sub":
            await self._send(connection, _ack(request_id, 100400, f"invalid reqType {request_type!r}"))
            return
        if topic not in connection.topics and len(connection.topics) >= MAX_TOPICS:
            await self._send(connection, _ack(request_id, 80403, "more than 200 topics on one connection"))
            return
        connection.topics.add(topic)
        self.subscribe_log.append(topic)
        await self._send(connection, _ack(request_id, 0, ""))

    def _known_topic(self, topic: str) -> bool:
        match = _KLINE_TOPIC.match(topic)
        return bool(match and match["interval"] in INTERVALS)

    def _kline_frame(self, topic: str, now_ms: int) -> bytes | None:
        match = _KLINE_TOPIC.match(topic)
        assert match is not None
        series = self.series.get((match["symbol"], match["interval"]))
        if series is None:
            return None
        _, stop = series.visible_range(now_ms)
        if stop == 0:
            return None
        view = series.view(stop - 1, now_ms)
        if view is None or (view.final and now_ms >= view.open_time_ms + series.step_ms):
            return None  # past the end of the file: the stream goes quiet
        data = {
            "c": view.close,
            "o": view.open,
            "h": view.high,
            "l": view.low,
            "v": view.volume,
            "T": view.open_time_ms,
        }
        return _gzip({"code": 0, "dataType": topic, "s": match["symbol"], "data": [data]})

    async def _heartbeat(self, connection: _Connection) -> None:
        ping = gzip.compress(b"Ping")
        while not connection.socket.closed:
            await asyncio.sleep(self.ping_interval_sec)
            if self.faults.stalled:
                continue
            if self.faults.answer_pongs_required and time.monotonic() - connection.last_pong > self.pong_timeout_sec:
                await connection.socket.close(code=1008, message=b"no pong")
                return
            key = connection.listen_key
            if key is not None and (self.user_streams is None or not self.user_streams.valid(key)):
                await self._send(connection, _gzip({"e": "listenKeyExpired", "E": _wall_ms(), "listenKey": key}))
                await connection.socket.close(code=1000, message=b"listenKey expired")
                return
            await self._send(connection, ping)

    async def _send(self, connection: _Connection, frame: bytes) -> None:
        if connection.socket.closed:
            return
        try:
            await connection.socket.send_bytes(frame)
            self.frames_sent += 1
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away mid-send; its handler cleans up


class MarketLoop:
    """Advance simulated time one second per step and push, at the chosen pace."""

    def __init__(
        self,
        stream: MarketStream,
        clock: ReplayClock,
        pace: Pace = "manual",
        end_ms: int | None = None,
        on_tick: Callable[[], None] | None = None,
    ):
        if not clock.manual:
            raise ValueError("the market loop drives the replay clock; give it a manual clock")
        self.on_tick = on_tick
        self.stream = stream
        self.clock = clock
        self.pace = pace
        self.end_ms = end_ms
        self._task: asyncio.Task[None] | None = None

    async def step(self, seconds: int = 1) -> None:
        for _ in range(seconds):
            self.clock.advance(1000)
            if self.on_tick is not None:
                self.on_tick()
            await self.stream.push()

    def start(self) -> None:
        if self.pace != "manual" and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def finished(self) -> bool:
        return self.end_ms is not None and self.clock.now_ms() >= self.end_ms

    async def _run(self) -> None:
        while not self.finished:
            await self.step()
            if self.pace == "fast":
                await asyncio.sleep(0)  # sends already waited for the clients to drain
            else:
                await asyncio.sleep(1.0 / float(self.pace))


def _enqueue(connection: _Connection) -> Callable[[dict[str, Any]], None]:
    def put(event: dict[str, Any]) -> None:
        connection.events.put_nowait(_gzip(event))

    return put


def _ack(request_id: Any, code: int, message: str) -> bytes:
    return _gzip({"id": request_id, "code": code, "msg": message})


def _gzip(document: Mapping[str, Any]) -> bytes:
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode())


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
