"""Our user-data stream client against the simulator (issue 17): order and account events in order, the
key extended on its period, a new key and connection after the key expired or the venue dropped the
stream (each announced, so the caller reads what the gap missed), a wrong key refused for good, and
garbage frames counted and skipped."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import FatalVenueError
from exchange.bingx.rest import LISTEN_KEY_PATH, BingXRest, Credentials, RetryPolicy
from exchange.bingx.trading import BingXTrading
from exchange.bingx.user_stream import (
    AccountUpdate,
    OrderUpdate,
    UserDataStream,
    UserEvent,
    UserStreamConnected,
    UserStreamLost,
)
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator

KEY, SECRET = "stream-key-0001", "stream-secret-0001-abcdefghijklmnop"
T0 = 1_700_000_040_000
DEADLINE_SEC = 60


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET},
        ping_interval_sec=0.2,
    )  # fmt: skip
    await simulator.start()
    yield simulator
    await simulator.stop()


def rest_for(sim: BingXSimulator, key: str = KEY) -> BingXRest:
    return BingXRest(sim.rest_url, Credentials(key, SECRET), retry=RetryPolicy(attempts=3, base_delay_sec=0))


class Listener:
    """The stream's events, gathered by a task, waited for by what they say (never by time)."""

    def __init__(self, stream: UserDataStream) -> None:
        self.stream = stream
        self.seen: list[UserEvent] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.stream.events():
            self.seen.append(event)
            self._changed.set()

    async def until(self, what: str, done: object) -> list[UserEvent]:
        async with asyncio.timeout(DEADLINE_SEC):
            while not done(self.seen):  # type: ignore[operator]
                if self.task.done():
                    self.task.result()
                    raise AssertionError(f"the stream ended before {what}")
                self._changed.clear()
                await self._changed.wait()
        return self.seen

    async def stop(self) -> None:
        """Closing ends the stream: its events end by themselves."""
        await self.stream.close()
        async with asyncio.timeout(DEADLINE_SEC):
            await self.task


def of[T](kind: type[T], seen: list[UserEvent]) -> list[T]:
    return [event for event in seen if isinstance(event, kind)]


async def test_orders_and_balances_arrive_in_order(sim: BingXSimulator) -> None:
    async with rest_for(sim) as rest:
        listener = Listener(UserDataStream(rest, sim.ws_url, sleep=no_sleep))
        await listener.until("connected", lambda seen: of(UserStreamConnected, seen))
        trading = BingXTrading(rest)
        await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.5"), client_order_id="us-1")
        seen = await listener.until("the fill", lambda seen: any(o.status == "FILLED" for o in of(OrderUpdate, seen)))
        new, filled = of(OrderUpdate, seen)[:2]
        assert (new.client_order_id, new.execution, new.status, new.filled) == ("us-1", "NEW", "NEW", 0)
        assert (filled.execution, filled.filled, filled.last_quantity) == ("TRADE", Decimal("0.5"), Decimal("0.5"))
        assert filled.last_price == filled.average_price == Decimal("100.1")
        assert filled.last_fee == Decimal("0.025025")  # a cost, positive (the venue sends it negative)
        seen = await listener.until("the balance", lambda seen: of(AccountUpdate, seen))
        (account,) = of(AccountUpdate, seen)
        assert account.reason == "ORDER"
        assert [(p.symbol, p.quantity) for p in account.positions] == [("BTC-USDT", Decimal("0.5"))]
        assert listener.stream.stats.malformed == 0
        await listener.stop()


async def test_the_key_is_extended_on_its_period_on_the_same_connection(sim: BingXSimulator) -> None:
    async with rest_for(sim) as rest:
        listener = Listener(UserDataStream(rest, sim.ws_url, extend_every_sec=0.1, sleep=no_sleep))
        await listener.until("connected", lambda seen: of(UserStreamConnected, seen))
        async with asyncio.timeout(DEADLINE_SEC):
            while listener.stream.stats.extended < 3:
                await asyncio.sleep(0.05)
        puts = [r for r in sim.requests_to(LISTEN_KEY_PATH) if r.method == "PUT"]
        assert len(puts) >= 3
        assert all(r.status == 200 for r in puts)
        assert listener.stream.stats.connections == 1
        await listener.stop()


@pytest.mark.parametrize("fault", ["expire", "drop"])
async def test_a_lost_stream_is_announced_and_resumed_with_a_new_key(sim: BingXSimulator, fault: str) -> None:
    async with rest_for(sim) as rest:
        listener = Listener(UserDataStream(rest, sim.ws_url, sleep=no_sleep))
        await listener.until("connected", lambda seen: of(UserStreamConnected, seen))
        first_key = listener.stream._listen_key
        if fault == "expire":
            sim.user_streams.expire_all()
        else:
            await sim.stream.drop_user_streams()
        seen = await listener.until("reconnected", lambda seen: len(of(UserStreamConnected, seen)) == 2)
        lost = of(UserStreamLost, seen)
        assert len(lost) == 1
        assert ("expired" in lost[0].reason) if fault == "expire" else True
        again = of(UserStreamConnected, seen)[1]
        assert again.connection == 2
        assert again.last_heard_ms is not None  # from when the caller reads what the gap missed
        assert listener.stream._listen_key != first_key
        await BingXTrading(rest).place_order("BTC-USDT", "SELL", "MARKET", Decimal("0.2"), client_order_id="us-2")
        await listener.until("the order", lambda seen: any(o.client_order_id == "us-2" for o in of(OrderUpdate, seen)))
        await listener.stop()


async def test_a_wrong_key_is_refused_for_good(sim: BingXSimulator) -> None:
    async with rest_for(sim, key="not-a-key") as rest:
        stream = UserDataStream(rest, sim.ws_url, sleep=no_sleep)
        with pytest.raises(FatalVenueError):
            async for _ in stream.events():
                pass


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=20,
)
ORDER_FIELDS = st.sampled_from(["s", "c", "i", "S", "o", "x", "X", "q", "z", "ap", "n", "l", "L", "T"])
FIELD_VALUES = st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.none())
FRAME_TEXT = st.one_of(
    st.text(max_size=200),
    st.builds(json.dumps, JSON_VALUES),
    st.builds(
        lambda o: json.dumps({"e": "ORDER_TRADE_UPDATE", "o": o}),
        st.dictionaries(ORDER_FIELDS, FIELD_VALUES, max_size=14),
    ),
    st.builds(
        lambda a: json.dumps({"e": "ACCOUNT_UPDATE", "a": a}),
        st.dictionaries(st.sampled_from(["m", "B", "P"]), st.one_of(st.text(max_size=3), st.lists(st.integers()))),
    ),
)


@settings(max_examples=300, deadline=None)
@given(FRAME_TEXT)
def test_any_frame_is_an_event_or_counted_and_skipped(text: str) -> None:
    stream = UserDataStream(BingXRest("http://127.0.0.1:9"), "ws://127.0.0.1:9")
    event = stream._event(text)
    assert event is None or isinstance(event, OrderUpdate | AccountUpdate)
    if event is None:
        assert stream.stats.malformed + stream.stats.ignored == 1
