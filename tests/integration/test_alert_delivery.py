"""Alert delivery against loopback receivers and a real PostgreSQL: once per channel, with the trace id,
paced, retried, and through a database outage from memory without sending anything twice; and the rows
kept through an outage (alerts, audit events) written once each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from config.settings import AlertSettings
from daemon.alert_channels import close_channels, open_channels
from daemon.alert_dispatcher import AlertDispatcher
from observability.alert_outbox import AlertOutbox
from observability.kept_writes import KeptWrites
from storage.availability import database_unreachable
from storage.database import Database, StorageOptions
from storage.ops import AuditEvent, OpsStore
from tests.alert_receivers import Receiver, serving

TOKEN = "123456:telegram-token-marker"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with serving("webhook") as receiver:
        yield receiver


@pytest.fixture
def telegram() -> Iterator[Receiver]:
    with serving("telegram") as receiver:
        yield receiver


def _settings(webhook: Receiver | None = None, telegram: Receiver | None = None, **extra: object) -> AlertSettings:
    fields: dict[str, object] = dict(extra)
    if webhook is not None:
        fields["webhook_url"] = SecretStr(webhook.url)
    if telegram is not None:
        fields |= {"telegram_bot_token": SecretStr(TOKEN), "telegram_chat_id": "4242", "telegram_api_url": telegram.url}
    return AlertSettings.model_validate(fields)


async def _delivery(database: Database) -> list[tuple[str, str, list[str], int]]:
    rows = await database.pool.fetch("SELECT kind, delivery, delivered_to, delivery_attempts FROM alerts ORDER BY id")
    return [(r["kind"], r["delivery"], list(r["delivered_to"]), r["delivery_attempts"]) for r in rows]


async def test_each_alert_reaches_every_channel_once_with_its_trace_id(
    database: Database, webhook: Receiver, telegram: Receiver
) -> None:
    store = OpsStore(database.pool)
    outbox = AlertOutbox(store.raise_alert)
    settings = _settings(webhook, telegram)
    channels = open_channels(settings)
    dispatcher = AlertDispatcher(settings, channels, store, lambda: outbox)
    try:
        await outbox.raise_alert(
            "critical", "pair_halted", "BTC-USDT halted: daily loss", pair="BTC-USDT", trace_id="t-1"
        )
        await outbox.raise_alert("warning", "actor_restarted", "ETH-USDT: policy died; restarting", pair="ETH-USDT")
        await outbox.raise_alert("info", "pair_resumed", "below the threshold: stored, not sent")
        await dispatcher.deliver_once()
        await dispatcher.deliver_once()  # nothing left: nothing sent again
    finally:
        await close_channels(channels)
    hooks = webhook.messages()
    assert [(m["kind"], m["pair"], m["severity"]) for m in hooks] == [
        ("pair_halted", "BTC-USDT", "critical"),
        ("actor_restarted", "ETH-USDT", "warning"),
    ]
    assert hooks[0]["trace_id"] == "t-1"
    generated = hooks[1]["trace_id"]
    assert generated not in ("", "t-1"), "an alert without a decision's trace id gets one of its own"
    rows = await database.pool.fetch("SELECT trace_id, uid::text FROM alerts ORDER BY id")
    assert [r["trace_id"] for r in rows[:2]] == ["t-1", generated]
    assert [m["uid"] for m in hooks] == [r["uid"] for r in rows[:2]]
    chats = telegram.messages()
    assert [m["chat_id"] for m in chats] == ["4242", "4242"]
    assert "[CRITICAL] pair_halted BTC-USDT" in chats[0]["text"]
    assert "trace t-1" in chats[0]["text"]
    assert f"trace {generated}" in chats[1]["text"]
    assert await _delivery(database) == [
        ("pair_halted", "delivered", ["telegram", "webhook"], 2),
        ("actor_restarted", "delivered", ["telegram", "webhook"], 2),
        ("pair_resumed", "not_sent", [], 0),
    ]


async def test_a_failing_channel_is_retried_with_backoff_and_the_other_is_not_sent_twice(
    database: Database, webhook: Receiver, telegram: Receiver
) -> None:
    store = OpsStore(database.pool)
    outbox = AlertOutbox(store.raise_alert)
    settings = _settings(webhook, telegram, retry_max_sec=8.0)
    channels = open_channels(settings)
    clock = Clock()
    dispatcher = AlertDispatcher(settings, channels, store, lambda: outbox, clock=clock)
    webhook.fail_next = 3
    try:
        await outbox.raise_alert("critical", "account_halted", "drawdown", trace_id="t-9")
        with capture_logs() as logs:
            waits = []
            for _ in range(3):
                waits.append(await dispatcher.deliver_once())
                clock.now += 100  # past any backoff
            await dispatcher.deliver_once()
    finally:
        await close_channels(channels)
    assert [m["trace_id"] for m in webhook.messages()] == ["t-9"]
    assert len(telegram.messages()) == 1, "the channel that worked is not sent to again"
    assert waits[0] == pytest.approx(1.0)
    assert waits[1] == pytest.approx(2.0)
    assert waits[2] == pytest.approx(4.0)
    failures = [entry for entry in logs if entry["event"] == "alert_delivery_failed"]
    assert [entry["error"] for entry in failures] == ["the webhook answered HTTP 503"] * 3
    assert await _delivery(database) == [("account_halted", "delivered", ["telegram", "webhook"], 5)]
    assert "secret-path-token" not in repr(logs), "the webhook URL (its token) is never logged"


async def test_a_burst_beyond_the_pace_goes_out_as_one_digest(database: Database, webhook: Receiver) -> None:
    store = OpsStore(database.pool)
    outbox = AlertOutbox(store.raise_alert)
    settings = _settings(webhook, max_per_minute=5)
    channels = open_channels(settings)
    clock = Clock()
    dispatcher = AlertDispatcher(settings, channels, store, lambda: outbox, clock=clock)
    try:
        for n in range(30):
            await outbox.raise_alert("warning", "order_rejected" if n % 2 else "actor_restarted", f"alert {n}")
        await dispatcher.deliver_once()
        await outbox.raise_alert("critical", "pair_faulted", "after the burst")
        wait = await dispatcher.deliver_once()
        assert webhook.messages()[-1]["kind"] == "alert_digest", "the bucket is empty: nothing more goes yet"
        assert wait == pytest.approx(12.0)
        clock.now += wait
        await dispatcher.deliver_once()
    finally:
        await close_channels(channels)
    sent = webhook.messages()
    assert [m["message"] for m in sent[:4]] == ["alert 0", "alert 1", "alert 2", "alert 3"]
    digest = sent[4]
    assert digest["kind"] == "alert_digest"
    assert digest["message"].startswith("26 alerts from ")
    assert "actor_restarted x13" in digest["message"]
    assert "order_rejected x13" in digest["message"]
    assert len(digest["details"]["trace_ids"]) == 26
    assert [m["kind"] for m in sent[5:]] == ["pair_faulted"]
    assert {row[1] for row in await _delivery(database)} == {"delivered"}


async def test_alerts_kept_through_an_outage_are_delivered_from_memory_and_not_again_once_written(
    database: Database, postgres_url: str, tmp_path: object, webhook: Receiver
) -> None:
    away = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=1))  # type: ignore[arg-type]
    await away.close()  # a pool that cannot answer: what the daemon holds while PostgreSQL is down
    outbox = AlertOutbox(OpsStore(away.pool).raise_alert)
    settings = _settings(webhook)
    channels = open_channels(settings)
    down = AlertDispatcher(settings, channels, OpsStore(away.pool), lambda: outbox)
    try:
        assert await outbox.raise_alert("critical", "pair_waiting", "waits for the database") is False
        with capture_logs() as logs:
            await down.deliver_once()
            await down.deliver_once()
        assert [m["kind"] for m in webhook.messages()] == ["pair_waiting"], "delivered during the outage"
        assert [e["event"] for e in logs if e["event"] == "alert_queue_unreadable"] == ["alert_queue_unreadable"]
        # the database is back: the kept alert is written with what it reached, and not sent again
        outbox.write = OpsStore(database.pool).raise_alert
        assert await outbox.flush() is True
        up = AlertDispatcher(settings, channels, OpsStore(database.pool), lambda: outbox)
        await up.deliver_once()
    finally:
        await close_channels(channels)
    assert len(webhook.messages()) == 1
    assert await _delivery(database) == [("pair_waiting", "delivered", ["webhook"], 0)]


async def test_an_unreachable_webhook_and_telegram_never_log_their_secrets(database: Database) -> None:
    store = OpsStore(database.pool)
    outbox = AlertOutbox(store.raise_alert)
    settings = _settings(
        webhook_url=SecretStr("http://127.0.0.1:9/hooks/secret-path-token"),
        telegram_bot_token=SecretStr(TOKEN),
        telegram_chat_id="1",
        telegram_api_url="http://127.0.0.1:9",
        send_timeout_sec=5.0,
    )
    channels = open_channels(settings)
    dispatcher = AlertDispatcher(settings, channels, store, lambda: outbox)
    try:
        await outbox.raise_alert("critical", "pair_faulted", "nobody hears this yet")
        with capture_logs() as logs:
            await dispatcher.deliver_once()
    finally:
        await close_channels(channels)
    failed = [entry for entry in logs if entry["event"] == "alert_delivery_failed"]
    assert {entry["channel"] for entry in failed} == {"webhook", "telegram"}
    assert "secret-path-token" not in repr(logs)
    assert TOKEN not in repr(logs)
    rows = await database.pool.fetch("SELECT delivery, delivery_error FROM alerts")
    assert rows[0]["delivery"] == "pending"
    assert "secret-path-token" not in rows[0]["delivery_error"]
    assert TOKEN not in rows[0]["delivery_error"]


async def test_an_actors_kept_alert_is_delivered_by_the_daemon_during_the_outage_and_written_once(
    database: Database, postgres_url: str, tmp_path: object, webhook: Receiver
) -> None:
    """A risk guard's alert raised while PostgreSQL is away reaches the daemon on the next health check
    (`ActorShell.ping` offers it, the supervisor adopts it) and is delivered from the daemon's memory;
    when the database is back both processes write it, and the uid makes it one row, sent once."""
    away = await Database.open(StorageOptions(url=postgres_url, data_dir=tmp_path, pool_max_size=1))  # type: ignore[arg-type]
    await away.close()
    actor = AlertOutbox(OpsStore(away.pool).raise_alert, transient=database_unreachable)
    daemon = AlertOutbox(OpsStore(away.pool).raise_alert, transient=database_unreachable)
    settings = _settings(webhook)
    channels = open_channels(settings)
    try:
        assert await actor.raise_alert("critical", "pair_halted", "BTC-USDT halted: gate", pair="BTC-USDT") is False
        offered = actor.offer()
        assert [a.kind for a in offered] == ["pair_halted"]
        assert actor.offer() == [], "each kept alert is offered once"
        assert daemon.adopt(offered) == 1
        assert daemon.adopt(offered) == 0, "one offered twice is kept once"
        await AlertDispatcher(settings, channels, OpsStore(away.pool), lambda: daemon).deliver_once()
        assert [m["kind"] for m in webhook.messages()] == ["pair_halted"], "delivered during the outage"
        actor.write = daemon.write = OpsStore(database.pool).raise_alert
        assert await actor.flush() is True  # the actor reaches the database first: its row, not yet delivered
        assert await daemon.flush() is True  # the same uid: no second row
        await AlertDispatcher(settings, channels, OpsStore(database.pool), lambda: daemon).deliver_once()
    finally:
        await close_channels(channels)
    rows = await database.pool.fetch("SELECT kind, uid FROM alerts")
    assert [(r["kind"], r["uid"]) for r in rows] == [("pair_halted", offered[0].uid)]
    assert len(webhook.messages()) == 1, "not sent again once its row exists"


async def test_audit_events_are_written_once_by_uid_and_a_refused_one_does_not_hold_up_the_rest(
    database: Database,
) -> None:
    store = OpsStore(database.pool)
    kept: KeptWrites[AuditEvent] = KeptWrites(store.write_audit, "audit_event", transient=database_unreachable)
    first = AuditEvent("pause", {"pair": "BTC-USDT"}, "accepted", None, "control-socket", "BTC-USDT")
    await store.write_audit(first)  # an insert whose answer was lost...
    kept.keep(first)  # ...kept and tried again
    kept.keep(AuditEvent("pause", {"reason": "nul \u0000 inside"}, "accepted", None, "control-socket"))
    kept.keep(AuditEvent("resume", {"pair": "BTC-USDT"}, "accepted", None, "control-socket", "BTC-USDT"))
    with capture_logs() as logs:
        assert await kept.flush() is True
    rows = await database.pool.fetch("SELECT command, occurred_at FROM ops_audit_events ORDER BY id")
    assert [r["command"] for r in rows] == ["pause", "resume"]
    assert rows[0]["occurred_at"] == first.occurred_at, "written with the time the command ran"
    assert [e["event"] for e in logs if e["event"].startswith("audit_event")] == ["audit_event_refused"]
