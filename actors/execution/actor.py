"""The execution actor's Ray shell: restores its stage (`pipeline.execution.stage`: the pure core, the
journal and the venue) in `ready()`, then records plans in order and tells the risk guard, the
policy and the account guard about every position change.

On a live run (`LiveVenueSource` given) `ready()` first opens the venue (`pipeline.execution.live_venue`:
the account made ready for the pair), and then runs the pair's order news: each fill or end the venue
reports is booked through the inbox, in order with the plans and the operator's actions. What an
order's outcome means for the pair (unresolved, the pair or the account refused) is alerted, with the
decision's trace, and put to the risk guard, which holds the pair REDUCING or HALTED until `resume`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from actors.shell import ActorShell, Inbox, WorkerEnv, fatal
from actors.transport import AccountHandle, ActorUnavailable, Peers, PolicyHandle, RiskHandle
from domain.fills import FillRules
from domain.messages import OrderPlan, PositionReport
from domain.trading_state import TradingState
from exchange.bingx.rest import Credentials
from observability import get_logger, register_secrets
from pipeline.execution.core import ExecutionCore, FeeUnknownError, NotClosableError
from pipeline.execution.live_venue import LiveVenue, LiveVenueSource, open_live_venue, pair_state
from pipeline.execution.reconciliation import Reconciler, Reconciliation
from pipeline.execution.stage import ExecutionStage
from pipeline.execution.venue import VenueOrderUpdate
from storage.checkpoints import CheckpointStore
from storage.journal import TradingJournal
from trading.context import PairContext
from trading.paper import Trade

log = get_logger("tradingd.execution")
Operation = Callable[[], Awaitable[Any]]
PROTECT_CHECK_SEC = 2.0
"""How often a live pair checks that its protective orders fit its position (cheap: no venue call)."""
PROTECT_RETRY_MAX_SEC = 60.0


class ExecutionActor(ActorShell):
    def __init__(
        self, env: WorkerEnv, context: PairContext, rules: FillRules, live: LiveVenueSource | None = None
    ) -> None:
        super().__init__(env)
        self.context = context
        self.rules = rules
        self.live_source = live
        self.live: LiveVenue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        """A live pair's order news and its reconciliation schedule."""
        self._failed_with: tuple[str, ...] = ()
        self._untold: list[tuple[TradingState, str]] = []
        """Holds the venue's outcomes imposed while the risk guard was not ready (at start-up): it takes
        them in its own `ready()` (`take_venue_holds`)."""
        self.stage: ExecutionStage | None = None
        self.risk: RiskHandle | None = None
        self.policy: PolicyHandle | None = None
        self.account: AccountHandle | None = None
        self.inbox: Inbox[OrderPlan | tuple[Operation, asyncio.Future[Any]]] = Inbox("execution", self._handle, fatal)

    async def ready(self, peers: Peers) -> dict[str, Any]:
        self.risk, self.policy, self.account = peers.risk, peers.policy, peers.account
        if self.stage is None:
            self.database = await self.env.open_database()
            pool = self.database.pool
            if self.live_source is not None and self.live is None:
                self.live = await open_live_venue(self.live_source, self.context.pair)
                setup = self.live.setup
                log.info(
                    "live_venue_ready", pair=self.context.pair, leverage=setup.leverage,
                    margin_type=setup.margin_type, changed=list(setup.changed),
                )  # fmt: skip
            venue = None if self.live is None else self.live.venue
            protection = None if self.live is None else self.live.source.protection
            stage = ExecutionStage(
                self.context, self.rules, TradingJournal(pool), CheckpointStore(pool), venue, protection
            )
            submitted = await stage.restore()
            self.stage = stage
            core = stage.core
            if submitted:
                log.warning("intents_submitted_after_restart", pair=self.context.pair, client_order_ids=submitted)
            if core.adopted is not None:
                log.warning("position_adopted", run_id=self.context.run_id, **core.adopted.to_json())
            await self._venue_consequences(None, tell_risk=False)  # the risk guard is not ready yet
            if self.live is not None:  # fail-closed: the risk guard takes the outcome in its ready()
                await self._reconciled(await self._reconciler().run(), tell_risk=False)
            self.inbox.start()
            if self.live is not None:
                loop = asyncio.get_running_loop()
                news = self.live.news(lambda: [*stage.core.book.working, *stage.core.book.protection], self._deliver)
                for task in (loop.create_task(news.run(), name="venue-news"),
                             loop.create_task(self._reconcile_forever(), name="reconcile"),
                             loop.create_task(self._protect_forever(), name="protect")):  # fmt: skip
                    task.add_done_callback(_ended)
                    self._tasks.append(task)
            log.info("actor_ready", role="execution", pair=self.context.pair, run_id=self.context.run_id)
        return {"pid": os.getpid(), "report": self._core().report()}

    async def stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.live is not None:
            await self.live.close()
            self.live = None

    def set_account(self, account: AccountHandle) -> None:
        """The supervisor restarted the account guard: its new handle."""
        self.account = account

    def take_venue_holds(self) -> list[tuple[TradingState, str]]:
        """The risk guard's `ready()`: what the venue's outcomes at start-up impose on the pair."""
        holds, self._untold = self._untold, []
        return holds

    def report(self) -> PositionReport:
        return self._core().report()

    def rotate_credentials(self, api_key: str, secret_key: str) -> bool:
        """`tradingd secrets rotate`: this worker's redactor learns the new keys, then a live pair signs
        with them (its REST client, so its user stream's listenKey calls too, and a venue opened again);
        True when this pair signs at all (a live pair)."""
        register_secrets((api_key, secret_key))
        if self.live_source is None:
            return False
        credentials = Credentials(api_key, secret_key)
        self.live_source = replace(self.live_source, credentials=credentials)
        if self.live is not None:
            self.live.source = self.live_source
            self.live.rest.use_credentials(credentials)
        log.warning("credentials_rotated", pair=self.context.pair)
        return True

    async def on_plan(self, plan: OrderPlan) -> None:
        self.inbox.put(plan)

    async def reconcile(self) -> dict[str, Any]:
        """`ctl reconcile` (and the schedule): the book reconciled with the venue, between plans."""
        if self.live is None:
            return {"pair": self.context.pair, "ok": True, "venue": "paper", "findings": []}
        result: Reconciliation = await self._serialised(self._reconciler().run)
        await self._reconciled(result)
        return result.to_json()

    async def close_trade(self, trade_id: str) -> str:
        stage = self._stage()
        closing = str(await self._serialised(lambda: stage.close_trade(uuid.UUID(trade_id))))
        await self._venue_consequences(None)
        return closing

    async def cancel_trade(self, trade_id: str) -> list[str]:
        stage = self._stage()
        cancelled: list[str] = await self._serialised(lambda: stage.cancel_trade(uuid.UUID(trade_id)))
        return cancelled

    async def flatten(self, reason: str = "run_stopping") -> dict[str, Any]:
        """`runs stop --flatten`, `close-all` (`reason`): opening orders cancelled, the position closed
        reduce-only (see the core)."""
        stage = self._stage()
        flatness: dict[str, Any] = await self._serialised(lambda: stage.flatten(reason))
        await self._venue_consequences(None)
        return flatness

    async def breaker_tripped(self, flatten: bool) -> dict[str, Any]:
        """The account's circuit breaker tripped: the pair's opening orders cancelled (its protective stops
        stay), and with `flatten` (`account.flatten_on_trip`) its position closed reduce-only."""
        stage = self._stage()
        if flatten:
            flatness: dict[str, Any] = await self._serialised(lambda: stage.flatten("circuit_breaker"))
        else:
            await self._serialised(lambda: stage.cancel_entries("circuit_breaker"))
            flatness = self._core().flatness()
        await self._venue_consequences(None)
        return flatness

    async def flatness(self) -> dict[str, Any]:
        return self._core().flatness()

    async def status(self) -> dict[str, Any]:
        core = self._core()
        return {**core.status(), "equity": str(core.equity()), "inbox": self.inbox.status()}

    # ---------------------------------------------------------------- internals

    def _stage(self) -> ExecutionStage:
        assert self.stage is not None, "ready() first"
        return self.stage

    def _core(self) -> ExecutionCore:
        return self._stage().core

    async def _serialised(self, operation: Operation) -> Any:
        """Run an operator action between plans, never during one."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inbox.put((operation, done))
        return await done

    async def _handle(self, message: OrderPlan | tuple[Operation, asyncio.Future[Any]]) -> None:
        core = self._core()
        if isinstance(message, tuple):
            operation, done = message
            try:
                result = await operation()
                await self._closed(tuple(self._stage().take_closed()), None)
                done.set_result(result)
            except (KeyError, NotClosableError, FeeUnknownError) as error:  # nothing changed: an unknown trade, one
                # with nothing to close, news the book cannot cost
                done.set_exception(error)
                return
            except BaseException as error:  # the caller hears of it before the inbox ends the worker
                done.set_exception(error)
                raise
            self._tell(core.report())
            return
        recorded = await self._stage().on_plan(message)
        if recorded is None:
            self._tell(core.report())  # a plan decided before: the risk guard may drop what it kept for it
            return
        self._tell(recorded.report)
        await self._closed(recorded.closed_trades, message.decision.input.trace_id)
        await self._venue_consequences(message.decision.input.trace_id)
        log.info("decision", **recorded.log)

    async def _closed(self, trades: tuple[Trade, ...], trace_id: str | None) -> None:
        for trade in trades:
            if self.account is not None:  # in order: the circuit breaker counts losses in a row
                await self.account.trade_closed(trade.net_pnl, self.context.pair, str(trade.id), trace_id)

    async def _deliver(self, news: VenueOrderUpdate) -> None:
        """The venue's news of an order, booked between plans (`FeeUnknownError`: read the order)."""
        stage = self._stage()

        async def book() -> None:
            recorded = await stage.on_venue_update(news)
            if recorded is not None:
                await self._closed(recorded.closed_trades, None)

        await self._serialised(book)

    def _reconciler(self) -> Reconciler:
        assert self.live is not None
        return Reconciler(self._stage(), self.live.venue, self.live.source.external_positions)

    async def _protect_forever(self) -> None:
        """The position's protective orders brought to what it needs whenever they are not (a stop that
        could not be placed, an obsolete one whose cancel the venue refused or did not answer), without
        waiting for the venue's next news: there is never a second stop, nor none, for longer than this."""
        stage = self._stage()
        protection = stage.protection
        assert protection is not None
        wait = PROTECT_CHECK_SEC
        while True:
            await asyncio.sleep(wait)
            if stage.core.protection_settled(protection):
                wait = PROTECT_CHECK_SEC
                continue
            log.info("protection_unsettled", pair=self.context.pair, retry_sec=wait)
            await self._serialised(stage.protect)
            # Still not settled after a try (the venue refusing a stop, say): ask less often, up to a minute.
            settled = stage.core.protection_settled(protection)
            wait = PROTECT_CHECK_SEC if settled else min(wait * 2, PROTECT_RETRY_MAX_SEC)

    async def _reconcile_forever(self) -> None:
        assert self.live is not None
        while True:
            await asyncio.sleep(self.live.source.reconcile_every_sec)
            try:
                await self.reconcile()
            except ActorUnavailable as error:  # the risk guard is restarting: it reconciles again at its start
                log.warning("reconciliation_not_told", pair=self.context.pair, error=str(error))

    async def _reconciled(self, result: Reconciliation, *, tell_risk: bool = True) -> None:
        """Log a reconciliation, alert one that failed (once for the same findings), and tell the risk
        guard: a failure holds the pair HALTED, a pass lifts that hold."""
        fields = result.to_json()
        problems = tuple(result.unresolved())
        if result.ok:
            log.info("reconciled", **fields)
            self._failed_with = ()
        else:
            log.critical("reconciliation_failed", **fields)
            if problems != self._failed_with:
                message = f"{self.context.pair}: the book and the venue disagree, the pair is HALTED: " + "; ".join(
                    problems
                )
                await self.raise_alert(
                    "critical", "reconciliation_failed", message, pair=self.context.pair,
                    run_id=_uuid(self.context.run_id), details=fields,
                )  # fmt: skip
            self._failed_with = problems
        state, reason = result.hold
        if tell_risk and self.risk is not None:
            await self.risk.venue_outcome(state, reason)
        else:
            self._untold.append((state, reason))
        self._tell(self._core().report())

    async def _venue_consequences(self, trace_id: str | None, *, tell_risk: bool = True) -> None:
        """What the venue's answers since the last call mean for the pair: alerted, and put to the risk
        guard (an unresolved outcome holds it REDUCING; a refused pair or account, HALTED), or kept for
        it to take when it is not ready yet."""
        if self.live is None:
            return
        for said in self.live.venue.take_consequences():
            mapped = pair_state(said.consequence)
            if mapped is None:
                continue
            state, reason = mapped
            fields = {"client_order_id": said.client_order_id, "venue_said": said.reason, "trading_state": state}
            log.critical(reason, pair=self.context.pair, trace_id=trace_id, **fields)
            message = (
                f"{self.context.pair}: order {said.client_order_id}: {said.reason}; the pair is {state} "
                "until `tradingd ctl resume` after the order is checked on the venue"
            )
            await self.raise_alert(
                "critical", reason, message, pair=self.context.pair, run_id=_uuid(self.context.run_id),
                trace_id=trace_id, details=fields,
            )  # fmt: skip
            if tell_risk and self.risk is not None:
                await self.risk.venue_outcome(state, reason)
            else:
                self._untold.append((state, reason))

    def _tell(self, report: PositionReport) -> None:
        for peer in (self.risk, self.policy, self.account):
            if peer is not None:
                peer.report(report)


def _ended(task: asyncio.Task[None]) -> None:
    """A live pair's order news or reconciliation schedule ended other than by `stop_tasks`: the pair
    cannot trade safely without it, so the worker ends and the supervisor restarts the pair."""
    if task.cancelled():
        return
    error = task.exception()
    fatal(error if error is not None else RuntimeError(f"{task.get_name()} ended"))


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
