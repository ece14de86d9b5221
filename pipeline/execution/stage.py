"""The execution stage's I/O: the pure core's steps written through the journal, then sent to the venue.

Every step the core returns is written in one transaction with the execution checkpoint (the core's
`to_json()`, fenced by `ActorState`); only once it is written do its orders go to the venue, and the
venue's answers are written as the next step. On any failure, and when the journal refuses a candle
decided before, the core is told (`rejected`) and its book is as it was. The Ray actor
(`actors.execution.actor`) holds one stage; the integration tests drive one directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from domain.fills import FillRules
from domain.messages import OrderPlan
from observability import get_logger
from pipeline.execution.core import ROLE, STATE_VERSION, ExecutionCore, Recorded, Step, operator_trace
from pipeline.execution.venue import PaperVenue, ProtectiveVenue, Venue, VenueOrderUpdate, VenueStep
from storage.checkpoints import ActorState, CheckpointStore
from storage.funding_rates import FundingRateStore
from storage.journal import TradingJournal
from trading.context import PairContext
from trading.paper import EXIT_CANCELS_ENTRY, Trade, WorkingOrder
from trading.protection import ProtectionRule

log = get_logger("tradingd.execution")


class ExecutionStage:
    def __init__(
        self,
        context: PairContext,
        rules: FillRules,
        journal: TradingJournal,
        checkpoints: CheckpointStore,
        venue: Venue | None = None,
        protection: ProtectionRule | None = None,
    ) -> None:
        self.venue: Venue = venue if venue is not None else PaperVenue()
        self.protection = protection
        """A live venue's protective orders for every position (`protect`); None: none (paper)."""
        self._closed: list[Trade] = []
        self.core = ExecutionCore(context, rules, self.venue)
        self.journal = journal
        self.funding = FundingRateStore(journal.pool)
        self.state = ActorState(checkpoints, self.core.key, ROLE, context.pair, STATE_VERSION)
        self.run_id = uuid.UUID(context.run_id)
        self.pair = context.pair

    async def restore(self) -> list[str]:
        """Load the checkpoint (or adopt a position a stopped run handed over), claim the pair, then
        finish what a crash interrupted: every intent the journal shows unsent is submitted, a live venue
        asked first whether it has it (the crash may have come between the submit and its answer).
        Returns the client order ids submitted (or found booked) now."""
        core = self.core
        saved = await self.state.load()
        await self.state.claim()
        if saved is not None and "book" in saved.state:
            core.restore(saved.state, saved.sequence)
        else:
            adopted: dict[str, Any] = {}

            def adopting(handed_over: Any) -> Any:
                adopted["state"] = core.adopting(handed_over)
                return self.state.checkpoint(adopted["state"], 0)

            core.adopted = await self.journal.adopt(self.run_id, self.pair, adopting)
            if core.adopted is not None:
                core.restore(adopted["state"])
        unfinished = await self.journal.unfinished(self.run_id, self.pair)
        unsent = core.reconcile({w.client_order_id: w.state for w in unfinished})
        await self._submit(unsent, after_restart=True)
        submitted = [order.client_order_id for order in unsent]
        if isinstance(self.venue, ProtectiveVenue):
            self.venue.protective_ids.update(
                {p.client_order_id: p.exchange_order_id for p in core.book.protection.values() if p.exchange_order_id}
            )
        return submitted

    async def on_plan(self, plan: OrderPlan) -> Recorded | None:
        """Record a plan, then submit its orders; None when its candle was decided before (nothing
        changes then)."""
        ended: list[str] = []  # why each of a live venue's entries was cancelled before the plan
        for reason, orders in self.core.resting_to_cancel(plan):
            ended += [reason for _ in await self._cancel_on_venue(orders, reason)]
        step = self.core.on_plan(plan, await self._funding_rates(plan))
        if step is None or not await self._write(step):
            return None
        await self._submit(list(step.submit))
        await self.protect()
        log = {**step.log, "limit_ended": [*step.log.get("limit_ended", ()), *ended]} if ended else step.log
        return Recorded(self.core.report(), (*step.closed_trades, *self.take_closed()), log)

    async def _funding_rates(self, plan: OrderPlan) -> dict[int, Decimal]:
        """The stored rates of the funding times the plan's step may pay. A read that fails pays nothing
        now: what is due stays due, for a later plan (the step's own write reports an outage)."""
        wanted = self.core.funding_wanted(plan)
        if not wanted or plan.decision.input.sequence <= self.core.last_sequence:
            return {}
        try:
            return await self.funding.rates(self.pair, wanted)
        except Exception as error:
            log.warning("funding_rates_unread", pair=self.pair, times=wanted, error=f"{type(error).__name__}: {error}")
            return {}

    async def cancel_trade(self, trade_id: uuid.UUID, reason: str = "operator_cancel") -> list[str]:
        """Cancel the working orders of a trade; the client order ids cancelled."""
        orders = self.core.trade_orders(trade_id)
        return await self._cancel(orders, reason, lambda: self.core.cancel_trade(trade_id, reason))

    async def _cancel(self, orders: list[WorkingOrder], reason: str, in_book: Callable[[], Step]) -> list[str]:
        """Cancel `orders`: in the book on paper (`in_book`), through the venue on a live one (each
        `cancel_requested` first, then booked on the venue's word, which may be that it filled). The
        client order ids cancelled; on a live venue, an order it did not answer for stays requested
        (its news, or the next read of the working orders, ends it)."""
        if not orders:
            return []
        if self.venue.holds_orders:
            return await self._cancel_on_venue(orders, reason)
        step = in_book()
        await self._write(step)
        assert isinstance(step.answer, tuple)
        return list(step.answer)

    async def _cancel_on_venue(self, orders: list[WorkingOrder], reason: str) -> list[str]:
        """A live venue's cancel: each order `cancel_requested` (written first), then booked on the venue's
        word; the client order ids it cancelled (one that filled first is booked filled)."""
        step, asked = self.core.request_cancel(orders, reason)
        await self._write(step)
        cancelled = []
        for update in await self.venue.cancel(asked, reason):
            await self.on_venue_update(update)
            if update.state in ("cancelled", "expired"):
                cancelled.append(update.client_order_id)
        return cancelled

    async def close_trade(self, trade_id: uuid.UUID) -> str:
        """An operator's reduce-only exit of the open trade (see `ExecutionCore.close_trade`). An entry of
        the trade still resting is cancelled first, as an exit cancels it in the limit fill model: filled
        after the exit, it would open what the operator closed."""
        core = self.core
        resting = [o for o in core.book.resting_entries() if o.trade_id == trade_id]
        if resting and core.book.position.quantity != 0:
            await self._cancel(resting, EXIT_CANCELS_ENTRY, lambda: core.cancel_orders(resting, EXIT_CANCELS_ENTRY))
        step = self.core.close_trade(trade_id, await self.journal.orders_traced(operator_trace(trade_id)))
        await self._write(step)
        await self._submit(list(step.submit))
        await self.protect()
        assert isinstance(step.answer, str)
        return step.answer

    async def cancel_entries(self, reason: str) -> list[str]:
        """Cancel every order that would open or add (the breaker tripped, a flatten's first step); the
        client order ids cancelled."""
        return await self._cancel(self.core.opening_orders(), reason, lambda: self.core.cancel_opening(reason))

    async def flatten(self, reason: str = "run_stopping") -> dict[str, Any]:
        """`runs stop --flatten`, `close-all`, a breaker with `flatten_on_trip`: cancel every order that
        would open or add, then close what is held with a reduce-only market order (`close_trade`: one
        order however often asked). Returns the position and what is still working, so the caller can
        wait until the pair is flat."""
        await self.cancel_entries(reason)
        trade_id = self.core.left_to_close()
        if trade_id is not None:
            await self.close_trade(trade_id)
        return self.core.flatness()

    async def on_venue_update(self, update: VenueOrderUpdate) -> Recorded | None:
        """Book a live venue's news of one of our orders (a fill, a cancel, a state step), then make the
        position's protective orders fit it; None when it says nothing new."""
        if not await self._book_news(update):
            return None
        await self.protect()
        return Recorded(self.core.report(), tuple(self.take_closed()), {})

    def take_closed(self) -> list[Trade]:
        """The trades a live venue's news closed since last asked (outside a plan: a close-trade's fill,
        a stop triggered, a cancel that found the order filled), for the account guard."""
        closed, self._closed = self._closed, []
        return closed

    async def _book_news(self, update: VenueOrderUpdate) -> bool:
        step = self.core.on_venue_update(update)
        if step is None or not await self._write(step):
            return False
        self._closed += step.closed_trades
        return True

    async def protect(self) -> None:
        """A live venue's protective orders made to fit the position (`ExecutionCore.protect`): missing
        ones placed (or found on the venue, sent before), and only once every one is there, those that
        no longer fit cancelled: the position is never without its stop. Nothing on paper."""
        venue = self.venue
        if self.protection is None or not isinstance(venue, ProtectiveVenue):
            return
        planned = self.core.protect(self.protection)
        if planned.step is not None:
            await self._write(planned.step)
        if planned.send:
            claimed = {p.exchange_order_id for p in self.core.book.protection.values() if p.exchange_order_id}
            answers = await venue.place_protective(planned.send, claimed)
            if answers:
                await self._write(self.core.protective_steps(answers))
        sent = [self.core.book.protection.get(p.client_order_id) for p in planned.send]
        if any(p is None or p.state != "accepted" for p in sent) and self.core.book.position.quantity != 0:
            return  # not all on the venue: the old ones stay until the next try
        obsolete = [p for p in planned.obsolete if p.exchange_order_id is not None and p.state == "accepted"]
        # A cancel asked before whose answer was lost (and the read after it failed) is asked again.
        again = [p for p in self.core.book.protection.values() if p.state == "cancel_requested" and p.exchange_order_id]
        if not obsolete and not again:
            return
        if obsolete:
            asked = [VenueStep(p.client_order_id, "cancel_requested", "protection_moved", {"venue": venue.name})
                     for p in obsolete]  # fmt: skip
            await self._write(self.core.protective_steps(asked))
        for update in await venue.cancel_protective([*obsolete, *again]):
            if update.state == "accepted" and update.filled == 0:
                continue  # still open on the venue (the cancel was refused or lost): stays requested, asked again
            await self._book_news(update)

    async def mark_absent(self, client_order_id: str, evidence: dict[str, Any]) -> None:
        """Reconciliation proved an unanswered order absent on the venue (`ExecutionCore.absent`)."""
        await self._write(self.core.absent(client_order_id, evidence))

    async def adopt_external(self, quantity: Decimal, entry_price: Decimal, at_ms: int, trade_id: uuid.UUID) -> None:
        """Reconciliation adopts a venue position the book did not know (`ExecutionCore.adopt_external`)."""
        await self._write(self.core.adopt_external(quantity, entry_price, at_ms, trade_id))

    async def _write(self, step: Step) -> bool:
        """Write a step with the checkpoint in one transaction; False when the journal refused it as
        decided before. The core's book stands only when this returns True."""
        if step.commit is None:
            self.core.recorded(step)
            return True
        try:
            checkpoint = self.state.checkpoint(self.core.to_json(), step.sequence)
            written = await self.journal.commit(replace(step.commit, checkpoint=checkpoint))
        except BaseException:
            self.core.rejected()
            raise
        if not written:
            self.core.rejected()
            return False
        self.core.recorded(step)
        return True

    async def _submit(self, orders: list[WorkingOrder], *, after_restart: bool = False) -> None:
        """Send orders whose intents are committed, one at a time: each one's answers are written as a step
        of their own, then what the venue told beyond them (a live venue's fills), before the next is sent
        (a crash, or a venue that stops answering, never leaves an answer heard but not recorded behind
        the next order's wait)."""
        for order in orders:
            answers = await self.venue.submit([order], after_restart=after_restart)
            await self._write(self.core.submitted(answers))
            for news in self.venue.take_news():
                await self._book_news(news)
