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
from pipeline.execution.core import ROLE, STATE_VERSION, ExecutionCore, Recorded, Step, operator_trace
from pipeline.execution.venue import PaperVenue, Venue, VenueOrderUpdate
from storage.checkpoints import ActorState, CheckpointStore
from storage.journal import TradingJournal
from trading.context import PairContext
from trading.paper import WorkingOrder


class ExecutionStage:
    def __init__(
        self,
        context: PairContext,
        rules: FillRules,
        journal: TradingJournal,
        checkpoints: CheckpointStore,
        venue: Venue | None = None,
    ) -> None:
        self.venue: Venue = venue if venue is not None else PaperVenue()
        self.core = ExecutionCore(context, rules, self.venue)
        self.journal = journal
        self.state = ActorState(checkpoints, self.core.key, ROLE, context.pair, STATE_VERSION)
        self.run_id = uuid.UUID(context.run_id)
        self.pair = context.pair

    async def restore(self) -> list[str]:
        """Load the checkpoint (or adopt a position a stopped run handed over), claim the pair, then
        finish what a crash interrupted: every intent left unsent is submitted (paper has no venue to
        ask). Returns the client order ids submitted now."""
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
        return await self._submit(core.reconcile({w.client_order_id: w.state for w in unfinished}))

    async def on_plan(self, plan: OrderPlan) -> Recorded | None:
        """Record a plan, then submit its orders; None when its candle was decided before (nothing
        changes then)."""
        step = self.core.on_plan(plan)
        if step is None or not await self._write(step):
            return None
        await self._submit(list(step.submit))
        return Recorded(self.core.report(), step.closed_trades, step.log)

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
            step, asked = self.core.request_cancel(orders, reason)
            await self._write(step)
            news = await self.venue.cancel(asked, reason)
            cancelled = []
            for update in news:
                await self.on_venue_update(update)
                if update.state in ("cancelled", "expired"):
                    cancelled.append(update.client_order_id)
            return cancelled
        step = in_book()
        await self._write(step)
        assert isinstance(step.answer, tuple)
        return list(step.answer)

    async def close_trade(self, trade_id: uuid.UUID) -> str:
        """An operator's reduce-only exit of the open trade (see `ExecutionCore.close_trade`)."""
        step = self.core.close_trade(trade_id, await self.journal.orders_traced(operator_trace(trade_id)))
        await self._write(step)
        await self._submit(list(step.submit))
        assert isinstance(step.answer, str)
        return step.answer

    async def flatten(self) -> dict[str, Any]:
        """`runs stop --flatten`: cancel every order that would open or add, then close what is held with a
        reduce-only market order (`close_trade`: one order however often asked). Returns the position and
        what is still working, so the caller can wait until the pair is flat."""
        await self._cancel(self.core.opening_orders(), "run_stopping", self.core.cancel_opening)
        trade_id = self.core.left_to_close()
        if trade_id is not None:
            await self.close_trade(trade_id)
        return self.core.flatness()

    async def on_venue_update(self, update: VenueOrderUpdate) -> Recorded | None:
        """Book a live venue's news of one of our orders (a fill, a cancel, a state step); None when it
        says nothing new."""
        step = self.core.on_venue_update(update)
        if step is None or not await self._write(step):
            return None
        return Recorded(self.core.report(), step.closed_trades, {})

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

    async def _submit(self, orders: list[WorkingOrder]) -> list[str]:
        """Send orders whose intents are committed; the venue's answers are written as the next step."""
        if not orders:
            return []
        answers = await self.venue.submit(orders)
        await self._write(self.core.submitted(answers))
        for news in self.venue.take_news():
            await self.on_venue_update(news)
        return [order.client_order_id for order in orders]
