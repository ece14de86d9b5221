"""The execution stage's core: record every decision once, with its orders, against the book. Pure and
synchronous: no journal, no checkpoint store, no clock it is not given; it returns what to write.

For each plan (one per final candle, in order) `on_plan` lets the venue fill the working orders at
this candle's open, places the new order intents in the book, and returns one `Step`: the records to
write together (the decision, its input snapshot, the intents, the trades, the execution updates, the
metrics; the stage adds the checkpoint, `to_json()`) and the orders to submit once they are written.
The stage (`pipeline.execution.stage`) writes the step in one transaction and then calls `recorded`; on
any failure, or when the journal refuses a candle decided before, it calls `rejected`, which rewinds
the book to what it was. Operator actions (cancel a trade, close it, flatten) are steps the same way.
Submitting is the stage's: after the intents are committed it sends them to the venue and hands the
venue's answers to `submitted`, another step (intent -> submitted -> accepted). A restart restores
the book from the checkpoint (`restore`) and `reconcile` names the intents a crash left unsent.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from domain.candles import interval_ms
from domain.fills import Fill, FillRules, Position
from domain.funding import funding_times_within
from domain.messages import OrderIntent, OrderPlan, PolicyDecision, PositionReport
from domain.orders import FINAL_STATES, OrderState, client_order_id, transition
from pipeline.execution.metrics import MetricSummary
from pipeline.execution.venue import PaperVenue, Venue, VenueOrderUpdate, VenueStep
from storage.records import (
    Adopted,
    Commit,
    DecisionRow,
    ExecutionRow,
    ExecutionUpdate,
    FundingRow,
    MetricRow,
    SnapshotRow,
    TradeRow,
)
from trading.context import PairContext
from trading.paper import (
    EXIT_CANCELS_ENTRY,
    LIMIT_EXPIRED,
    SUPERSEDED,
    BookEvent,
    OrderCancelled,
    OrderFilled,
    PaperBook,
    Trade,
    WorkingOrder,
)
from trading.protection import Protection, ProtectionRule, ProtectiveOrder, wanted

ROLE = "execution"


class NotClosableError(ValueError):
    """An operator's close of a trade that exists but holds nothing to close yet (its opening order is
    working: cancel it instead) or is closing already."""


class FeeUnknownError(ValueError):
    """The stream told of more filled than its newest fill: the fee of what it missed is known only from a
    read of the order (its totals)."""


STATE_VERSION = 1


@dataclass(frozen=True)
class Recorded:
    """What a plan did, for the stage to pass on: the position report, the trades it closed (the account
    guard counts them), and the canonical decision log line."""

    report: PositionReport
    closed_trades: tuple[Trade, ...]
    log: dict[str, Any]


@dataclass(frozen=True)
class Step:
    """What one call of the core changed, to be written all or nothing before anything else happens."""

    commit: Commit | None
    """The rows to write with the checkpoint (`to_json()` at `sequence`); None: nothing to write."""
    sequence: int
    """The checkpoint's sequence: the plan's candle, or the last one decided."""
    submit: tuple[WorkingOrder, ...] = ()
    """Orders to send to the venue once the step is written (their intents are in `commit`)."""
    closed_trades: tuple[Trade, ...] = ()
    log: dict[str, Any] = field(default_factory=dict)
    """A plan's decision log line."""
    answer: str | tuple[str, ...] | None = None
    """An operator action's answer (the client order ids cancelled, the closing order's id)."""


CANCELLABLE: frozenset[OrderState] = frozenset({"accepted", "partially_filled", "cancel_requested"})
"""The states in which a live venue holds an order we may ask it to cancel."""


def operator_trace(trade_id: uuid.UUID) -> str:
    """The trace an operator's closes of one trade share (their count makes each close's order id new)."""
    return f"operator.{trade_id}"


@dataclass
class ExecutionCore:
    context: PairContext
    rules: FillRules
    venue: Venue = field(default_factory=PaperVenue)
    book: PaperBook = field(init=False)
    mark: Decimal = Decimal(0)
    last_sequence: int = -1
    version: int = 0
    clock: Callable[[], float] = time.time
    adopted: Adopted | None = None
    """The position this run took over from a stopped one at start (`runs stop --keep`), if any."""
    metrics: MetricSummary = field(default_factory=MetricSummary, repr=False)
    """What was recorded in `observability_metrics` since the actor started, summarised."""
    _undo: tuple[dict[str, Any], Decimal] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.book = PaperBook(self.context.pair, self.rules)

    @property
    def key(self) -> str:
        return self.context.actor_key(ROLE)

    # ---------------------------------------------------------------- state

    def to_json(self) -> dict[str, Any]:
        """The checkpoint document (version `STATE_VERSION`): the book and the mark."""
        return {"book": self.book.to_json(), "mark": str(self.mark)}

    def restore(self, document: Mapping[str, Any], sequence: int | None = None) -> None:
        """The book and mark of a checkpoint; `sequence`, the last candle it decided (None: a hand-over,
        which decided nothing of this run)."""
        self.book = PaperBook.from_json(self.context.pair, self.rules, dict(document["book"]))
        self.mark = Decimal(document["mark"])
        if sequence is not None:
            self.last_sequence = sequence

    def adopting(self, handed_over: Mapping[str, Any]) -> dict[str, Any]:
        """This run's first checkpoint document from a stopped run's book (`runs stop --keep`): the
        position, its open trade and working orders as they were; the run's own realised PnL and fees
        start at zero."""
        book = PaperBook.from_json(self.context.pair, self.rules, dict(handed_over["book"]))
        book.position.realised = Decimal(0)
        book.position.fees = Decimal(0)
        book.position.funding = Decimal(0)
        return {"book": book.to_json(), "mark": str(handed_over["mark"])}

    def reconcile(self, recorded: Mapping[str, OrderState]) -> list[WorkingOrder]:
        """After a restore: each working order takes the state the journal recorded for it (a recorded
        state newer than the checkpoint's wins); returns the intents a crash left unsent."""
        for order in self.book.working.values():
            if order.client_order_id in recorded:
                order.state = recorded[order.client_order_id]
        for protective in self.book.protection.values():
            if protective.client_order_id in recorded:
                protective.state = recorded[protective.client_order_id]
        return [o for o in self.book.working.values() if o.state == "intent"]

    # ---------------------------------------------------------------- the step protocol

    def recorded(self, step: Step) -> None:
        """The stage wrote `step`: it stands."""
        self.last_sequence = max(self.last_sequence, step.sequence)
        self._undo = None
        if step.commit is not None:
            self.metrics.observe(step.commit.metrics)

    def rejected(self) -> None:
        """The stage could not write the pending step (or the journal refused it): rewind the book."""
        if self._undo is not None:
            book, mark = self._undo
            self.book = PaperBook.from_json(self.context.pair, self.rules, book)
            self.mark = mark
            self._undo = None

    def _begin(self) -> None:
        if self._undo is not None:
            raise RuntimeError("a step is pending: recorded() or rejected() first")
        self._undo = (self.book.to_json(), self.mark)

    def _pending(self, build: Callable[[], Step]) -> Step:
        self._begin()
        try:
            return build()
        except BaseException:
            self.rejected()
            raise

    # ---------------------------------------------------------------- plans

    def on_plan(self, plan: OrderPlan, rates: Mapping[int, Decimal] | None = None) -> Step | None:
        """A plan's step; None when its candle was decided before (nothing changes then). `rates`: the
        venue's funding rates the stage found for `funding_wanted(plan)`, by funding time."""
        if plan.decision.input.sequence <= self.last_sequence:
            return None  # the checkpoint, written with each decision, says this candle was decided
        return self._pending(lambda: self._plan(plan, dict(rates or {})))

    def funding_wanted(self, plan: OrderPlan) -> list[int]:
        """The funding times whose rates the plan's step may pay: those still due, and those the plan's
        candle holds (`domain.funding`)."""
        held = self._funding_times(plan.decision.input.candle.open_time_ms)
        return sorted({*(due.time_ms for due in self.book.funding_due), *held})

    def _funding_times(self, open_ms: int) -> list[int]:
        """The funding times the run's candle opening at `open_ms` holds."""
        return funding_times_within(open_ms, interval_ms(self.context.interval))

    def _plan(self, plan: OrderPlan, rates: dict[int, Decimal]) -> Step:
        decision = plan.decision
        market = decision.input
        trades: dict[uuid.UUID, Trade] = {}
        funding = self._pay_funding(rates, trades)  # times held through before this candle, rates now known
        events = self.venue.fills(self.book, market.candle)
        self.mark = Decimal(repr(market.candle.close))
        updates = self._event_updates(events, trades)
        # The position held through this candle (after its fills) pays the funding times it holds.
        for time_ms in self._funding_times(market.candle.open_time_ms):
            self.book.owe_funding(time_ms, self.mark)
        funding += self._pay_funding(rates, trades)
        if (plan.cancels_resting or plan.orders) and not self.venue.holds_orders:
            # An exit is due, or new orders come while an entry rests (the risk guard waits while one
            # rests, so only after it lost track of it): the entry must not fill after them. A live
            # venue's entries were asked to cancel before the plan (`resting_to_cancel`); one it did not
            # answer for stays requested, for its news or the next read to end.
            reason = EXIT_CANCELS_ENTRY if plan.cancels_resting else SUPERSEDED
            cancelled = [self.book.cancel(o.client_order_id, reason) for o in self.book.resting_entries()]
            updates += self._event_updates(list(cancelled), trades)
            events = [*events, *cancelled]
        placed: list[WorkingOrder] = []
        skipped: list[str] = []
        unfit: str | None = None
        for intent in plan.orders:
            if intent.reduce_only and not self._reducible(intent):
                # On a live venue the position moves between the plan and here (a stop the venue triggered,
                # booked from its news): a close of what is no longer held is not sent.
                skipped.append(intent.client_order_id)
                continue
            try:
                order, trade, _ = self.book.place(
                    intent, market.sequence, market.candle.open_time_ms, self.context.limit_rules
                )
            except ValueError as error:
                # The plan was made on a position the book no longer holds (a live fill booked after the
                # risk guard planned): this leg and the ones after it are not sent; the next plan is made
                # on the position as it is now.
                unfit = str(error)
                break
            placed.append(order)
            trades[trade.id] = trade
        latency_ms = max(0.0, (self.clock() - market.final_at) * 1000)
        commit = Commit(
            decision=self._decision_row(plan, latency_ms),
            snapshot=_snapshot_row(decision),
            trades=[self._trade_row(t) for t in trades.values()],
            new_executions=[self._execution_row(o, market.trace_id) for o in placed],
            updates=updates,
            metrics=self._metrics(plan, events, latency_ms),
            funding=funding,
        )
        closed = tuple(t for t in trades.values() if t.status == "closed")
        log = self._log_line(plan, events, placed, latency_ms)
        if funding:
            log["funding"] = {str(row.funding_time_ms): str(row.payment) for row in funding}
        if self.book.funding_due:
            log["funding_due"] = [due.time_ms for due in self.book.funding_due]
        if skipped:
            log["skipped_nothing_to_reduce"] = skipped
        if unfit is not None:
            log["plan_unfit"] = unfit
        return Step(commit, market.sequence, tuple(placed), closed, log)

    def _pay_funding(self, rates: dict[int, Decimal], trades: dict[uuid.UUID, Trade]) -> list[FundingRow]:
        """The due funding times `rates` knows, paid: their rows, and their trades (still in the book) in
        `trades` so the step writes them with their funding."""
        rows = []
        for paid in self.book.pay_funding(rates):
            if paid.trade is not None:
                trades[paid.trade.id] = paid.trade
            rows.append(
                FundingRow(
                    uuid.UUID(self.context.run_id),
                    self.context.pair,
                    self.context.mode,
                    paid.due.time_ms,
                    paid.due.trade_id,
                    paid.due.quantity,
                    paid.due.mark,
                    paid.rate,
                    paid.payment,
                    trade_closed_before=paid.trade is None,
                )
            )
        return rows

    def resting_to_cancel(self, plan: OrderPlan) -> list[tuple[str, list[WorkingOrder]]]:
        """On a live venue, before a plan is recorded: the limit entries to cancel there first, by why
        (the limit fill model's order of events at the candle's close): an exit is due
        (`EXIT_CANCELS_ENTRY`), new orders come while one rests (`SUPERSEDED`), or an entry's life ends
        with this candle (`LIMIT_EXPIRED`). Nothing for a candle decided before, or on paper (the book
        cancels them itself, in the plan's step)."""
        market = plan.decision.input
        if not self.venue.holds_orders or market.sequence <= self.last_sequence:
            return []
        resting = self.book.resting_entries()
        if resting and (plan.cancels_resting or plan.orders):
            return [(EXIT_CANCELS_ENTRY if plan.cancels_resting else SUPERSEDED, resting)]
        expiring = self.book.expiring(market.candle.open_time_ms, market.sequence)
        return [(LIMIT_EXPIRED, expiring)] if expiring else []

    def _reducible(self, intent: OrderIntent) -> bool:
        """Whether a reduce-only order has a position of the other side to reduce."""
        held = self.book.position.quantity
        return self.book.trade is not None and (held > 0 if intent.side == "SELL" else held < 0)

    def submitted(self, steps: Iterable[VenueStep]) -> Step:
        """The venue's answers to a submit: each step applied to its order (refused when the state
        machine forbids it), as execution updates to write."""
        return self._pending(lambda: self._submitted(list(steps)))

    def _submitted(self, steps: list[VenueStep]) -> Step:
        updates: list[ExecutionUpdate] = []
        trades: dict[uuid.UUID, Trade] = {}
        for answer in steps:
            order = self.book.working.get(answer.client_order_id)
            if order is None:
                raise KeyError(f"the venue answered for {answer.client_order_id}, which is not working")
            event: BookEvent | None = None
            if answer.state in ("rejected", "cancelled", "expired"):  # it will never fill: out of the book
                event = self.book.cancel(answer.client_order_id, answer.reason)
                trades[event.trade.id] = event.trade
            updates.append(_step(order, answer, event))
        rows = [self._trade_row(t) for t in trades.values()]
        return Step(Commit(trades=rows, updates=updates), self.last_sequence)

    # ---------------------------------------------------------------- a live venue's news

    def on_venue_update(self, update: VenueOrderUpdate) -> Step | None:
        """What a live venue said of one of our working orders: the part filled since the book last
        heard (a fill of the excess over what it holds), a cancel or expiry, or a plain state step
        (`unknown -> accepted`). None when the order is not working (final already: an update told
        twice) or the update says nothing new (or less than the book knows: older news).
        `FeeUnknownError` when a fill the stream missed cannot be costed: read the order and book that."""
        order = self.book.working.get(update.client_order_id)
        if order is None:
            protective = self._protective_of(update)
            if protective is None:
                return None
            if protective.state == update.state and update.filled == 0:
                return None  # nothing new of it
            unchanged = update.filled == 0 and update.state in ("accepted", "partially_filled")
            if unchanged and protective.state in ("accepted", "cancel_requested"):
                return None
            return self._pending(lambda: self._protective_update(protective, update))
        if update.filled < order.filled:
            return None  # older news (a read that lags behind the stream): the book knows more already
        fresh = update.filled > order.filled
        ends = update.state in ("cancelled", "expired", "rejected")
        if not fresh and not ends and (update.state == order.state or order.state == "cancel_requested"):
            return None  # nothing new (a cancel asked for stands until the venue says how the order ended)
        return self._pending(lambda: self._venue_update(order, update))

    def _venue_update(self, order: WorkingOrder, update: VenueOrderUpdate) -> Step:
        cid = order.client_order_id
        evidence = {
            "venue": self.venue.name, "source": update.source, "status": update.state, "filled": str(update.filled),
            "average_price": str(update.average_price), "at_ms": update.at_ms,
        }  # fmt: skip
        reason = f"{self.venue.name}_{update.source}"
        updates: list[ExecutionUpdate] = []
        if order.state == "intent":  # sent before a crash recorded it: the venue's word is the evidence
            updates.append(_step(order, VenueStep(cid, "submitted", reason, evidence, update.exchange_order_id)))
        events: list[BookEvent] = []
        delta = update.filled - order.filled
        if cid in self.book.working:
            self.book.relink(cid, update.at_ms)
        if delta > 0:
            events.append(self.book.venue_fill(cid, self._venue_fill(order, update, delta), update.at_ms))
        if update.state in ("cancelled", "expired", "rejected") and cid in self.book.working:
            events.append(self.book.cancel(cid, update.cancel_reason or f"venue_{update.state}"))
        trades: dict[uuid.UUID, Trade] = {}
        for event in events:
            trades[event.trade.id] = event.trade
            if isinstance(event, OrderFilled):
                state: OrderState = "filled" if event.order.remaining == 0 else "partially_filled"
            else:
                state = update.state
            step = VenueStep(cid, state, reason, evidence, update.exchange_order_id)
            updates.append(_step(event.order, step, event))
        if not events and update.state != order.state:
            updates.append(_step(order, VenueStep(cid, update.state, reason, evidence, update.exchange_order_id)))
        rows = [self._trade_row(t) for t in trades.values()]
        closed = tuple(t for t in trades.values() if t.status == "closed")
        return Step(Commit(trades=rows, updates=updates), self.last_sequence, closed_trades=closed)

    @staticmethod
    def _venue_fill(order: WorkingOrder, update: VenueOrderUpdate, delta: Decimal) -> Fill:
        """The fill of `delta`: the stream's last fill when it is all the news, else derived from the
        venue's totals (a fill the stream missed, told by a read)."""
        if update.last_quantity == delta:
            return Fill(order.side, delta, update.last_price, update.last_fee, "taker")
        if update.fees is None:
            raise FeeUnknownError(f"{order.client_order_id}: {delta} filled unseen and its fee is not known")
        price = (update.average_price * update.filled - order.filled_value) / delta
        return Fill(order.side, delta, price, update.fees - order.fees_paid, "taker")

    # ---------------------------------------------------------------- operator actions

    def cancel_trade(self, trade_id: uuid.UUID, reason: str = "operator_cancel") -> Step:
        """Cancel the working orders of a trade; the step's answer is the client order ids cancelled."""
        return self._book_change(lambda: list(self.book.cancel_trade(trade_id, reason)))

    def cancel_orders(self, orders: Sequence[WorkingOrder], reason: str) -> Step:
        """Cancel these working orders in the book (paper); the step's answer is their client order ids."""
        return self._book_change(lambda: [self.book.cancel(o.client_order_id, reason) for o in orders])

    def trade_orders(self, trade_id: uuid.UUID) -> list[WorkingOrder]:
        """The working orders `cancel_trade` would cancel, in order."""
        return self.book.trade_orders(trade_id)

    def request_cancel(self, orders: Sequence[WorkingOrder], reason: str) -> tuple[Step, list[WorkingOrder]]:
        """A live venue's cancel, first step: each order the venue holds goes `cancel_requested`, written
        before the venue is asked (a crash in between leaves the order to be read after the restart).
        Returns the step and the orders to ask the venue about; one whose submit is not answered yet
        (`intent`, `submitted`, `unknown`) is not among them: its submit's resolution comes first."""
        asked = [o for o in orders if o.state in CANCELLABLE]

        def build() -> Step:
            updates = [
                _step(o, VenueStep(o.client_order_id, "cancel_requested", reason, {"venue": self.venue.name}))
                for o in asked
                if o.state != "cancel_requested"
            ]
            answer = tuple(o.client_order_id for o in asked)
            return Step(Commit(updates=updates) if updates else None, self.last_sequence, answer=answer)

        return self._pending(build), asked

    # ---------------------------------------------------------------- protective orders (a live venue)

    def protection_settled(self, rule: ProtectionRule) -> bool:
        """Whether the protective orders are exactly what the position needs, each on the venue, and no
        cancel is pending: `protect` then has nothing to do. While orders are working it is settled (the
        position is about to move, and their news runs `protect`)."""
        book = self.book
        if book.working:
            return True
        if any(p.state == "cancel_requested" for p in book.protection.values()):
            return False
        live = [p for p in book.protection.values() if p.live]
        if any(p.state != "accepted" for p in live):
            return False
        matched: list[ProtectiveOrder] = []
        for protection in wanted(book.position.quantity, book.position.entry_price, rule, self.rules):
            match = next((p for p in live if p.protection == protection and p not in matched), None)
            if match is None:
                return False
            matched.append(match)
        return len(matched) == len(live)

    def protect(self, rule: ProtectionRule) -> Protecting:
        """The protective orders the position must carry (`trading.protection.wanted`) against those the
        book holds: new ones planned (their intents in the step), those whose submit is still unanswered
        sent again (the venue finds them first), and the ones that no longer fit, to cancel only once
        the new ones are on the venue. Nothing changes while orders are working: the position is about
        to move."""
        book = self.book
        if book.working:
            return Protecting(None, (), ())
        live = [p for p in book.protection.values() if p.live]
        keep: list[ProtectiveOrder] = []
        new: list[Protection] = []
        for protection in wanted(book.position.quantity, book.position.entry_price, rule, self.rules):
            match = next((p for p in live if p.protection == protection and p not in keep), None)
            if match is None:
                new.append(protection)
            else:
                keep.append(match)
        obsolete = tuple(p for p in live if p not in keep)
        unsent = tuple(p for p in keep if p.state in ("intent", "submitted", "unknown"))
        if not new:
            return Protecting(None, unsent, obsolete)

        def build() -> Step:
            assert book.trade is not None
            rows = []
            placed = []
            for protection in new:
                key = f"{self.context.pair}#protect"
                cid = client_order_id(self.context.run_id, key, book.protections_placed)
                book.protections_placed += 1
                order = ProtectiveOrder(uuid.uuid4(), cid, protection.kind, protection.side, protection.quantity,
                                        protection.trigger, book.trade.id)  # fmt: skip
                book.protection[cid] = order
                placed.append(order)
                rows.append(
                    ExecutionRow(
                        order.execution_id,
                        uuid.UUID(self.context.run_id),
                        order.trade_id,
                        protection_trace(order.trade_id),
                        cid,
                        self.context.pair,
                        self.context.mode,
                        order.side,
                        True,
                        order.quantity,
                        order.kind,
                        protection.order_type,
                        order.trigger,
                    )
                )
            return Step(
                Commit(new_executions=rows), self.last_sequence, answer=tuple(o.client_order_id for o in placed)
            )

        step = self._pending(build)
        placed = tuple(book.protection[cid] for cid in step.answer or ())
        return Protecting(step, unsent + placed, obsolete)

    def protective_steps(self, steps: Iterable[VenueStep]) -> Step:
        """The venue's answers for protective orders (placed, found, refused, cancel asked)."""

        def build() -> Step:
            updates = []
            for answer in steps:
                order = self.book.protection[answer.client_order_id]
                updates.append(_protective_step(order, answer))
                if answer.state in FINAL_STATES:
                    del self.book.protection[order.client_order_id]
            return Step(Commit(updates=updates), self.last_sequence)

        return self._pending(build)

    def _protective_of(self, update: VenueOrderUpdate) -> ProtectiveOrder | None:
        found = self.book.protection.get(update.client_order_id)
        if found is not None:
            return found
        return next((p for p in self.book.protection.values() if p.exchange_order_id == update.exchange_order_id), None)

    def _protective_update(self, protective: ProtectiveOrder, update: VenueOrderUpdate) -> Step:
        """A protective order's news: triggered and filled (it becomes the reduce-only exit that closes
        the trade, booked like any fill), or ended by the venue (nothing left to reduce) or by our cancel."""
        cid = protective.client_order_id
        update = replace(update, client_order_id=cid)
        if update.filled > 0 and self.book.trade is not None:
            del self.book.protection[cid]
            quantity = update.filled if update.state in FINAL_STATES else protective.quantity  # clipped to the position
            exit_order = WorkingOrder(
                protective.execution_id, cid, protective.side, quantity, True, protective.kind, self.last_sequence,
                self.book.trade.id, protective.state,
            )  # fmt: skip
            self.book.working[cid] = exit_order
            return self._venue_update(exit_order, update)
        evidence = {"venue": self.venue.name, "source": update.source, "status": update.state, "at_ms": update.at_ms}
        reason = f"{self.venue.name}_{update.source}"
        state = update.state if update.state != "partially_filled" else "accepted"
        step = _protective_step(protective, VenueStep(cid, state, reason, evidence, update.exchange_order_id))
        if state in FINAL_STATES:
            del self.book.protection[cid]
        return Step(Commit(updates=[step]), self.last_sequence)

    # ---------------------------------------------------------------- reconciliation with a live venue

    def absent(self, client_order_id: str, evidence: Mapping[str, Any]) -> Step:
        """An order whose submit was never answered, proved absent on the venue (not found by its id, nor
        in the symbol's order history, after the bounded lookups): it never reached the order book, so
        it is `rejected` with that evidence and leaves the book."""
        return self.submitted([VenueStep(client_order_id, "rejected", "absent_on_venue", evidence)])

    def adopt_external(self, quantity: Decimal, entry_price: Decimal, at_ms: int, trade_id: uuid.UUID) -> Step:
        """A venue position the book did not know, adopted (`PaperBook.adopt`): its external trade's row."""

        def build() -> Step:
            trade = self.book.adopt(quantity, entry_price, at_ms, trade_id)
            return Step(Commit(trades=[self._trade_row(trade)]), self.last_sequence, answer=str(trade.id))

        return self._pending(build)

    def opening_orders(self) -> list[WorkingOrder]:
        """Working orders that would open or add to a position."""
        return [o for o in self.book.working.values() if not o.reduce_only]

    def cancel_opening(self, reason: str = "run_stopping") -> Step:
        """`runs stop --flatten`, first step: cancel every order that would open or add."""
        opening = self.opening_orders()
        return self._book_change(lambda: [self.book.cancel(o.client_order_id, reason) for o in opening])

    def left_to_close(self) -> uuid.UUID | None:
        """`runs stop --flatten`, second step: the open trade when what is held is not covered by the
        reduce-only orders working (then `close_trade` it); None when nothing is left to close."""
        if self.book.position.quantity == 0 or self.book.trade is None:
            return None
        if self.book.position.quantity + self._reducing() == 0:
            return None
        return self.book.trade.id

    def _book_change(self, change: Callable[[], Sequence[BookEvent]]) -> Step:
        """Apply `change` to the book; its events are the step's rows, the client order ids its answer."""

        def build() -> Step:
            events = list(change())
            answer = tuple(event.order.client_order_id for event in events)
            if not events:
                return Step(None, self.last_sequence, answer=answer)
            trades: dict[uuid.UUID, Trade] = {}
            updates = self._event_updates(events, trades)
            rows = [self._trade_row(t) for t in trades.values()]
            return Step(Commit(trades=rows, updates=updates), self.last_sequence, answer=answer)

        return self._pending(build)

    def close_trade(self, trade_id: uuid.UUID, sent: int) -> Step:
        """An operator's reduce-only exit of the open trade, filling at the next candle's open; the step's
        answer is its client order id. Asking while one is working sends nothing more. The id derives
        from the trade and from `sent`, how many closes the operator sent for it before (the journal's
        count under `operator_trace`: a cancelled one's id is spent). KeyError when the trade is not the
        open one; NotClosableError when it holds nothing to close."""
        trade = self.book.trade
        following = self.book.next_trade
        if following is not None and following.id == trade_id:
            raise NotClosableError(
                f"trade {trade_id} has no position yet: its opening order is working, after the close of the trade "
                "it follows (cancel it: `ctl cancel-trade`)"
            )
        if trade is None or trade.id != trade_id:
            raise KeyError(f"trade {trade_id} is not the open trade of {self.context.pair}")
        for working in self.book.working.values():
            if working.trade_id == trade_id and working.reason == "operator":
                return Step(None, self.last_sequence, answer=working.client_order_id)
        position = self.book.position.quantity
        quantity = abs(position + self._reducing())
        if position == 0:
            raise NotClosableError(
                f"trade {trade_id} has no position yet: its opening order is working (cancel it: `ctl cancel-trade`)"
            )
        if quantity == 0:
            raise NotClosableError(f"trade {trade_id} is closing already: a reduce-only order for all of it is working")
        trace = operator_trace(trade_id)
        key = f"{self.context.pair}#close" + (f"#{sent}" if sent else "")
        cid = client_order_id(self.context.run_id, key, int(trade_id.hex[:9], 16))
        intent = OrderIntent(cid, "SELL" if position > 0 else "BUY", quantity, True, "operator", 0)

        def build() -> Step:
            order, placed_for, _ = self.book.place(intent, self.last_sequence, self.book.last_open_ms or 0)
            commit = Commit(trades=[self._trade_row(placed_for)], new_executions=[self._execution_row(order, trace)])
            return Step(commit, self.last_sequence, (order,), answer=cid)

        return self._pending(build)

    def _reducing(self) -> Decimal:
        return sum((o.signed_quantity for o in self.book.working.values() if o.reduce_only), Decimal(0))

    # ---------------------------------------------------------------- reports

    def report(self) -> PositionReport:
        self.version += 1
        position = self.book.position
        return PositionReport(
            self.context.pair,
            position.quantity,
            position.entry_price,
            self.book.working_quantity,
            self.last_sequence,
            self.mark,
            position.realised,
            position.fees,
            self.book.bars_held,
            self.version,
            self.book.resting_quantity,
            position.funding,
        )

    def equity(self) -> Decimal:
        position = self.book.position
        # Summed left to right as the kernel's Sizing.equity sums it: the same Decimal digits.
        return (
            self.context.initial_equity
            + position.realised
            - position.fees
            - position.funding
            + position.unrealised(self.mark)
        )

    def _net(self, position: Position) -> Decimal:
        """The pair's PnL in this run: realised, less fees and funding, plus unrealised at the mark."""
        return position.realised - position.fees - position.funding + position.unrealised(self.mark)

    def status(self) -> dict[str, Any]:
        position = self.book.position
        return {
            "position": str(position.quantity),
            "entry_price": str(position.entry_price),
            "working": str(self.book.working_quantity),
            "working_orders": len(self.book.working),
            "mark": str(self.mark),
            "realised_pnl": str(position.realised),
            "fees": str(position.fees),
            "funding": str(position.funding),
            "funding_due": [due.time_ms for due in self.book.funding_due],
            "unrealised_pnl": str(position.unrealised(self.mark)),
            "net_pnl": str(self._net(position)),
            "open_trade": None if self.book.trade is None else str(self.book.trade.id),
            "last_sequence": self.last_sequence,
            "metrics": self.metrics.to_json(),
        }

    def flatness(self) -> dict[str, Any]:
        return {
            "pair": self.context.pair,
            "position": str(self.book.position.quantity),
            "working_orders": sorted(self.book.working),
            "flat": self.book.position.quantity == 0 and not self.book.working,
        }

    # ---------------------------------------------------------------- rows

    def _event_updates(self, events: list[BookEvent], trades: dict[uuid.UUID, Trade]) -> list[ExecutionUpdate]:
        """A fill or cancel the book reported, with the venue's evidence; its trade goes to `trades`."""
        updates: list[ExecutionUpdate] = []
        for event in events:
            trades[event.trade.id] = event.trade
            updates.append(_step(event.order, self.venue.evidence(event, self.book.last_open_ms), event))
        return updates

    def _decision_row(self, plan: OrderPlan, latency_ms: float) -> DecisionRow:
        decision = plan.decision
        market = decision.input
        action = action_name(decision.target)
        target_quantity = plan.target_quantity if plan.target_quantity is not None else self.book.position.quantity
        gates = dict(market.gates)
        gates["risk"] = {"allowed": plan.risk.allowed, "reason": plan.risk.reason, "details": dict(plan.risk.details)}
        snapshot = market.snapshot
        return DecisionRow(
            run_id=uuid.UUID(self.context.run_id),
            pair=market.pair,
            interval=market.interval,
            candle_open_ms=market.candle.open_time_ms,
            sequence=market.sequence,
            trace_id=market.trace_id,
            action=action,  # type: ignore[arg-type]
            target_position=target_quantity,
            confidence=decision.confidence,
            forced_hold_reason=market.forced_hold or decision.hold_reason,
            gates=gates,
            policy=decision.policy,
            risk_reason=plan.risk.reason,
            trading_state=plan.trading_state,
            order_count=len(plan.orders),
            latency_ms=latency_ms,
            agent_version_id=_uuid(decision.agent_version_id),
            model_artifact_id=_uuid(decision.model_artifact_id),
            feature_set_version_id=_uuid(snapshot.feature_set_version_id if snapshot else None),
            dataset_version_id=_uuid(decision.dataset_version_id),
        )

    def _trade_row(self, trade: Trade) -> TradeRow:
        closed = trade.status in ("closed", "cancelled")
        return TradeRow(
            id=trade.id,
            run_id=uuid.UUID(self.context.run_id),
            pair=self.context.pair,
            mode=self.context.mode,
            side=trade.side,
            status=trade.status,
            quantity=trade.quantity,
            entry_price=trade.entry_price,
            exit_price=trade.exit_price,
            fees=trade.fees,
            realized_pnl=trade.net_pnl if trade.status == "closed" else None,
            close_reason=trade.close_reason,
            opened_at_ms=trade.opened_at_ms,
            closed_at_ms=(self.book.last_open_ms or trade.opened_at_ms) if closed else None,
            origin=trade.origin,
            funding=trade.funding,
        )

    def _execution_row(self, order: WorkingOrder, trace: str) -> ExecutionRow:
        return ExecutionRow(
            id=order.execution_id,
            run_id=uuid.UUID(self.context.run_id),
            trade_id=order.trade_id,
            trace_id=trace,
            client_order_id=order.client_order_id,
            pair=self.context.pair,
            mode=self.context.mode,
            side=order.side,
            reduce_only=order.reduce_only,
            quantity=order.quantity,
            reason=order.reason,
            order_type="MARKET" if order.limit_price is None else "LIMIT",
            price=order.limit_price,
        )

    def _metrics(self, plan: OrderPlan, events: list[BookEvent], latency_ms: float) -> list[MetricRow]:
        market = plan.decision.input
        run_id = uuid.UUID(self.context.run_id)
        rows = [MetricRow("decision_latency_ms", latency_ms, market.pair, run_id, market.trace_id)]
        quality = market.gates.get("quality")
        details = quality.get("details") if isinstance(quality, dict) else None
        if isinstance(details, dict) and isinstance(details.get("max_abs_zscore"), int | float):
            # Feature drift: the largest |z| against the training data's statistics (agents only).
            feature = {"feature": details.get("max_zscore_feature")}
            rows.append(
                MetricRow(
                    "feature_drift_zscore",
                    float(details["max_abs_zscore"]),
                    market.pair,
                    run_id,
                    market.trace_id,
                    feature,
                )
            )
        for event in events:
            if isinstance(event, OrderFilled) and market.candle.open > 0:
                reference = Decimal(repr(market.candle.open))
                slippage_bps = abs(event.fill.price - reference) / reference * 10_000
                rows.append(
                    MetricRow(
                        "slippage_bps",
                        float(slippage_bps),
                        market.pair,
                        run_id,
                        market.trace_id,
                        {"client_order_id": event.order.client_order_id},
                    )
                )
        return rows

    def _log_line(
        self, plan: OrderPlan, events: list[BookEvent], placed: list[WorkingOrder], latency_ms: float
    ) -> dict[str, Any]:
        decision = plan.decision
        market = decision.input
        line = {
            "pair": market.pair,
            "run_id": self.context.run_id,
            "trace_id": market.trace_id,
            "candle_open_ms": market.candle.open_time_ms,
            "policy": decision.policy,
            "action": action_name(decision.target),
            "target": decision.target,
            "confidence": round(decision.confidence, 4),
            "forced_hold": market.forced_hold or decision.hold_reason,
            "gates": {name: _passed(value) for name, value in market.gates.items()},
            "risk": plan.risk.reason or ("allowed" if plan.risk.allowed else "denied"),
            "trading_state": plan.trading_state,
            "blocked_by": list(plan.blocked_by),
            "orders": [o.client_order_id for o in placed],
            "fills": sum(1 for e in events if isinstance(e, OrderFilled)),
            "position": str(self.book.position.quantity),
            "latency_ms": round(latency_ms, 3),
        }
        limits = {o.client_order_id: str(o.limit_price) for o in placed if o.limit_price is not None}
        if limits:  # post-only entries placed: their prices
            line["limit_orders"] = limits
        if self.book.resting_quantity:
            line["resting"] = str(self.book.resting_quantity)
        ended = [e.reason for e in events if isinstance(e, OrderCancelled) and e.order.limit_price is not None]
        if ended:  # how limit entries ended unfilled (post-only rejection, expiry, an exit's cancel)
            line["limit_ended"] = ended
        return line


def action_name(target: float | None) -> str:
    """A decision's action, one type everywhere (the decision row, the decision log line): `long`,
    `short`, `flat` or `hold` (keep the current position). The signed target beside it is a number."""
    return "hold" if target is None else "flat" if target == 0 else "long" if target > 0 else "short"


@dataclass(frozen=True)
class Protecting:
    """`ExecutionCore.protect`'s answer: the step with the new orders' intents (None: none new), the
    orders to send (new, and any whose submit is still unanswered), and the orders to cancel once every
    order sent is on the venue."""

    step: Step | None
    send: tuple[ProtectiveOrder, ...]
    obsolete: tuple[ProtectiveOrder, ...]


def protection_trace(trade_id: uuid.UUID) -> str:
    """The trace a trade's protective orders share."""
    return f"protection.{trade_id}"


def _protective_step(order: ProtectiveOrder, answer: VenueStep) -> ExecutionUpdate:
    before: OrderState = order.state
    transition(before, answer.state, answer.reason if answer.state in FINAL_STATES else None)
    order.state = answer.state
    if answer.exchange_order_id is not None:
        order.exchange_order_id = answer.exchange_order_id
    return ExecutionUpdate(
        order.execution_id, before, answer.state, answer.reason, dict(answer.evidence),
        exchange_order_id=answer.exchange_order_id,
    )  # fmt: skip


def _step(order: WorkingOrder, answer: VenueStep, event: BookEvent | None = None) -> ExecutionUpdate:
    """One state step of `order` as the venue reported it, checked against the order state machine."""
    before: OrderState = order.state
    transition(before, answer.state, answer.reason if answer.state in FINAL_STATES else None)
    order.state = answer.state
    fill = event.fill if isinstance(event, OrderFilled) else None
    if fill is None:
        return ExecutionUpdate(
            order.execution_id, before, answer.state, answer.reason, dict(answer.evidence),
            exchange_order_id=answer.exchange_order_id,
        )  # fmt: skip
    # What has filled so far (an order fills in parts on a live venue): the row holds the totals.
    price = fill.price if order.filled == fill.quantity else order.average_price
    return ExecutionUpdate(
        order.execution_id,
        before,
        answer.state,
        answer.reason,
        dict(answer.evidence),
        order.filled,
        price,
        order.fees_paid,
        answer.exchange_order_id,
    )


def _snapshot_row(decision: PolicyDecision) -> SnapshotRow | None:
    market = decision.input
    snapshot = market.snapshot
    if snapshot is None:
        return None
    features: dict[str, float | None] = {}
    if len(snapshot.feature_names) == len(market.features):
        pairs = zip(snapshot.feature_names, market.features, strict=True)
        features = {name: (value if math.isfinite(value) else None) for name, value in pairs}
    return SnapshotRow(
        snapshot.first_open_ms,
        snapshot.last_open_ms,
        snapshot.candle_count,
        snapshot.candles_hash,
        features,
        snapshot.features_hash,
        _mapping(market.gates.get("integrity")),
        _mapping(market.gates.get("quality")),
    )


def _mapping(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _passed(value: object) -> object:
    return value.get("passed", value) if isinstance(value, dict) else value


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)
