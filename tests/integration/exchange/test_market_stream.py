"""The websocket client against the simulator's stream: pushes, heartbeats, reconnects, refusals."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.client import connect

from exchange.bingx.rest import RetryPolicy
from exchange.bingx.ws import KlineUpdate, MarketDataStream, StreamConnected, StreamEvent, SubscriptionRefusedError
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator

MINUTE = 60_000
START = 1_700_000_040_000
TOPIC = "BTC-USDT@kline_1m"
FAST_BACKOFF = RetryPolicy(attempts=1000, base_delay_sec=0.01, max_delay_sec=0.05)


def rows(count: int) -> list[FileCandle]:
    return [
        FileCandle(START + i * MINUTE, f"{100 + i}.5", f"{102 + i}.25", f"{99 + i}.75", f"{101 + i}.0", "7.5")
        for i in range(count)
    ]


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows(5))], ReplayClock(START), ping_interval_sec=0.1, pong_timeout_sec=0.5
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


class Collector:
    def __init__(self, stream: MarketDataStream) -> None:
        self.stream = stream
        self.events: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self.stream.events():
                await self.events.put(event)
        except Exception as error:  # surfaced to the test
            self.error = error

    async def next(self, kind: type, timeout: float = 5.0) -> StreamEvent:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if isinstance(event, kind):
                    return event


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@asynccontextmanager
async def collecting(stream: MarketDataStream) -> AsyncIterator[Collector]:
    collector = Collector(stream)
    try:
        yield collector
    finally:
        await stream.close()
        collector.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector.task


async def test_pushes_follow_the_replay_and_end_exact(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, [TOPIC], backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        connected = await events.next(StreamConnected)
        assert connected == StreamConnected(1, None)
        await eventually(lambda: sim.stream.subscribe_log == [TOPIC])  # the venue pushes the topic to us now
        await sim.market.step(30)
        forming = await events.next(KlineUpdate)
        assert isinstance(forming, KlineUpdate)
        assert forming.batch.candles[0].open_time_ms == START
        await sim.market.step(29)  # the candle's last simulated second: exact file values
        last = None
        async with asyncio.timeout(5):
            while last is None or last.batch.candles[0].close != 101.0:
                event = await events.next(KlineUpdate)
                assert isinstance(event, KlineUpdate)
                last = event
        candle = last.batch.candles[0]
        assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (100.5, 102.25, 99.75, 101.0, 7.5)
        await sim.market.step(1)
        after = await events.next(KlineUpdate)
        assert isinstance(after, KlineUpdate)
        assert after.batch.candles[0].open_time_ms == START + MINUTE


async def test_pings_are_answered_and_the_connection_lives(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, [TOPIC], backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        # 12 Pings answered at the simulator's 0.1 s interval: more than twice its pong timeout (0.5 s)
        await eventually(lambda: stream.stats.pongs_sent >= 12, timeout=30)
        assert stream.stats.connections == 1


async def test_a_client_that_never_pongs_is_dropped(sim: BingXSimulator) -> None:
    async with connect(sim.ws_url) as socket:
        frames = []
        with pytest.raises(Exception, match=r"no pong|1008"):
            async with asyncio.timeout(5):
                while True:
                    frames.append(await socket.recv())
        assert all(isinstance(frame, bytes) and gzip.decompress(frame) == b"Ping" for frame in frames)


async def test_a_dropped_connection_is_reopened_and_resubscribed(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, [TOPIC], backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        for attempt in (2, 3):
            await eventually(lambda n=attempt: len(sim.stream.subscribe_log) == n - 1)
            await sim.stream.drop_all()
            reconnected = await events.next(StreamConnected)
            assert isinstance(reconnected, StreamConnected)
            assert reconnected.connection == attempt
            assert reconnected.last_heard_ms is not None
        await eventually(lambda: len(sim.stream.subscribe_log) >= 3)
        assert sim.stream.subscribe_log == [TOPIC, TOPIC, TOPIC], stream.stats
        await sim.market.step(5)
        assert isinstance(await events.next(KlineUpdate), KlineUpdate)


async def test_a_stalled_stream_is_abandoned_after_the_idle_timeout(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, [TOPIC], idle_timeout_sec=0.4, backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        sim.stream.faults.stalled = True
        sim.stream.faults.answer_pongs_required = False
        reconnected = await events.next(StreamConnected, timeout=5)
        assert isinstance(reconnected, StreamConnected)
        assert reconnected.connection == 2
        assert "no frame for 0.4 s" in stream.stats.last_error


async def test_an_unknown_topic_is_refused_without_reconnecting(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, ["BTC-USDT@kline_7m"], backoff=FAST_BACKOFF)
    with pytest.raises(SubscriptionRefusedError, match="100400"):
        async with asyncio.timeout(5):
            async for _ in stream.events():
                pass
    assert stream.stats.connections == 1


async def test_the_venue_refuses_a_201st_topic(sim: BingXSimulator) -> None:
    with pytest.raises(ValueError, match="at most 200 topics"):
        MarketDataStream(sim.ws_url, [f"P{i}-USDT@kline_1m" for i in range(201)])
    sim.stream.faults.answer_pongs_required = False  # this raw client answers no Ping while it sends
    sim.stream.subscribes_per_sec = 1000  # the topic cap is under test here, not the message rate
    async with connect(sim.ws_url) as socket:
        codes = []
        for i in range(201):
            await socket.send(json.dumps({"id": str(i), "reqType": "sub", "dataType": f"P{i}-USDT@kline_1m"}))
        async with asyncio.timeout(10):
            while len(codes) < 201:
                message = gzip.decompress(await socket.recv()).decode()
                if message != "Ping":
                    codes.append(json.loads(message)["code"])
        assert codes[:200] == [0] * 200
        assert codes[200] == 80403


async def test_malformed_frames_are_counted_and_skipped(sim: BingXSimulator) -> None:
    stream = MarketDataStream(sim.ws_url, [TOPIC], backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        await eventually(lambda: sim.stream.subscribe_log == [TOPIC])  # the venue has the connection and the topic
        await sim.stream.inject(b"\xff\xfenot gzip")
        await sim.stream.inject(gzip.compress(b"[1, 2, 3]"))
        await sim.stream.inject(gzip.compress(b"{not json"))
        bad_row = {"code": 0, "dataType": TOPIC, "s": "BTC-USDT", "data": [{"o": "1", "T": START}]}
        await sim.stream.inject(gzip.compress(json.dumps(bad_row).encode()))
        await sim.market.step(2)
        update = await events.next(KlineUpdate)
        assert isinstance(update, KlineUpdate)
        assert stream.stats.malformed == 3
        assert stream.stats.connections == 1
        assert any("malformed kline push" in reason for reason in stream.stats.recent_rejections)


async def test_frames_that_used_to_escape_as_exceptions_are_counted_and_skipped(sim: BingXSimulator) -> None:
    """The six frame kinds that once escaped the client (issue 16: one killed every pair's feed): gzip of
    invalid UTF-8, an unhashable id, an open time or a price beyond any number, deep nesting. A price of
    "1e400" parses as infinity and is left to the feature engine's integrity gate, as NaN is."""
    stream = MarketDataStream(sim.ws_url, [TOPIC], backoff=FAST_BACKOFF)

    def push(row: dict[str, object]) -> bytes:
        message = {"code": 0, "dataType": TOPIC, "s": "BTC-USDT", "data": [row]}
        return gzip.compress(json.dumps(message).encode())

    good = {"o": "1", "h": "2", "l": "0.5", "c": "1.5", "v": "3"}
    frames = [
        gzip.compress(b"\xff\xfe\xfd"),
        gzip.compress(json.dumps({"id": [1, 2], "code": 0}).encode()),
        gzip.compress(json.dumps({"id": {"a": 1}, "code": [100410]}).encode()),
        push({**good, "T": 10**30}),
        push({**good, "T": START, "c": 10**400}),
        push({**good, "T": START, "h": "1e400"}),
        push({**good, "T": "9" * 5000}),
        gzip.compress(b"[" * 100_000 + b"]" * 100_000),
    ]
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        await eventually(lambda: sim.stream.subscribe_log == [TOPIC])
        for frame in frames:
            await sim.stream.inject(frame)
        await sim.market.step(2)
        update = await events.next(KlineUpdate)
        assert isinstance(update, KlineUpdate)
        assert events.error is None
        assert stream.stats.connections == 1, "no frame made the client reconnect"
        assert stream.stats.malformed == 2, "the undecodable frame and the deep nesting (an ack of no request is moot)"
        reasons = list(stream.stats.recent_rejections)
        assert sum("out of range" in r for r in reasons) == 1, reasons
        assert sum("too large" in r for r in reasons) == 1, reasons  # "1e400" is inf: the integrity gate's
        assert sum("not an integer" in r for r in reasons) == 1, reasons


async def test_more_than_ten_subscribe_messages_a_second_are_refused(sim: BingXSimulator) -> None:
    async with connect(sim.ws_url) as socket:
        for i in range(11):
            await socket.send(json.dumps({"id": str(i), "reqType": "sub", "dataType": f"P{i}-USDT@kline_1m"}))
        codes = {}
        async with asyncio.timeout(5):
            while len(codes) < 11:
                message = gzip.decompress(await socket.recv()).decode()
                if message == "Ping":
                    await socket.send("Pong")
                    continue
                ack = json.loads(message)
                codes[ack["id"]] = ack["code"]
    assert [codes[str(i)] for i in range(10)] == [0] * 10
    assert codes["10"] == 100410


async def test_the_client_paces_its_subscriptions(sim: BingXSimulator) -> None:
    topics = [f"P{i}-USDT@kline_1m" for i in range(12)]
    stream = MarketDataStream(sim.ws_url, topics, backoff=FAST_BACKOFF)
    async with collecting(stream) as events:
        await events.next(StreamConnected)
        await eventually(lambda: len(sim.stream.subscribe_log) == 12)
        # Two Pings answered after the venue accepted the 12th subscription: sent after its ack on the same
        # connection, so the client has read and handled every ack by then.
        pongs = stream.stats.pongs_sent
        await eventually(lambda: stream.stats.pongs_sent >= pongs + 2)
        assert events.error is None
        assert stream.stats.connections == 1
