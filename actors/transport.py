"""The Ray boundary: every call to an actor goes through here.

A pair's topology is data (`ROLES`, `START`, `DRAIN`): its five roles, the order they get ready in,
and which peers each is handed. Every actor is reached through a typed handle (`ExecutionHandle`,
`RiskHandle`, `PolicyHandle`, `FeaturesHandle`, `FeedHandle`, `AccountHandle`) whose async methods
send one Ray call each, over a `Channel`. `RayTransport` creates the actors and their Ray channels; the
supervisor's unit tests give it channels to plain objects instead.

Ray's errors stop here: a handle raises `ActorUnavailable` (the actor died, did not answer in time, or
the method failed in it), and nothing else of Ray reaches a caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, TypeVar

from domain.fills import FillRules
from domain.messages import MarketInput, OrderPlan, PolicyDecision, PositionReport
from domain.trading_state import TradingState
from trading.context import PairContext

if TYPE_CHECKING:
    from actors.features.actor import FeatureSource
    from actors.feed.actor import FeedSource
    from actors.shell import WorkerEnv
    from domain.candles import Candle
    from domain.market import Interval
    from pipeline.execution.live_venue import LiveVenueSource
    from pipeline.policy.source import PolicySource
    from pipeline.risk.account import AccountPolicy, AccountVerdict
    from pipeline.risk.blocks import AccountView
    from pipeline.risk.venue_equity import VenueEquitySource
    from trading.limits import RiskLimits

Role = Literal["execution", "risk", "policy", "features", "feed"]
Peer = Literal["execution", "risk", "policy", "features", "account"]
Failure = Literal["dead", "late", "failed"]
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One start-up step of a pair: `role` gets ready, handed `peers`; `slow` steps (the feed's warm-up,
    the feature actor's opening on the stored history) get twice the start-up timeout."""

    role: Role
    peers: tuple[Peer, ...]
    what: str
    slow: bool = False


ROLES: Final[tuple[Role, ...]] = ("execution", "risk", "policy", "features", "feed")
"""A pair's roles, downstream first; they are closed in the reverse order."""
START: Final[tuple[Step, ...]] = (
    Step("execution", ("risk", "policy", "account"), "execution ready"),
    Step("risk", ("execution", "account"), "risk ready"),
    Step("policy", ("risk", "execution"), "policy ready"),
    Step("feed", ("features",), "feed warm-up", slow=True),
    Step("features", ("policy",), "features ready", slow=True),
)
"""Execution restores its book first; the risk guard (HALTED until `reconciled`) restores its pauses;
the feed warms the history up before the feature actor opens on it."""
DRAIN: Final[tuple[Role, ...]] = ("features", "policy", "risk", "execution")
"""At shutdown, in-flight messages are drained upstream first, so each stage sees everything sent to it."""


class ActorUnavailable(Exception):
    """An actor call did not give an answer: the actor is `dead` (it never will), was `late` (no answer
    in time, or Ray says it is unreachable for now), or the method `failed` in it (`cause` holds the
    error it raised)."""

    def __init__(self, role: str, method: str, failure: Failure, detail: str, cause: BaseException | None = None):
        super().__init__(f"{role}.{method}: {detail}")
        self.role = role
        self.method = method
        self.failure = failure
        self.detail = detail
        self.cause = cause

    @property
    def dead(self) -> bool:
        return self.failure == "dead"


def describe(error: BaseException) -> str:
    """One line: an error's type and last line (an actor's own error, not Ray's wrapping of it)."""
    if isinstance(error, ActorUnavailable) and error.cause is not None:
        error = error.cause
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"[:500]


class Channel(Protocol):
    """How a handle reaches its actor: a call answered later, a message without answer, an end."""

    def call(self, method: str, *args: Any) -> Awaitable[Any]: ...

    def send(self, method: str, *args: Any) -> None: ...

    def kill(self) -> None: ...


class RayChannel:
    """A Ray actor handle. Picklable: handles travel to peers inside Ray calls."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def call(self, method: str, *args: Any) -> Awaitable[Any]:
        ref: Awaitable[Any] = getattr(self.actor, method).remote(*args)
        return ref

    def send(self, method: str, *args: Any) -> None:
        getattr(self.actor, method).remote(*args)

    def kill(self) -> None:
        from ray import kill
        from ray.exceptions import RayError

        with contextlib.suppress(RayError, ValueError):
            kill(self.actor, no_restart=True)


def _unavailable(role: str, method: str, error: BaseException) -> ActorUnavailable:
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

    if isinstance(error, ActorUnavailableError):
        return ActorUnavailable(role, method, "late", describe(error))
    if isinstance(error, RayActorError):
        return ActorUnavailable(role, method, "dead", describe(error))
    if isinstance(error, RayTaskError):
        cause = error.cause if isinstance(error.cause, BaseException) else error
        if isinstance(cause, ActorUnavailable):  # the actor's own call to a peer failed
            return ActorUnavailable(role, method, "failed", str(cause), cause.cause or cause)
        return ActorUnavailable(role, method, "failed", describe(cause), cause)
    return ActorUnavailable(role, method, "late", describe(error))


class Handle:
    """One actor, typed by its role's subclass."""

    role: ClassVar[str] = "actor"

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    async def _ask(self, method: str, *args: Any, wait_sec: float | None = None) -> Any:
        from ray.exceptions import RayError

        try:
            answer = self.channel.call(method, *args)
            if wait_sec is None:
                return await answer
            return await asyncio.wait_for(answer, wait_sec)
        except TimeoutError:
            raise ActorUnavailable(self.role, method, "late", f"no answer within {wait_sec:g} s") from None
        except RayError as error:
            raise _unavailable(self.role, method, error) from None

    def _tell(self, method: str, *args: Any) -> None:
        """A message that needs no answer (a position report, new candles): sent, never awaited."""
        self.channel.send(method, *args)

    async def ready(self, peers: Peers, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("ready", peers, wait_sec=wait_sec)
        return answer

    async def ping(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("ping", wait_sec=wait_sec)
        return answer

    async def close(self, *, wait_sec: float | None = None) -> None:
        await self._ask("close", wait_sec=wait_sec)

    def kill(self) -> None:
        self.channel.kill()


class StageHandle(Handle):
    """An actor with an ordered inbox and a status."""

    async def drain(self, within_sec: float, *, wait_sec: float | None = None) -> bool:
        drained: bool = await self._ask("drain", within_sec, wait_sec=wait_sec)
        return drained

    async def status(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("status", wait_sec=wait_sec)
        return answer


class AccountHandle(Handle):
    role = "account"

    def report(self, report: PositionReport) -> None:
        self._tell("on_report", report)

    async def observe(self, at_ms: int) -> AccountView:
        view: AccountView = await self._ask("observe", at_ms)
        return view

    async def view(self, *, wait_sec: float | None = None) -> AccountView:
        view: AccountView = await self._ask("view", wait_sec=wait_sec)
        return view

    async def check(self, pair: str, after: Decimal, reduces_only: bool) -> AccountVerdict:
        verdict: AccountVerdict = await self._ask("check", pair, str(after), reduces_only)
        return verdict

    async def trade_closed(self, net_pnl: Decimal, pair: str, trade_id: str, trace_id: str | None) -> None:
        await self._ask("trade_closed", str(net_pnl), pair, trade_id, trace_id)

    async def resume(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("resume", wait_sec=wait_sec)
        return answer

    async def summary(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("summary", wait_sec=wait_sec)
        return answer

    async def save(self, *, wait_sec: float | None = None) -> None:
        await self._ask("save", wait_sec=wait_sec)

    async def rotate_credentials(self, api_key: str, secret_key: str, *, wait_sec: float | None = None) -> bool:
        """The account's new keys: the venue's equity is read with them from now on; False on paper."""
        swapped: bool = await self._ask("rotate_credentials", api_key, secret_key, wait_sec=wait_sec)
        return swapped


class ExecutionHandle(StageHandle):
    role = "execution"

    async def report_now(self, *, wait_sec: float | None = None) -> PositionReport:
        report: PositionReport = await self._ask("report", wait_sec=wait_sec)
        return report

    async def reconcile(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        """The pair's book reconciled with its venue now (`Reconciliation.to_json()`)."""
        result: dict[str, Any] = await self._ask("reconcile", wait_sec=wait_sec)
        return result

    async def take_venue_holds(self, *, wait_sec: float | None = None) -> list[tuple[TradingState, str]]:
        """What the live venue's outcomes at execution's start impose on the pair (taken once)."""
        holds: list[tuple[TradingState, str]] = await self._ask("take_venue_holds", wait_sec=wait_sec)
        return holds

    async def on_plan(self, plan: OrderPlan) -> None:
        await self._ask("on_plan", plan)

    def set_account(self, account: AccountHandle) -> None:
        self._tell("set_account", account)

    async def breaker_tripped(self, flatten: bool, *, wait_sec: float | None = None) -> dict[str, Any]:
        """The account's breaker tripped: opening orders cancelled, and the position closed with `flatten`."""
        flatness: dict[str, Any] = await self._ask("breaker_tripped", flatten, wait_sec=wait_sec)
        return flatness

    async def rotate_credentials(self, api_key: str, secret_key: str, *, wait_sec: float | None = None) -> bool:
        """The account's new keys (`tradingd secrets rotate`); True when this pair signs with them (live)."""
        swapped: bool = await self._ask("rotate_credentials", api_key, secret_key, wait_sec=wait_sec)
        return swapped

    async def close_trade(self, trade_id: str, *, wait_sec: float | None = None) -> str:
        order: str = await self._ask("close_trade", trade_id, wait_sec=wait_sec)
        return order

    async def cancel_trade(self, trade_id: str, *, wait_sec: float | None = None) -> list[str]:
        cancelled: list[str] = await self._ask("cancel_trade", trade_id, wait_sec=wait_sec)
        return cancelled

    async def flatten(self, reason: str = "run_stopping", *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("flatten", reason, wait_sec=wait_sec)
        return answer

    async def flatness(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("flatness", wait_sec=wait_sec)
        return answer


class RiskHandle(StageHandle):
    role = "risk"

    def report(self, report: PositionReport) -> None:
        self._tell("on_report", report)

    async def on_decision(self, decision: PolicyDecision) -> None:
        await self._ask("on_decision", decision)

    def set_account(self, account: AccountHandle) -> None:
        self._tell("set_account", account)

    async def operator(self, state: TradingState, reason: str | None, *, wait_sec: float | None = None) -> str:
        """The operator's desired state for the pair (ACTIVE, REDUCING or HALTED with its reason)."""
        trading_state: str = await self._ask("operator", state, reason, wait_sec=wait_sec)
        return trading_state

    async def pause(self, reason: str, reduce_only: bool, *, wait_sec: float | None = None) -> str:
        trading_state: str = await self._ask("pause", reason, reduce_only, wait_sec=wait_sec)
        return trading_state

    async def venue_outcome(self, state: TradingState, reason: str, *, wait_sec: float | None = None) -> str:
        """An order's outcome on the live venue holds the pair (REDUCING or HALTED, until `resume`)."""
        trading_state: str = await self._ask("venue_outcome", state, reason, wait_sec=wait_sec)
        return trading_state

    async def settled(self, timeout_sec: float, *, wait_sec: float | None = None) -> bool:
        """True once no decision planned before this call is still on its way to execution."""
        done: bool = await self._ask("settled", timeout_sec, wait_sec=wait_sec)
        return done

    async def resume(self, account: AccountView | None, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("resume", account, wait_sec=wait_sec)
        return answer

    async def reconciled(self, *, wait_sec: float | None = None) -> str:
        trading_state: str = await self._ask("reconciled", wait_sec=wait_sec)
        return trading_state

    async def source(
        self, stale: bool, silent_sec: float | None, limit_sec: float, *, wait_sec: float | None = None
    ) -> str:
        trading_state: str = await self._ask("source", stale, silent_sec, limit_sec, wait_sec=wait_sec)
        return trading_state

    def halt_for_shutdown(self) -> None:
        self._tell("halt_for_shutdown")


class PolicyHandle(StageHandle):
    role = "policy"

    def report(self, report: PositionReport) -> None:
        self._tell("on_report", report)

    async def on_input(self, market: MarketInput) -> None:
        await self._ask("on_input", market)


class FeaturesHandle(StageHandle):
    role = "features"

    def candles(self, candles: list[Candle]) -> None:
        self._tell("on_candles", candles)


class FeedHandle(Handle):
    role = "feed"

    async def status(self, *, wait_sec: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._ask("status", wait_sec=wait_sec)
        return answer

    async def backfill(self, interval: Interval, bars: int, *, wait_sec: float | None = None) -> int:
        stored: int = await self._ask("backfill", interval, bars, wait_sec=wait_sec)
        return stored


@dataclass(frozen=True)
class Peers:
    """What an actor is handed in `ready()`: the peers `START` names for its role, the rest None."""

    execution: ExecutionHandle | None = None
    risk: RiskHandle | None = None
    policy: PolicyHandle | None = None
    features: FeaturesHandle | None = None
    account: AccountHandle | None = None

    def get(self, name: str, kind: type[T]) -> T:
        handle = getattr(self, name)
        if not isinstance(handle, kind):
            raise TypeError(f"the topology hands no {name} peer here")
        return handle


@dataclass
class PairActors:
    execution: ExecutionHandle
    risk: RiskHandle
    policy: PolicyHandle
    features: FeaturesHandle
    feed: FeedHandle

    def __getitem__(self, role: Role) -> Handle:
        handle: Handle = getattr(self, role)
        return handle

    def peers(self, names: tuple[Peer, ...], account: AccountHandle | None) -> Peers:
        handles: Mapping[str, Handle | None] = {
            "execution": self.execution,
            "risk": self.risk,
            "policy": self.policy,
            "features": self.features,
            "account": account,
        }
        return Peers(**{name: handles[name] for name in names})  # type: ignore[arg-type]

    def kill(self) -> None:
        for role in ROLES:
            self[role].kill()


@dataclass(frozen=True)
class PairPlan:
    """Everything a pair's actors are built from."""

    context: PairContext
    rules: FillRules
    limits: RiskLimits
    policy: PolicySource
    features: FeatureSource
    feed: FeedSource
    enforce_provenance: bool
    live: LiveVenueSource | None = None
    """A live run's way to the venue; None: paper."""

    @property
    def pair(self) -> str:
        return self.context.pair


class Transport(Protocol):
    """Creates actors: the supervisor's one dependency on how they run."""

    def account(
        self, env: WorkerEnv, policy: AccountPolicy, venue: VenueEquitySource | None = None
    ) -> AccountHandle: ...

    def pair(self, env: WorkerEnv, plan: PairPlan) -> PairActors: ...


class RayTransport:
    """Each actor a Ray actor of its own (no CPU reserved, never restarted by Ray: the supervisor does)."""

    def account(self, env: WorkerEnv, policy: AccountPolicy, venue: VenueEquitySource | None = None) -> AccountHandle:
        from actors.risk.actor import AccountActor

        return AccountHandle(RayChannel(_remote(AccountActor).remote(env, policy, venue)))

    def pair(self, env: WorkerEnv, plan: PairPlan) -> PairActors:
        from actors.execution.actor import ExecutionActor
        from actors.features.actor import FeatureActor
        from actors.feed.actor import FeedActor
        from actors.policy.actor import PolicyActor
        from actors.risk.actor import RiskActor

        context = plan.context
        return PairActors(
            execution=ExecutionHandle(RayChannel(_remote(ExecutionActor).remote(env, context, plan.rules, plan.live))),
            risk=RiskHandle(RayChannel(_remote(RiskActor).remote(env, context, plan.limits, plan.rules))),
            policy=PolicyHandle(
                RayChannel(_remote(PolicyActor).remote(env, context, plan.policy, plan.enforce_provenance, plan.rules))
            ),
            features=FeaturesHandle(RayChannel(_remote(FeatureActor).remote(env, context, plan.features))),
            feed=FeedHandle(RayChannel(_remote(FeedActor).remote(env, context.pair, plan.feed))),
        )


_REMOTE: dict[type, Any] = {}


def _remote(cls: type) -> Any:
    """The Ray actor class of one of ours (made once per process). Without task events: Ray records every
    method call in its GCS for the state API and dashboard (up to 100,000 of them, a few KB each), and each
    candle is several calls, so the GCS grew for a day of candles (docs/reliability.md, the soak) for a
    record nothing here reads; failures still arrive as errors on the calls."""
    if cls not in _REMOTE:
        import ray

        options: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0, "enable_task_events": False}  # not in Ray's stubs
        _REMOTE[cls] = ray.remote(**options)(cls)
    return _REMOTE[cls]
