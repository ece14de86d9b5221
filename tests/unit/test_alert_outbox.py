"""Alerts raised while the database is away are kept, bounded, and written in order when it is back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from structlog.testing import capture_logs

from observability.alert_outbox import AlertOutbox


class Sink:
    def __init__(self) -> None:
        self.up = False
        self.written: list[tuple[str, str, str, dict[str, Any]]] = []

    async def __call__(self, severity: str, kind: str, message: str, **fields: Any) -> int:
        if not self.up:
            raise ConnectionRefusedError("the database is not answering")
        self.written.append((severity, kind, message, fields))
        return len(self.written)


async def test_alerts_are_kept_through_an_outage_and_written_in_order_after() -> None:
    sink = Sink()
    outbox = AlertOutbox(sink, capacity=3)
    assert await outbox.raise_alert("warning", "actor_restarted", "one", pair="BTC-USDT") is False
    assert await outbox.raise_alert("critical", "pair_faulted", "two", pair="BTC-USDT") is False
    assert await outbox.flush() is False
    assert len(outbox.pending) == 2
    sink.up = True
    assert await outbox.raise_alert("info", "pair_resumed", "three") is True
    assert [message for _, _, message, _ in sink.written] == ["one", "two", "three"]
    assert sink.written[0][3]["pair"] == "BTC-USDT"
    raised = [fields["raised_at"] for *_, fields in sink.written]
    assert all(isinstance(at, datetime) for at in raised)
    assert raised == sorted(raised), "each alert carries the time it was raised, not the time it was written"
    assert not outbox.pending


async def test_each_kept_alert_is_logged_once_however_often_a_flush_fails() -> None:
    sink = Sink()
    outbox = AlertOutbox(sink)
    with capture_logs() as logs:
        await outbox.raise_alert("warning", "actor_restarted", "one")
        for _ in range(20):  # the reconcile loop, every few seconds of the outage
            assert await outbox.flush() is False
        await outbox.raise_alert("warning", "pair_waiting", "two")
        sink.up = True
        assert await outbox.flush() is True
        assert await outbox.flush() is True
    events = [
        (entry["event"], entry.get("kind"), entry.get("written")) for entry in logs if entry["event"] != "alert_raised"
    ]
    assert events == [
        ("alert_kept", "actor_restarted", None),
        ("alert_kept", "pair_waiting", None),
        ("alerts_written", None, 2),
    ]


async def test_the_oldest_kept_alert_goes_first_when_the_outbox_is_full() -> None:
    sink = Sink()
    outbox = AlertOutbox(sink, capacity=2)
    for message in ("a", "b", "c"):
        await outbox.raise_alert("warning", "k", message)
    assert (outbox.dropped, [a.message for a in outbox.pending]) == (1, ["b", "c"])
    sink.up = True
    assert await outbox.flush() is True
    assert [message for _, _, message, _ in sink.written] == ["b", "c"]


async def test_a_write_given_up_on_and_new_alerts_never_race_or_double() -> None:
    """A write held up by a frozen database (one `within` gave up on goes on in the background); alerts
    raised meanwhile are kept (not waited for), and each is written once, in order, when it answers."""
    import asyncio

    gate = asyncio.Event()
    written: list[str] = []

    async def frozen(severity: str, kind: str, message: str, **fields: Any) -> int:
        await gate.wait()
        written.append(message)
        return len(written)

    outbox = AlertOutbox(frozen, capacity=3)
    outbox.pending.clear()
    first = asyncio.ensure_future(outbox.raise_alert("warning", "actor_restarted", "one"))
    await asyncio.sleep(0)
    for n in ("two", "three", "four"):  # the third overflows: "one" is dropped while it is being written
        assert await outbox.raise_alert("warning", "pair_waiting", n) is False
    assert await outbox.flush() is False, "a write is under way: the flush does not wait for it"
    gate.set()
    assert await first is True
    assert await outbox.flush() is True
    assert written == ["one", "two", "three", "four"]
    assert not outbox.pending
