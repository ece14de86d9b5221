"""What the execution tests (the pure core's unit tests and the stage's integration tests) build their
plans from: the contract's fill rules of a BTC-like pair, and a risk guard's plan for one candle."""

from __future__ import annotations

from decimal import Decimal

from domain.candles import Candle
from domain.fills import FillRules
from domain.messages import (
    InputSnapshot,
    MarketInput,
    OrderIntent,
    OrderPlan,
    PolicyDecision,
    RiskOutcome,
    Side,
    decision_sequence,
    trace_id,
)
from domain.orders import client_order_id
from trading.context import PairContext

RULES = FillRules(
    tick=Decimal("0.1"),
    step=Decimal("0.001"),
    min_quantity=Decimal("0.001"),
    min_notional=Decimal(5),
    maker_fee=Decimal("0.0002"),
    taker_fee=Decimal("0.0005"),
    slippage_bps=Decimal(0),
)
PAIR = "BTC-USDT"


def plan(
    context: PairContext,
    minute: int,
    price: float,
    target: float | None,
    orders: list[tuple[Side, str, bool]],
    *,
    close: float | None = None,
    pair: str = PAIR,
) -> OrderPlan:
    """The plan of `pair`'s candle `minute` minutes into the test's span (opening at `price`, closing at
    `close`, default `price`): its decision for `target` and the orders `(side, quantity, reduce-only)`,
    numbered as the risk guard numbers them."""
    open_ms = 1_700_000_000_000 // 60_000 * 60_000 + minute * 60_000
    candle = Candle(pair, "1m", open_ms, price, price + 5, price - 5, price if close is None else close, 3.0)
    sequence = decision_sequence("1m", open_ms)
    market = MarketInput(
        context.run_id,
        pair,
        "1m",
        sequence,
        trace_id(pair, "1m", open_ms),
        candle,
        (0.1, 0.2),
        None,
        {"integrity": {"passed": True}, "quality": {"passed": True}},
        InputSnapshot(open_ms - 60_000, open_ms, 2, "c" * 64, "f" * 64, "v1", None, ("a", "b")),
        0.0,
    )
    intents = tuple(
        OrderIntent(
            client_order_id(context.run_id, pair, sequence * 4 + leg), side, Decimal(qty), reduce, "target", leg
        )
        for leg, (side, qty, reduce) in enumerate(orders)
    )
    target_quantity = None if target is None else Decimal(str(target))
    return OrderPlan(
        PolicyDecision(market, "momentum", target, 1.0), target_quantity, intents, RiskOutcome(True), "ACTIVE"
    )


async def no_sleep(_seconds: float) -> None:
    """The backoff of a test against the simulator: the retries happen at once."""
    return
