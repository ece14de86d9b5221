"""The supervisor against fake actors (no Ray): start order, restarts with backoff, FAULTED, health-check
thresholds, desired state kept across restarts (stored in real PostgreSQL), and shutdown in reverse order
within its deadline.

The fakes are plain objects behind the real typed handles (`actors.transport`), reached through a
channel that behaves as Ray does: a dead actor's calls fail with Ray's `ActorDiedError`, a hung actor's
calls never answer (the handle's deadline turns that into a missed ping)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from ray.exceptions import ActorDiedError, RayTaskError
from structlog.testing import capture_logs

from actors.features.actor import FeatureSource
from actors.feed.actor import FeedSource
from actors.shell import WorkerEnv
from actors.transport import (
    DRAIN,
    ROLES,
    START,
    AccountHandle,
    ExecutionHandle,
    FeaturesHandle,
    FeedHandle,
    PairActors,
    PairPlan,
    Peers,
    PolicyHandle,
    RiskHandle,
)
from config.settings import DaemonSettings
from daemon.supervisor import DesiredStateNotSaved, Supervisor
from domain.errors import RateLimitedError
from domain.fills import FillRules
from market_data.runner import FeedSchedule
from observability.alert_outbox import AlertOutbox
from pipeline.features.core import GateSettings
from pipeline.policy.source import PolicySource
from pipeline.risk.account import AccountPolicy
from storage.availability import StorageUnavailableError
from storage.database import Database, StorageOptions
from storage.desired_state import ACCOUNT, DesiredState, DesiredStateStore
from storage.migrator import migrate
from trading.context import PairContext
from trading.limits import RiskLimits

PAIRS = ("BTC-USDT", "ETH-USDT")
Call = tuple[str, str, str]  # (pair or "account", role, method)


class World:
    """Every fake actor's calls, in order, and what is wrong with which actor."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.times: dict[Call, list[float]] = {}
        self.dead: set[tuple[str, str]] = set()
        self.hung: set[tuple[str, str, str]] = set()
        self.failing_start: set[str] = set()
        self.start_error: dict[tuple[str, str], BaseException] = {}
        """A role's `ready` raises this in the actor (reaching the supervisor as Ray delivers it)."""
        self.gates: dict[tuple[str, str, str], asyncio.Event] = {}
        self.kept_alerts: dict[tuple[str, str], list[Any]] = {}
        """What an actor's next ping offers (alerts it kept: its database writes failed)."""
        self.next_pid = 1000

    def record(self, call: Call) -> None:
        self.calls.append(call)
        self.times.setdefault(call, []).append(time.monotonic())

    def of(self, pair: str) -> list[tuple[str, str]]:
        return [(role, method) for name, role, method in self.calls if name == pair]


class FakeActor:
    def __init__(self, world: World, pair: str, role: str) -> None:
        self.world, self.pair, self.role = world, pair, role
        self.pid = world.next_pid
        world.next_pid += 1
        self.operator_state: str | None = None

    def answer(self, method: str, *args: Any) -> Any:
        if method == "ready":
            if (error := self.world.start_error.get((self.pair, self.role))) is not None:
                raise RayTaskError("ready", "Traceback (in the actor)", error)
            if self.role == "execution" and self.pair in self.world.failing_start:
                raise RuntimeError("the book cannot be restored")
            assert isinstance(args[0], Peers)
            return {"pid": self.pid, "report": None} if self.role == "execution" else {"pid": self.pid}
        if method == "ping":
            kept = self.world.kept_alerts.pop((self.pair, self.role), None)
            return {"pid": self.pid, "running": True, **({"kept_alerts": kept} if kept else {})}
        if method == "drain":
            return True
        if method == "operator":
            self.operator_state = args[0]
            return args[0]
        if method == "reconciled":
            return self.operator_state or "ACTIVE"
        if method in ("status", "summary"):
            return {
                "trading_state": "ACTIVE",
                "blocked_by": [],
                "topics": {},
                "last_decided_open_ms": None,
                "last_sequence": -1,
            }
        if method == "report":
            return None
        if method == "source":
            return "ACTIVE"
        return None


class FakeChannel:
    """A handle's line to a fake actor, failing the way Ray's does."""

    def __init__(self, world: World, actor: FakeActor) -> None:
        self.world, self.actor = world, actor

    def call(self, method: str, *args: Any) -> Awaitable[Any]:
        return self._call(method, *args)

    async def _call(self, method: str, *args: Any) -> Any:
        key = (self.actor.pair, self.actor.role)
        if key in self.world.dead:
            raise ActorDiedError()
        self.world.record((*key, method))
        if (*key, method) in self.world.hung:
            await asyncio.Event().wait()  # never answers
        if (gate := self.world.gates.get((*key, method))) is not None:
            await gate.wait()  # answers when the test opens it
        return self.actor.answer(method, *args)

    def send(self, method: str, *args: Any) -> None:
        if (self.actor.pair, self.actor.role) not in self.world.dead:
            self.world.record((self.actor.pair, self.actor.role, method))

    def kill(self) -> None:
        self.world.dead.add((self.actor.pair, self.actor.role))


class FakeTransport:
    def __init__(self, world: World) -> None:
        self.world = world
        self.created: dict[str, list[PairActors]] = {}

    def _channel(self, pair: str, role: str) -> FakeChannel:
        self.world.dead.discard((pair, role))  # a new actor of the role
        return FakeChannel(self.world, FakeActor(self.world, pair, role))

    def account(self, env: WorkerEnv, policy: AccountPolicy, venue: object = None) -> AccountHandle:
        return AccountHandle(self._channel("account", "account"))

    def pair(self, env: WorkerEnv, plan: PairPlan) -> PairActors:
        pair = plan.context.pair
        actors = PairActors(
            execution=ExecutionHandle(self._channel(pair, "execution")),
            risk=RiskHandle(self._channel(pair, "risk")),
            policy=PolicyHandle(self._channel(pair, "policy")),
            features=FeaturesHandle(self._channel(pair, "features")),
            feed=FeedHandle(self._channel(pair, "feed")),
        )
        self.created.setdefault(pair, []).append(actors)
        return actors


def plan(run_id: uuid.UUID, pair: str) -> PairPlan:
    context = PairContext(str(run_id), pair, "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))
    rules = FillRules(
        Decimal("0.1"), Decimal("0.001"), Decimal("0.001"), Decimal(5), Decimal("0.0002"), Decimal("0.0005")
    )
    return PairPlan(
        context,
        rules,
        RiskLimits("test", Decimal(1000), Decimal(1000), 5),
        PolicySource(baseline="momentum"),
        FeatureSource("v1", GateSettings()),
        FeedSource("http://127.0.0.1:1", "ws://127.0.0.1:1", ("1m",), 10, FeedSchedule()),
        enforce_provenance=False,
    )


@pytest.fixture(scope="module")
def migrated_url(postgres_server_url: str) -> Iterator[str]:
    """One migrated database for the module (each test has a run of its own in it)."""
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    url = urlunsplit(urlsplit(postgres_server_url)._replace(path=f"/{name}"))

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(postgres_server_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    async def create() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        connection = await asyncpg.connect(url)
        try:
            await migrate(connection)
        finally:
            await connection.close()

    asyncio.run(create())
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def store(migrated_url: str, tmp_path: Path) -> AsyncIterator[tuple[DesiredStateStore, uuid.UUID]]:
    database = await Database.open(StorageOptions(url=migrated_url, data_dir=tmp_path, pool_max_size=2))
    try:
        run_id = await database.pool.fetchval(
            "INSERT INTO agent_runs (baseline_policy, pairs, interval, feature_set, decision_threshold, status) "
            "VALUES ('momentum', $1, '1m', 'v1', 0.5, 'stopped') RETURNING id",  # one active run at a time
            list(PAIRS),
        )
        yield DesiredStateStore(database.pool), run_id
    finally:
        await database.close()


class Alerts:
    def __init__(self) -> None:
        self.raised: list[tuple[str, str, str, str | None]] = []

    async def __call__(self, severity: str, kind: str, message: str, pair: str | None) -> None:
        self.raised.append((severity, kind, message, pair))


def supervisor(
    world: World, store: tuple[DesiredStateStore, uuid.UUID], adopt: Any = None, **settings: Any
) -> tuple[Supervisor, FakeTransport, Alerts]:
    defaults: dict[str, Any] = {
        "health_timeout_sec": 0.2,
        "restart_backoff_sec": 0.05,
        "restart_backoff_max_sec": 10.0,
        "start_timeout_sec": 2.0,
    }
    transport, alerts = FakeTransport(world), Alerts()
    env = WorkerEnv("postgresql://unused", None, "info", ())
    policy = AccountPolicy("test", Decimal(10_000), Decimal(10_000), Decimal(1000))
    plans = [plan(store[1], pair) for pair in PAIRS]
    daemon = DaemonSettings(**{**defaults, **settings})
    return Supervisor(transport, env, policy, plans, daemon, alerts, store[0], adopt), transport, alerts


async def restarted(sup: Supervisor, pair: str) -> None:
    """Wait for the pair's pending restart (its task), however it ends."""
    task = sup.slots[pair].task
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), 10)


async def test_a_pair_starts_in_dependency_order_and_gets_its_desired_state_before_the_halt_lifts(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, _, _ = supervisor(world, store)
    await sup.start()
    assert world.calls[:1] == [("account", "account", "ready")]
    readies = [role for role, method in world.of("BTC-USDT") if method == "ready"]
    assert readies == [step.role for step in START] == ["execution", "risk", "policy", "feed", "features"]
    # Nothing was ever asked: the risk guard's own checkpoint stands, then the start-up halt ends.
    assert world.of("BTC-USDT")[-1] == ("risk", "reconciled")
    assert ("risk", "operator") not in world.of("BTC-USDT")
    assert ("account", "account", "on_report") in world.calls  # the book's report, right after execution
    assert {slot.state for slot in sup.slots.values()} == {"running"}


async def test_alerts_an_actor_kept_reach_the_daemons_outbox_with_the_health_check(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    """A guard's alert that its own database write could not store (an outage) comes back with its ping,
    so the daemon's dispatcher can deliver it before the database returns."""

    async def unwritable(*_: Any, **__: Any) -> int:
        raise ConnectionRefusedError("the database is down")

    daemon_outbox = AlertOutbox(unwritable)
    risk, account = AlertOutbox(unwritable), AlertOutbox(unwritable)
    await risk.raise_alert("critical", "pair_halted", "BTC-USDT halted", pair="BTC-USDT")
    await account.raise_alert("critical", "account_halted", "breaker tripped")
    world = World()
    sup, _, _ = supervisor(world, store, daemon_outbox.adopt)
    await sup.start()
    world.kept_alerts[("BTC-USDT", "risk")] = risk.offer()
    world.kept_alerts[("account", "account")] = account.offer()
    await sup.reconcile_once()
    assert sorted(a.kind for a in daemon_outbox.pending) == ["account_halted", "pair_halted"]
    assert {a.uid for a in daemon_outbox.pending} == {risk.pending[0].uid, account.pending[0].uid}
    assert {slot.state for slot in sup.slots.values()} == {"running"}


async def test_a_failure_found_by_a_reconcile_pass_that_a_stop_overtook_restarts_nothing(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    """Found by CI: `runs stop` while a reconcile pass waited on pings; the pass then found a dead actor
    and scheduled a restart, which brought the stopped run's pair back beside the next run's."""
    world = World()
    sup, transport, _ = supervisor(world, store)
    await sup.start()
    world.gates[("BTC-USDT", "risk", "ping")] = asyncio.Event()  # the pass waits here (until its deadline)
    world.dead.add(("ETH-USDT", "policy"))
    with capture_logs() as logs:
        reconcile = asyncio.create_task(sup.reconcile_once())
        while ("BTC-USDT", "risk", "ping") not in world.times:
            await asyncio.sleep(0)
        stopping = asyncio.create_task(sup.stop(5.0))
        while not sup._stopping:
            await asyncio.sleep(0)
        await reconcile
        assert await stopping is not None
    eth = sup.slots["ETH-USDT"]
    assert eth.state == "stopped"
    assert eth.task is None or eth.task.done()
    assert len(transport.created["ETH-USDT"]) == 1, "no new actors for the stopped run"
    assert "pair_restarting" not in [entry["event"] for entry in logs if entry.get("pair") == "ETH-USDT"]
    # A failure reported later still (a start task's own) is not turned into a restart either.
    with capture_logs() as later:
        await sup._failed(eth, "restart", RuntimeError("the old run's start failed"))
    assert [entry["event"] for entry in later] == ["pair_not_restarted"]
    assert eth.task is None or eth.task.done()
    assert await sup.retry_faulted() == []


async def test_a_dead_actor_restarts_its_pair_after_a_backoff_that_doubles_then_the_pair_is_faulted(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, transport, alerts = supervisor(world, store, restart_backoff_sec=0.2, max_restarts=2)
    await sup.start()
    # An actor that died fails its pair at the first ping (no threshold for the dead).
    world.dead.add(("BTC-USDT", "policy"))
    failed_at = time.monotonic()
    await sup.reconcile_once()
    btc = sup.slots["BTC-USDT"]
    assert btc.state == "restarting"
    assert str(btc.last_error).startswith("policy: RuntimeError: the policy actor stopped")
    assert sup.slots["ETH-USDT"].state == "running"
    await restarted(sup, "BTC-USDT")
    assert btc.state == "running"
    assert len(transport.created["BTC-USDT"]) == 2  # all five roles anew
    first_gap = world.times[("BTC-USDT", "execution", "ready")][1] - failed_at
    assert first_gap >= 0.2
    # The next failure in the window waits twice as long.
    world.dead.add(("BTC-USDT", "feed"))
    failed_at = time.monotonic()
    await sup.reconcile_once()
    await restarted(sup, "BTC-USDT")
    assert world.times[("BTC-USDT", "execution", "ready")][2] - failed_at >= 0.4
    # A third failure in the window: max_restarts (2) are used up, the pair is FAULTED and left alone.
    world.dead.add(("BTC-USDT", "risk"))
    await sup.reconcile_once()
    assert btc.state == "faulted"
    assert btc.actors is None
    assert [kind for _, kind, _, pair in alerts.raised if pair == "BTC-USDT"] == [
        "actor_restarted",
        "actor_restarted",
        "pair_faulted",
    ]
    assert sup.slots["ETH-USDT"].state == "running"
    assert (await sup.pair_status(btc))["state"] == "FAULTED"
    # `reconcile` gives it a fresh start and a fresh budget.
    assert await sup.retry_faulted() == ["BTC-USDT"]
    await restarted(sup, "BTC-USDT")
    assert btc.state == "running"


async def test_a_pair_whose_start_keeps_failing_is_faulted(store: tuple[DesiredStateStore, uuid.UUID]) -> None:
    world = World()
    world.failing_start.add("ETH-USDT")
    sup, _, alerts = supervisor(world, store, max_restarts=3)
    await sup.start()
    eth = sup.slots["ETH-USDT"]
    while eth.state != "faulted":
        await restarted(sup, "ETH-USDT")
    assert [role for role, method in world.of("ETH-USDT") if method == "ready"] == ["execution"] * 4
    assert eth.last_error == "restart: RuntimeError: the book cannot be restored"
    assert alerts.raised[-1][1] == "pair_faulted"
    assert sup.slots["BTC-USDT"].state == "running"


async def test_one_missed_ping_does_not_restart_a_pair_but_health_misses_within_the_window_do(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, transport, _ = supervisor(world, store, health_misses=3, health_window_sec=60)
    await sup.start()
    btc = sup.slots["BTC-USDT"]
    world.hung.add(("BTC-USDT", "risk", "ping"))
    await sup.reconcile_once()
    await sup.reconcile_once()
    assert btc.state == "running"  # two misses: still trading
    assert len(btc.misses["risk"]) == 2
    assert len(transport.created["BTC-USDT"]) == 1
    await sup.reconcile_once()
    assert btc.state == "restarting"
    assert "missed 3 health pings" in str(btc.last_error)
    world.hung.clear()
    await restarted(sup, "BTC-USDT")
    assert btc.state == "running"
    assert btc.misses == {}  # a new start counts afresh


async def test_misses_older_than_the_window_do_not_count(store: tuple[DesiredStateStore, uuid.UUID]) -> None:
    world = World()
    sup, _, _ = supervisor(world, store, health_misses=2, health_window_sec=0.3)
    await sup.start()
    btc = sup.slots["BTC-USDT"]
    world.hung.add(("BTC-USDT", "features", "ping"))
    await sup.reconcile_once()
    first = btc.misses["features"][0]
    while time.monotonic() - first <= 0.3:  # the window passes (each ping waits its 0.2 s deadline)
        world.hung.discard(("BTC-USDT", "features", "ping"))
        await sup.reconcile_once()
    world.hung.add(("BTC-USDT", "features", "ping"))
    await sup.reconcile_once()
    assert btc.state == "running"
    assert len(btc.misses["features"]) == 1


async def test_a_pause_while_a_pair_restarts_is_applied_before_it_trades_and_survives_a_daemon_restart(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, _, _ = supervisor(world, store, restart_backoff_sec=0.2)
    await sup.start()
    world.dead.add(("BTC-USDT", "execution"))
    await sup.reconcile_once()
    assert sup.slots["BTC-USDT"].state == "restarting"
    states = await sup.set_desired("BTC-USDT", DesiredState("HALTED", "operator_pause"), "test")
    assert states == {"BTC-USDT": None}  # not running: kept, not lost
    assert (await store[0].load(store[1]))["BTC-USDT"].trading_state == "HALTED"  # stored first
    status = await sup.pair_status(sup.slots["BTC-USDT"])
    assert (status["desired"]["trading_state"], status["desired"]["applied"]) == ("HALTED", False)
    calls_before = len(world.calls)
    await restarted(sup, "BTC-USDT")
    after = [(role, method) for pair, role, method in world.calls[calls_before:] if pair == "BTC-USDT"]
    # Told HALTED before the start-up halt is lifted: it never trades on its older checkpoint.
    assert after.index(("risk", "operator")) < after.index(("risk", "reconciled"))
    assert sup.slots["BTC-USDT"].applied_version == sup.slots["BTC-USDT"].desired_version
    status = await sup.pair_status(sup.slots["BTC-USDT"])
    assert (status["desired"]["reason"], status["desired"]["applied"]) == ("operator_pause", True)
    await sup.stop(5)

    # The daemon starts again (after kill -9 or not): the pause is read back and applied first.
    world2 = World()
    again, _, _ = supervisor(world2, store)
    await again.start()
    btc = world2.of("BTC-USDT")
    assert btc.index(("risk", "operator")) < btc.index(("risk", "reconciled"))
    assert again.desired_of("BTC-USDT").reason == "operator_pause"
    assert ("risk", "operator") not in world2.of("ETH-USDT")  # nothing asked for ETH
    # A resume of all pairs is stored for the account and every pair.
    assert await again.set_desired(None, DesiredState("ACTIVE"), "test") == {"BTC-USDT": "ACTIVE", "ETH-USDT": "ACTIVE"}
    stored = await store[0].load(store[1])
    assert {scope: row.trading_state for scope, row in stored.items()} == {
        "BTC-USDT": "ACTIVE",
        "ETH-USDT": "ACTIVE",
        ACCOUNT: "ACTIVE",
    }
    await again.stop(5)


async def test_a_pause_while_a_pair_starts_reaches_its_risk_guard_before_the_start_up_halt_lifts(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    gate = world.gates[("BTC-USDT", "feed", "ready")] = asyncio.Event()  # BTC's warm-up takes its time
    sup, _, _ = supervisor(world, store)
    start = asyncio.create_task(sup.start())
    while ("BTC-USDT", "feed", "ready") not in world.calls:
        await asyncio.sleep(0)
    assert sup.slots["BTC-USDT"].state == "starting"
    # The risk guard is ready (still HALTED for start-up): it is told at once.
    assert await sup.set_desired("BTC-USDT", DesiredState("HALTED", "operator_pause"), "test") == {"BTC-USDT": "HALTED"}
    gate.set()
    await asyncio.wait_for(start, 10)
    btc = world.of("BTC-USDT")
    assert btc.index(("risk", "operator")) < btc.index(("risk", "reconciled"))
    assert sup.slots["BTC-USDT"].applied_version == sup.slots["BTC-USDT"].desired_version
    await sup.stop(5)


async def test_a_running_pair_is_paused_at_once_and_one_that_missed_it_gets_it_from_the_reconcile_loop(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, _, _ = supervisor(world, store)
    await sup.start()
    world.hung.add(("ETH-USDT", "risk", "operator"))
    states = await sup.set_desired(None, DesiredState("REDUCING", "operator_reduce_only"), "test")
    assert states == {"BTC-USDT": "REDUCING", "ETH-USDT": None}  # ETH's risk guard was late
    eth = sup.slots["ETH-USDT"]
    assert eth.applied_version != eth.desired_version
    world.hung.clear()
    await sup.reconcile_once()
    assert eth.applied_version == eth.desired_version
    assert world.of("ETH-USDT").count(("risk", "operator")) == 2


async def test_shutdown_halts_drains_upstream_first_closes_in_reverse_within_the_deadline(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, _, _ = supervisor(world, store)
    await sup.start()
    world.hung.add(("ETH-USDT", "policy", "drain"))  # one stage never drains
    world.hung.add(("BTC-USDT", "feed", "close"))  # one actor never closes
    mark = len(world.calls)
    began = time.monotonic()
    clean = await sup.stop(1.0)
    assert time.monotonic() - began < 1.0 + 0.5
    assert clean is False  # ETH's policy did not drain
    btc = [(role, method) for pair, role, method in world.calls[mark:] if pair == "BTC-USDT"]
    assert btc[0] == ("risk", "halt_for_shutdown")
    assert [role for role, method in btc if method == "drain"] == list(DRAIN)
    assert [role for role, method in btc if method == "close"] == list(reversed(ROLES))
    assert btc.index(("execution", "drain")) < btc.index(("feed", "close"))
    assert world.calls[-2:] == [("account", "account", "save"), ("account", "account", "close")]
    assert {slot.state for slot in sup.slots.values()} == {"stopped"}
    assert all(key in world.dead for key in [("BTC-USDT", role) for role in ROLES])  # killed


async def test_a_restart_goes_on_when_its_alert_cannot_be_written(store: tuple[DesiredStateStore, uuid.UUID]) -> None:
    """Issue 16, defect 1: the database away, the restart's alert write raised and the restart task died,
    leaving the pair `restarting` for good with its positions unmanaged."""
    world = World()
    sup, transport, _ = supervisor(world, store, restart_backoff_sec=0.05)

    async def database_away(severity: str, kind: str, message: str, pair: str | None) -> None:
        raise ConnectionRefusedError("the database is not answering")

    sup.alert = database_away
    await sup.start()
    world.dead.add(("BTC-USDT", "execution"))
    await sup.reconcile_once()
    assert sup.slots["BTC-USDT"].state == "restarting"
    await restarted(sup, "BTC-USDT")
    assert sup.slots["BTC-USDT"].state == "running"
    assert len(transport.created["BTC-USDT"]) == 2
    # A start that fails while the database is away is rescheduled too, alert or not.
    world.failing_start.add("BTC-USDT")
    world.dead.add(("BTC-USDT", "policy"))
    await sup.reconcile_once()
    await restarted(sup, "BTC-USDT")
    assert sup.slots["BTC-USDT"].state == "restarting", "the failed start is scheduled again"
    world.failing_start.discard("BTC-USDT")
    while sup.slots["BTC-USDT"].state != "running":
        await restarted(sup, "BTC-USDT")


@pytest.mark.parametrize(
    ("role", "error", "on"),
    [
        ("feed", RateLimitedError("429: too many requests", http_status=429, retry_after_sec=1), "the venue"),
        ("execution", ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"), "the database"),
        ("risk", asyncpg.exceptions.CannotConnectNowError("the database system is starting up"), "the database"),
        (
            "features",
            StorageUnavailableError("cannot connect to localhost/postgres: FileNotFoundError", unreachable=True),
            "the database",
        ),
    ],
)
async def test_a_start_that_waits_on_the_venue_or_the_database_retries_without_spending_the_restart_budget(
    store: tuple[DesiredStateStore, uuid.UUID], role: str, error: BaseException, on: str
) -> None:
    """Issue 16, defect 3: a 429 burst (or a database outage) during a restart failed each start, and each
    failure counted toward FAULTED. Such a start waits: backed off, retried for as long as it takes, the
    budget untouched, one alert when it begins and one when the pair is back."""
    world = World()
    sup, _, alerts = supervisor(world, store, max_restarts=2, restart_backoff_sec=0.01, restart_backoff_max_sec=0.05)
    await sup.start()
    world.start_error[("BTC-USDT", role)] = error
    world.dead.add(("BTC-USDT", "policy"))
    await sup.reconcile_once()  # one restart spent: the policy died
    btc = sup.slots["BTC-USDT"]
    for _ in range(6):  # three times the budget of failed starts
        await restarted(sup, "BTC-USDT")
        assert btc.state == "restarting", "still waiting, never FAULTED"
    status = await sup.pair_status(btc)
    assert status["waiting_on"] == on
    assert status["restarts"] == 1
    assert btc.waits >= 6
    assert [kind for _, kind, _, _ in alerts.raised] == ["actor_restarted", "pair_waiting"]
    assert on in alerts.raised[-1][2]
    del world.start_error[("BTC-USDT", role)]
    while btc.state != "running":
        await restarted(sup, "BTC-USDT")
    assert (await sup.pair_status(btc))["waiting_on"] is None
    assert alerts.raised[-1][:2] == ("info", "pair_recovered")
    # A fault of ours still spends the budget (a start that raises anything else, or times out).
    world.failing_start.add("BTC-USDT")
    world.dead.add(("BTC-USDT", "policy"))
    await sup.reconcile_once()
    while btc.state != "faulted":
        await restarted(sup, "BTC-USDT")
    assert sup.slots["ETH-USDT"].state == "running"


async def test_a_database_that_refuses_us_is_a_fault_not_a_wait(store: tuple[DesiredStateStore, uuid.UUID]) -> None:
    """A wrong password or database name does not pass with time: those starts spend the budget."""
    world = World()
    sup, _, _ = supervisor(world, store, max_restarts=2, restart_backoff_sec=0.01)
    await sup.start()
    refused = StorageUnavailableError("cannot connect to db: InvalidPasswordError: password authentication failed")
    world.start_error[("BTC-USDT", "execution")] = refused
    world.dead.add(("BTC-USDT", "policy"))
    await sup.reconcile_once()
    btc = sup.slots["BTC-USDT"]
    while btc.state != "faulted":
        await restarted(sup, "BTC-USDT")
    assert btc.waiting_on is None


class AwayStore:
    """The real desired-state store behind a database that can be away (its writes refused)."""

    def __init__(self, real: DesiredStateStore) -> None:
        self.real, self.away = real, False

    async def load(self, run_id: uuid.UUID) -> dict[str, DesiredState]:
        return await self.real.load(run_id)

    async def save(
        self, run_id: uuid.UUID, states: Mapping[str, DesiredState], updated_by: str
    ) -> dict[str, DesiredState]:
        if self.away:
            raise ConnectionRefusedError(111, "Connect call failed")
        return await self.real.save(run_id, states, updated_by)


async def test_a_pause_during_a_database_outage_is_applied_and_stored_later_a_resume_is_refused(
    store: tuple[DesiredStateStore, uuid.UUID],
) -> None:
    world = World()
    sup, _, _ = supervisor(world, store)
    away = AwayStore(store[0])
    sup.store = away
    await sup.start()
    away.away = True
    states = await sup.set_desired("BTC-USDT", DesiredState("HALTED", "operator_pause"), "test")
    assert states == {"BTC-USDT": "HALTED"}, "applied at once, the database away"
    assert set(sup.unsaved) == {"BTC-USDT"}
    with pytest.raises(DesiredStateNotSaved):
        await sup.set_desired("BTC-USDT", DesiredState("ACTIVE"), "test")
    assert sup.desired_of("BTC-USDT").trading_state == "HALTED"
    await sup.reconcile_once()  # still away: kept
    assert set(sup.unsaved) == {"BTC-USDT"}
    away.away = False
    await sup.reconcile_once()
    assert not sup.unsaved
    stored = await store[0].load(store[1])
    assert (stored["BTC-USDT"].trading_state, stored["BTC-USDT"].reason) == ("HALTED", "operator_pause")
