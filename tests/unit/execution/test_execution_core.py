"""The execution core without PostgreSQL: it returns what to write and what to submit, and the test
plays the shell (write, then `recorded`; refused, then `rejected`). Decisions are recorded once, orders
fill at the next candle's open, a flip is two legs, a refused commit rewinds the book, and a restart
from the checkpoint submits the intents a crash left unsent."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from domain.messages import (
    OrderPlan,
    Side,
)
from domain.orders import OrderTransitionError
from pipeline.execution.core import ExecutionCore, FeeUnknownError, NotClosableError, Step
from pipeline.execution.venue import PaperVenue, VenueOrderUpdate, VenueStep
from tests.execution_plans import PAIR, RULES
from tests.execution_plans import plan as shared_plan
from trading.context import PairContext

CONTEXT = PairContext(str(uuid.uuid4()), PAIR, "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))


def plan(minute: int, price: float, target: float | None, orders: list[tuple[Side, str, bool]]) -> OrderPlan:
    """This file's candles close 1 above their open."""
    return shared_plan(CONTEXT, minute, price, target, orders, close=price + 1)


def written(core: ExecutionCore, step: Step | None) -> Step:
    """The shell's part: the step was written, then its orders were submitted and their answers written."""
    assert step is not None
    core.recorded(step)
    answers = asyncio.run(core.venue.submit(list(step.submit)))
    core.recorded(core.submitted(answers))
    return step


def test_a_decision_is_recorded_once_with_its_intents_and_nothing_is_written_for_a_candle_decided_before() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    step = core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)]))
    assert step is not None
    assert step.commit is not None
    assert step.commit.decision is not None
    assert (step.commit.decision.action, step.commit.decision.order_count) == ("long", 1)
    assert step.commit.snapshot is not None
    assert [e.side for e in step.commit.new_executions] == ["BUY"]
    assert [t.status for t in step.commit.trades] == ["open"]
    assert step.commit.checkpoint is None  # the shell adds it, from to_json() at step.sequence
    assert [o.state for o in step.submit] == ["intent"]  # submitted only after the commit
    written(core, step)
    assert core.last_sequence == step.sequence
    assert [o.state for o in core.book.working.values()] == ["accepted"]
    assert core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])) is None  # decided before: nothing to write
    assert core.report().working == Decimal(1)


def test_orders_fill_at_the_next_candles_open_with_the_venues_evidence() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    assert core.book.position.quantity == 0  # nothing fills at the candle that decided
    step = written(core, core.on_plan(plan(1, 110.0, None, [])))
    assert step.commit is not None
    (fill,) = step.commit.updates
    assert (fill.before, fill.after, fill.reason) == ("accepted", "filled", "paper_fill")
    assert (fill.filled_quantity, fill.avg_fill_price, fill.fee) == (Decimal(1), Decimal("110.0"), Decimal("0.055"))
    assert fill.evidence["venue"] == "paper"
    assert fill.evidence["candle_open_ms"] == step.commit.decision.candle_open_ms  # type: ignore[union-attr]
    assert core.book.position.quantity == Decimal(1)
    assert core.book.position.entry_price == Decimal("110.0")
    assert core.mark == Decimal("111.0")  # the close
    assert [m.metric for m in step.commit.metrics] == ["decision_latency_ms", "slippage_bps"]


def test_a_flip_is_two_legs_closing_one_trade_and_opening_the_next() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    written(core, core.on_plan(plan(1, 100.0, None, [])))
    long_trade = core.book.trade
    assert long_trade is not None
    flip = written(core, core.on_plan(plan(2, 100.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)])))
    assert flip.commit is not None
    assert [(e.side, e.reduce_only) for e in flip.commit.new_executions] == [("SELL", True), ("SELL", False)]
    placed = {t.id: (t.status, t.entry_price) for t in flip.commit.trades}
    assert placed.pop(long_trade.id) == ("closing", Decimal("100.0"))
    assert list(placed.values()) == [("open", None)]  # the next trade, from the opening leg, not filled yet
    (next_trade,) = placed
    step = written(core, core.on_plan(plan(3, 120.0, None, [])))
    assert step.commit is not None
    assert [u.after for u in step.commit.updates] == ["filled", "filled"]
    (closed,) = step.closed_trades
    assert closed.id == long_trade.id
    assert closed.net_pnl == Decimal(20) - Decimal("0.05") - Decimal("0.06")
    statuses = {t.id: t.status for t in step.commit.trades}
    assert statuses[long_trade.id] == "closed"
    assert core.book.trade is not None
    assert core.book.trade.id == next_trade
    assert statuses[core.book.trade.id] == "open"
    assert (core.book.trade.side, core.book.position.quantity) == ("short", Decimal(-1))


def test_a_refused_commit_rewinds_the_book_and_the_plan_can_be_recorded_after() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    before, mark, sequence = core.book.to_json(), core.mark, core.last_sequence
    step = core.on_plan(plan(1, 110.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)]))
    assert step is not None
    assert core.book.position.quantity == Decimal(1)  # tentatively filled and flipped
    with pytest.raises(RuntimeError, match="pending"):
        core.on_plan(plan(2, 110.0, None, []))  # one step at a time
    core.rejected()  # the journal refused it (decided before, a constraint, a fence)
    assert (core.book.to_json(), core.mark, core.last_sequence) == (before, mark, sequence)
    again = core.on_plan(plan(1, 110.0, None, []))
    assert again is not None
    core.recorded(again)
    assert core.book.position.quantity == Decimal(1)


def test_an_operator_step_refused_leaves_the_trade_working_and_a_second_close_sends_nothing() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    written(core, core.on_plan(plan(1, 100.0, None, [])))
    assert core.book.trade is not None
    trade_id = core.book.trade.id
    close = core.close_trade(trade_id, sent=0)
    core.rejected()
    assert core.book.working == {}
    close = written(core, core.close_trade(trade_id, sent=0))
    assert [o.reduce_only for o in close.submit] == [True]
    repeat = core.close_trade(trade_id, sent=1)
    assert (repeat.commit, repeat.submit, repeat.answer) == (None, (), close.answer)
    core.recorded(repeat)
    with pytest.raises(KeyError):
        core.close_trade(uuid.uuid4(), sent=0)


def test_a_close_of_a_trade_with_nothing_to_close_is_refused_as_such_not_as_unknown() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    assert core.book.trade is not None
    trade_id = core.book.trade.id
    with pytest.raises(NotClosableError, match="no position yet: its opening order is working"):
        core.close_trade(trade_id, sent=0)  # the opening order has not filled: cancel-trade is the way
    written(core, core.on_plan(plan(1, 100.0, None, [])))
    assert [o.reduce_only for o in written(core, core.close_trade(trade_id, sent=0)).submit] == [True]


def test_a_restart_from_the_checkpoint_submits_the_intents_a_crash_left_unsent() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    step = core.on_plan(plan(0, 100.0, 1.0, [("BUY", "0.5", False)]))
    assert step is not None
    checkpoint = core.to_json()  # what the shell wrote with the step
    core.recorded(step)  # ... and then the process died before submitting
    restarted = ExecutionCore(CONTEXT, RULES, PaperVenue())
    restarted.restore(checkpoint, step.sequence)
    (sent,) = step.submit
    unsent = restarted.reconcile({sent.client_order_id: "intent"})
    assert [o.client_order_id for o in unsent] == [sent.client_order_id]
    answers = asyncio.run(restarted.venue.submit(unsent))
    submitted = restarted.submitted(answers)
    assert submitted.commit is not None
    assert [(u.before, u.after) for u in submitted.commit.updates] == [
        ("intent", "submitted"),
        ("submitted", "accepted"),
    ]
    assert submitted.commit.updates[1].exchange_order_id == f"paper-{sent.client_order_id}"
    restarted.recorded(submitted)
    assert restarted.on_plan(plan(0, 100.0, 1.0, [("BUY", "0.5", False)])) is None  # decided before the crash
    written(restarted, restarted.on_plan(plan(1, 101.0, None, [])))
    assert restarted.book.position.quantity == Decimal("0.5")
    # a recorded state newer than the checkpoint's wins: nothing is sent twice
    again = ExecutionCore(CONTEXT, RULES)
    again.restore(checkpoint, step.sequence)
    assert again.reconcile({sent.client_order_id: "accepted"}) == []


def test_the_venue_answer_must_follow_the_order_state_machine() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    step = written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    answers = asyncio.run(core.venue.submit(list(step.submit)))  # accepted already: submitting again is wrong
    with pytest.raises(OrderTransitionError, match="from accepted to submitted"):
        core.submitted(answers)
    assert [o.state for o in core.book.working.values()] == ["accepted"]  # rewound


def test_cancelling_a_trade_is_a_step_with_the_venues_evidence_and_a_refused_one_leaves_the_order_working() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    opened = written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    assert core.book.trade is not None
    trade_id = core.book.trade.id
    (order,) = opened.submit
    refused = core.cancel_trade(trade_id)
    assert core.book.working == {}
    core.rejected()
    assert [o.state for o in core.book.working.values()] == ["accepted"]
    step = core.cancel_trade(trade_id)
    assert step.answer == (order.client_order_id,)
    assert step.commit is not None
    (update,) = step.commit.updates
    assert (update.before, update.after, update.reason, dict(update.evidence)) == (
        "accepted",
        "cancelled",
        "operator_cancel",
        {"venue": "paper"},
    )
    assert [(t.status, t.close_reason) for t in step.commit.trades] == [("cancelled", "operator_cancel")]
    assert refused.answer == step.answer
    core.recorded(step)
    assert (core.book.working, core.book.trade) == ({}, None)
    nothing = core.cancel_trade(trade_id)  # nothing working any more: nothing to write
    assert (nothing.commit, nothing.answer) == (None, ())
    core.recorded(nothing)


def accepted_order(core: ExecutionCore, side: Side = "BUY", quantity: str = "1") -> str:
    """A plan whose one order the venue accepted (it fills only when the venue says so)."""
    step = core.on_plan(plan(0, 100.0, 1.0, [(side, quantity, False)]))
    assert step is not None
    core.recorded(step)
    (order,) = step.submit
    cid = order.client_order_id
    core.recorded(core.submitted([VenueStep(cid, "submitted", "s"), VenueStep(cid, "accepted", "a", {}, "77")]))
    return cid


def update(
    cid: str, state: str, filled: str, average: str, fees: str | None, last: tuple[str, str, str] = ("0", "0", "0")
) -> VenueOrderUpdate:
    return VenueOrderUpdate(
        cid, "77", state, Decimal(filled), Decimal(average), None if fees is None else Decimal(fees),  # type: ignore[arg-type]
        Decimal(last[0]), Decimal(last[1]), Decimal(last[2]), "user_stream", 1_000,
    )  # fmt: skip


def test_a_live_venue_fills_an_order_in_parts_and_the_same_news_twice_books_nothing_more() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    cid = accepted_order(core)
    first = core.on_venue_update(update(cid, "partially_filled", "0.4", "100", None, ("0.4", "100", "0.02")))
    assert first is not None
    assert first.commit is not None
    (row,) = first.commit.updates
    assert (row.before, row.after, row.filled_quantity, row.avg_fill_price, row.fee) == (
        "accepted", "partially_filled", Decimal("0.4"), Decimal("100"), Decimal("0.02"),
    )  # fmt: skip
    core.recorded(first)
    assert core.book.position.quantity == Decimal("0.4")
    assert core.on_venue_update(update(cid, "partially_filled", "0.4", "100", None, ("0.4", "100", "0.02"))) is None
    # the stream missed the rest; a read tells the totals, and the fill is what exceeds the book's
    last = core.on_venue_update(update(cid, "filled", "1", "100.6", "0.05", ("0.2", "101", "0.01")))
    assert last is not None
    assert last.commit is not None
    (done,) = last.commit.updates
    assert (done.after, done.filled_quantity, done.avg_fill_price, done.fee) == (
        "filled", Decimal("1"), Decimal("100.6"), Decimal("0.05"),
    )  # fmt: skip
    core.recorded(last)
    assert core.book.position.entry_price == Decimal("100.6")
    assert cid not in core.book.working
    assert core.on_venue_update(update(cid, "filled", "1", "100.6", "0.05")) is None  # final already


def test_a_fill_the_stream_missed_needs_a_read_and_older_news_changes_nothing() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    cid = accepted_order(core)
    with pytest.raises(FeeUnknownError):
        core.on_venue_update(update(cid, "filled", "1", "100", None, ("0.3", "100", "0.01")))
    assert core.book.working[cid].filled == 0
    core.recorded(core.on_venue_update(update(cid, "partially_filled", "0.5", "100", "0.025")))  # type: ignore[arg-type]
    assert core.on_venue_update(update(cid, "partially_filled", "0.4", "100", "0.02")) is None  # older news


def test_a_cancel_on_the_venue_ends_what_is_left_and_a_rejected_submit_leaves_the_book() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    cid = accepted_order(core)
    core.recorded(core.on_venue_update(update(cid, "partially_filled", "0.5", "100", "0.025")))  # type: ignore[arg-type]
    cancelled = core.on_venue_update(update(cid, "cancelled", "0.5", "100", "0.025"))
    assert cancelled is not None
    assert cancelled.commit is not None
    assert [(u.before, u.after) for u in cancelled.commit.updates] == [("partially_filled", "cancelled")]
    core.recorded(cancelled)
    assert core.book.working == {}
    assert core.book.position.quantity == Decimal("0.5")  # what filled stays
    refused = ExecutionCore(CONTEXT, RULES)
    step = refused.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)]))
    assert step is not None
    refused.recorded(step)
    (order,) = step.submit
    answer = refused.submitted(
        [
            VenueStep(order.client_order_id, "submitted", "s"),
            VenueStep(order.client_order_id, "rejected", "bingx_refused"),
        ]
    )
    assert answer.commit is not None
    assert [t.status for t in answer.commit.trades] == ["cancelled"]
    refused.recorded(answer)
    assert refused.book.working == {}
    assert refused.book.trade is None


def test_an_order_the_crash_left_as_an_intent_is_submitted_by_the_venues_word() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    step = core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)]))
    assert step is not None
    core.recorded(step)
    (order,) = step.submit
    news = core.on_venue_update(update(order.client_order_id, "filled", "1", "100", "0.05"))
    assert news is not None
    assert news.commit is not None
    assert [(u.before, u.after) for u in news.commit.updates] == [("intent", "submitted"), ("submitted", "filled")]


def test_a_close_of_what_is_no_longer_held_is_not_sent() -> None:
    """On a live venue the position can close between the risk guard's plan and execution (a stop the venue
    triggered, booked from its news): the plan's reduce-only close is skipped, said in the decision line, and
    the rest of the plan stands."""
    core = ExecutionCore(CONTEXT, RULES)
    step = core.on_plan(plan(0, 100.0, -1.0, [("SELL", "1", True), ("SELL", "1", False)]))  # flat: nothing to close
    assert step is not None
    assert [(o.side, o.reduce_only) for o in step.submit] == [("SELL", False)]
    assert len(step.log["skipped_nothing_to_reduce"]) == 1
    written(core, step)
    assert core.book.trade is not None


def test_a_plan_made_on_a_position_the_book_no_longer_holds_sends_nothing_of_it() -> None:
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(0, 100.0, 1.0, [("BUY", "1", False)])))
    written(core, core.on_plan(plan(1, 101.0, 1.0, [])))  # the paper fill at the next open: long 1
    assert core.book.position.quantity == Decimal(1)
    # A plan made while the guard still saw the book flat: an opening short, with no close before it.
    step = core.on_plan(plan(2, 102.0, -1.0, [("SELL", "1", False)]))
    assert step is not None
    assert step.submit == ()
    assert "opening short while a long trade is open" in step.log["plan_unfit"]
    written(core, step)
    assert core.book.position.quantity == Decimal(1)
