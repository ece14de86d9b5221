"""The actors' bounded inbox: market data conflated under backpressure (latest wins per key, order kept),
final candles and every other message never dropped, and each conflation counted (status and metrics)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.inbox import FormingCandle, Inbox, conflation_key
from domain.candles import Candle

MINUTE = 60_000


def candle(pair: str, open_ms: int, close: float, interval: str = "1m") -> Candle:
    return Candle(pair, interval, open_ms, close, close, close, close, 1.0)  # type: ignore[arg-type]


class Recorder:
    """A handler that holds each message until released, so the test decides when the actor is behind."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, message: Any) -> None:
        await self.gate.wait()
        self.seen.append(message)


def failed(error: BaseException) -> None:
    raise AssertionError(f"a message failed: {error}")


async def blocked_inbox(capacity: int = 1000) -> tuple[Inbox[Any], Recorder]:
    """An inbox whose handler is stuck on a first message (`"first"`), so everything after it waits."""
    recorder = Recorder()
    inbox: Inbox[Any] = Inbox("test", recorder, failed, capacity=capacity)
    inbox.start()
    recorder.gate.clear()
    inbox.put("first")
    await until_held(inbox)
    return inbox, recorder


async def until_held(inbox: Inbox[Any]) -> None:
    """Until the handler has taken the message waiting and holds it (loop turns, not a time)."""
    for _ in range(100):
        if inbox.busy_since is not None and inbox.backlog == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("the handler did not take the message")


def test_what_is_conflatable() -> None:
    forming = FormingCandle(candle("BTC-USDT", 0, 1.0))
    assert conflation_key(forming) == ("forming", "BTC-USDT", "1m")
    assert conflation_key(("tick", None)) == ("tick",)
    # final candles, state changes and everything else are never dropped
    assert conflation_key(("candles", [candle("BTC-USDT", 0, 1.0)])) is None
    assert conflation_key(candle("BTC-USDT", 0, 1.0)) is None
    assert conflation_key(("rewind", None)) is None
    assert conflation_key("order plan") is None


async def test_messages_are_handled_in_order_when_nothing_conflates() -> None:
    inbox, recorder = await blocked_inbox()
    for index in range(50):
        inbox.put(index)
    assert inbox.backlog == 50
    recorder.gate.set()
    assert await inbox.drain(10.0)
    assert recorder.seen == ["first", *range(50)]
    assert inbox.status()["conflated"] == 0
    await inbox.stop()


async def test_the_latest_forming_candle_wins_per_pair_and_interval_and_order_is_kept() -> None:
    inbox, recorder = await blocked_inbox()
    btc = [FormingCandle(candle("BTC-USDT", MINUTE, close)) for close in (1.0, 2.0, 3.0)]
    eth = [FormingCandle(candle("ETH-USDT", MINUTE, close)) for close in (10.0, 11.0)]
    btc_5m = FormingCandle(candle("BTC-USDT", 0, 7.0, "5m"))
    final = ("candles", [candle("BTC-USDT", 0, 0.5)])
    inbox.put(btc[0])
    inbox.put(eth[0])
    inbox.put(btc_5m)
    inbox.put(final)
    inbox.put(btc[1])
    inbox.put(eth[1])
    inbox.put(btc[2])
    assert inbox.backlog == 4  # the 5m candle, the final candles, the newest BTC and ETH 1m forming candles
    recorder.gate.set()
    assert await inbox.drain(10.0)
    # The newer state takes the older one's place at the back: nothing is seen out of order, and never
    # an older state of a key after a newer one.
    assert recorder.seen == ["first", btc_5m, final, eth[1], btc[2]]
    status = inbox.status()
    assert status["conflated"] == 3
    assert status["conflated_by_kind"] == {"forming": 3}
    assert status["backlog"] == 0
    assert status["handled"] == 5
    await inbox.stop()


async def test_final_candles_and_state_changes_are_never_dropped() -> None:
    inbox, recorder = await blocked_inbox()
    finals = [("candles", [candle("BTC-USDT", i * MINUTE, float(i))]) for i in range(200)]
    for index, message in enumerate(finals):
        inbox.put(message)
        inbox.put(FormingCandle(candle("BTC-USDT", (index + 1) * MINUTE, float(index))))
        if index % 50 == 0:
            inbox.put(("rewind", None))
    recorder.gate.set()
    assert await inbox.drain(10.0)
    kept = [m for m in recorder.seen if isinstance(m, tuple)]
    assert [m for m in kept if m[0] == "candles"] == finals
    assert sum(1 for m in kept if m[0] == "rewind") == 4
    forming = [m for m in recorder.seen if isinstance(m, FormingCandle)]
    assert forming == [FormingCandle(candle("BTC-USDT", 200 * MINUTE, 199.0))]  # only the newest was left
    assert inbox.status()["conflated"] == 199
    await inbox.stop()


async def test_a_conflatable_message_is_not_dropped_when_the_handler_keeps_up() -> None:
    recorder = Recorder()
    inbox: Inbox[Any] = Inbox("test", recorder, failed)
    inbox.start()
    ticks = 0
    for _ in range(5):
        inbox.put(("tick", None))
        ticks += 1
        assert await inbox.drain(10.0)
    assert recorder.seen == [("tick", None)] * ticks
    assert inbox.status()["conflated"] == 0
    await inbox.stop()


async def test_wake_up_ticks_waiting_are_one() -> None:
    inbox, recorder = await blocked_inbox()
    for _ in range(10):
        inbox.put(("tick", None))
    assert inbox.backlog == 1
    recorder.gate.set()
    assert await inbox.drain(10.0)
    assert recorder.seen == ["first", ("tick", None)]
    assert inbox.status()["conflated_by_kind"] == {"tick": 9}
    await inbox.stop()


async def test_beyond_capacity_nothing_is_dropped_and_each_episode_is_counted() -> None:
    inbox, recorder = await blocked_inbox(capacity=10)
    for index in range(25):
        inbox.put(index)
    status = inbox.status()
    assert (status["backlog"], status["high_water"], status["over_capacity"]) == (25, 25, 1)
    recorder.gate.set()
    assert await inbox.drain(10.0)
    recorder.gate.clear()
    inbox.put("again")
    await until_held(inbox)
    for index in range(12):
        inbox.put(index)
    assert inbox.status()["over_capacity"] == 2  # it went back under half the capacity in between
    recorder.gate.set()
    assert await inbox.drain(10.0)
    assert recorder.seen == ["first", *range(25), "again", *range(12)]
    await inbox.stop()


async def test_drain_times_out_while_the_handler_is_behind() -> None:
    inbox, recorder = await blocked_inbox()
    inbox.put("second")
    assert not await inbox.drain(0.05)
    recorder.gate.set()
    assert await inbox.drain(10.0)
    await inbox.stop()


async def test_between_messages_waits_for_the_message_being_handled_not_for_those_waiting() -> None:
    """What `runs stop --flatten` relies on: once the risk guard's decision in hand has gone on, the
    decisions still waiting are planned under the pause."""
    inbox, recorder = await blocked_inbox()
    inbox.put("second")
    assert not await inbox.between_messages(0.05)  # "first" is still being handled
    waiting = asyncio.ensure_future(inbox.between_messages(10.0))
    recorder.gate.set()
    assert await waiting
    assert recorder.seen[0] == "first"
    assert await inbox.drain(10.0)
    assert recorder.seen == ["first", "second"]
    await inbox.stop()


async def test_between_messages_answers_at_once_when_idle() -> None:
    inbox: Inbox[Any] = Inbox("test", Recorder(), failed)
    inbox.start()
    assert await inbox.between_messages(10.0)
    await inbox.stop()


async def test_conflations_are_written_as_metrics_once_each() -> None:
    rows: list[tuple[str, float, dict[str, Any]]] = []

    async def record(metric: str, value: float, *, pair: str | None = None, labels: Any = None) -> None:
        rows.append((metric, value, dict(labels or {})))

    inbox, recorder = await blocked_inbox(capacity=2)
    for close in (1.0, 2.0, 3.0):
        inbox.put(FormingCandle(candle("BTC-USDT", 0, close)))
    inbox.put(("tick", None))
    inbox.put(("tick", None))
    inbox.put("a")
    inbox.put("b")
    await inbox.record_metrics(record)
    by_metric = {(metric, labels.get("kind")): value for metric, value, labels in rows}
    assert by_metric == {
        ("inbox_conflated", "forming"): 2.0,
        ("inbox_conflated", "tick"): 1.0,
        ("inbox_over_capacity", None): 1.0,
    }
    assert all(labels["inbox"] == "test" for _, _, labels in rows)
    rows.clear()
    await inbox.record_metrics(record)
    assert rows == []  # nothing new since
    inbox.put(FormingCandle(candle("BTC-USDT", 0, 4.0)))
    await inbox.record_metrics(record)
    assert [(metric, value) for metric, value, _ in rows] == [("inbox_conflated", 1.0)]
    recorder.gate.set()
    assert await inbox.drain(10.0)
    await inbox.stop()


async def test_a_failing_message_is_reported_not_skipped() -> None:
    errors: list[BaseException] = []

    async def handle(message: Any) -> None:
        if message == "bad":
            raise ValueError("bad message")

    inbox: Inbox[Any] = Inbox("test", handle, errors.append)
    inbox.start()
    inbox.put("bad")
    inbox.put("good")
    assert await inbox.drain(10.0)
    assert [str(error) for error in errors] == ["bad message"]
    assert inbox.handled == 2
    await inbox.stop()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Inbox("test", Recorder(), failed, capacity=0)
