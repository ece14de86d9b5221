"""Funding in the execution core, hand-checked: the position held through the candle holding a funding
time pays `quantity x close x rate` at that candle's close, once the venue's rate is known, on the trade
and the account; a rate not known yet leaves the payment due, checkpointed, for a later plan."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

from domain.funding import FUNDING_INTERVAL_MS
from domain.messages import OrderPlan, Side
from pipeline.execution.core import ExecutionCore, Step
from tests.execution_plans import RULES
from tests.execution_plans import plan as shared_plan
from trading.context import PairContext

CONTEXT = PairContext(str(uuid.uuid4()), "BTC-USDT", "1m", "paper", "v1", "baseline:momentum", Decimal(10_000))
START_MS = 1_700_000_000_000 // 60_000 * 60_000  # the shared plans' minute 0
FUNDING_MS = -(-START_MS // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
HOLDING = (FUNDING_MS - START_MS) // 60_000 - 1
"""The minute whose candle (open, open + 1m] holds the funding time: it closes at it."""
RATE = Decimal("0.0001")


def plan(minute: int, price: float, target: float | None, orders: list[tuple[Side, str, bool]]) -> OrderPlan:
    """Candles close 1 above their open."""
    return shared_plan(CONTEXT, minute, price, target, orders, close=price + 1)


def written(core: ExecutionCore, step: Step | None) -> Step:
    assert step is not None
    core.recorded(step)
    if step.submit:
        core.recorded(core.submitted(asyncio.run(core.venue.submit(list(step.submit)))))
    return step


def held_through_funding(side: Side) -> ExecutionCore:
    """One BTC bought (or sold) two candles before the funding candle, filled at the next open."""
    core = ExecutionCore(CONTEXT, RULES)
    written(core, core.on_plan(plan(HOLDING - 2, 100.0, 1.0, [(side, "1", False)])))
    written(core, core.on_plan(plan(HOLDING - 1, 100.0, None, [])))
    assert core.book.position.quantity == (1 if side == "BUY" else -1)
    return core


def test_the_position_held_through_a_funding_time_pays_quantity_times_close_times_rate() -> None:
    core = held_through_funding("BUY")
    assert core.funding_wanted(plan(HOLDING, 200.0, None, [])) == [FUNDING_MS]
    step = written(core, core.on_plan(plan(HOLDING, 200.0, None, []), {FUNDING_MS: RATE}))
    assert step.commit is not None
    [row] = step.commit.funding
    assert (row.funding_time_ms, row.quantity, row.mark, row.rate) == (FUNDING_MS, 1, Decimal("201.0"), RATE)
    assert row.payment == Decimal("0.0201")  # 1 x 201 x 0.0001: a long pays a positive rate
    assert not row.trade_closed_before
    [trade] = step.commit.trades
    assert trade.funding == Decimal("0.0201")
    assert core.report().funding == Decimal("0.0201")
    assert Decimal(core.status()["funding"]) == Decimal("0.0201")
    position = core.book.position
    assert core.equity() == Decimal(10_000) - position.fees - Decimal("0.0201") + (Decimal("201.0") - 100) * 1
    assert step.log["funding"] == {str(FUNDING_MS): "0.02010000"}  # to 1e-8 USDT, as fees
    # the next candle holds no funding time: nothing more is paid
    after = written(core, core.on_plan(plan(HOLDING + 1, 201.0, None, []), {FUNDING_MS: RATE}))
    assert after.commit is not None
    assert after.commit.funding == []
    assert core.report().funding == Decimal("0.0201")


def test_a_short_receives_a_positive_rate_and_a_flat_book_owes_nothing() -> None:
    core = held_through_funding("SELL")
    step = written(core, core.on_plan(plan(HOLDING, 200.0, None, []), {FUNDING_MS: RATE}))
    assert step.commit is not None
    assert [row.payment for row in step.commit.funding] == [Decimal("-0.0201")]
    flat = ExecutionCore(CONTEXT, RULES)
    step = written(flat, flat.on_plan(plan(HOLDING, 200.0, None, []), {FUNDING_MS: RATE}))
    assert step.commit is not None
    assert step.commit.funding == []
    assert flat.book.funding_due == []


def test_a_rate_not_known_yet_leaves_the_payment_due_through_a_restart_then_pays_it_as_it_was_held() -> None:
    core = held_through_funding("BUY")
    step = written(core, core.on_plan(plan(HOLDING, 200.0, None, [])))  # no rate stored yet
    assert step.commit is not None
    assert step.commit.funding == []
    assert step.log["funding_due"] == [FUNDING_MS]
    assert core.status()["funding_due"] == [FUNDING_MS]
    restarted = ExecutionCore(CONTEXT, RULES)
    restarted.restore(core.to_json(), core.last_sequence)
    # the position grows at the next open; the funding time is still paid on what was held through it
    written(restarted, restarted.on_plan(plan(HOLDING + 1, 300.0, 2.0, [("BUY", "1", False)])))
    assert restarted.funding_wanted(plan(HOLDING + 2, 300.0, None, [])) == [FUNDING_MS]
    paid = written(restarted, restarted.on_plan(plan(HOLDING + 2, 300.0, None, []), {FUNDING_MS: RATE}))
    assert paid.commit is not None
    assert restarted.book.position.quantity == 2
    assert [(row.quantity, row.mark, row.payment) for row in paid.commit.funding] == [
        (1, Decimal("201.0"), Decimal("0.0201"))
    ]
    assert restarted.book.funding_due == []


def test_a_trade_closed_before_its_rate_was_known_is_paid_on_its_row() -> None:
    core = held_through_funding("BUY")
    assert core.book.trade is not None
    trade_id = core.book.trade.id
    written(core, core.on_plan(plan(HOLDING, 200.0, 0.0, [("SELL", "1", True)])))  # rate not known; closing
    written(core, core.on_plan(plan(HOLDING + 1, 200.0, None, [])))  # closed at this open
    assert core.book.trade is None
    step = written(core, core.on_plan(plan(HOLDING + 2, 200.0, None, []), {FUNDING_MS: RATE}))
    assert step.commit is not None
    [row] = step.commit.funding
    assert (row.trade_id, row.payment, row.trade_closed_before) == (trade_id, Decimal("0.0201"), True)
    assert step.commit.trades == []  # the journal adds it to the closed trade's row
    assert core.report().funding == Decimal("0.0201")
