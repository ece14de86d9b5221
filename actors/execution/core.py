"""The execution actor's core for paper trading: record every decision once, with its orders, and
fill them against the live feed.

For each plan (one per final candle, in order): the working orders fill at this candle's open, then
the decision, its input snapshot, the new order intents, the trades and the book's checkpoint are
committed in one transaction, and only then are the orders submitted to the paper venue (intent ->
submitted -> accepted, a second transaction). A restart restores the book from that checkpoint and
submits any intent the crash left unsent; a plan for a candle already decided is refused by the
journal and leaves the book as it was.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from actors.run_context import PairContext
from domain.fills import FillRules
from domain.messages import OrderIntent, OrderPlan, PolicyDecision, PositionReport
from domain.orders import FINAL_STATES, OrderState, client_order_id, transition
from storage.trading import (
    Adopted,
    Checkpoint,
    CheckpointStore,
    Commit,
    DecisionRow,
    ExecutionRow,
    ExecutionUpdate,
    MetricRow,
    SnapshotRow,
    TradeRow,
    TradingJournal,
)
from trading.paper import BookEvent, OrderCancelled, OrderFilled, PaperBook, Trade, WorkingOrder

ROLE = "execution"
STATE_VERSION = 1
PAPER_VENUE = "paper"


@dataclass(frozen=True)
class Recorded:
    """What a plan did, for the shell to pass on: the position report, the trades it closed (the account
    guard counts them), and the canonical decision log line."""

    report: PositionReport
    closed_trades: tuple[Trade, ...]
    log: dict[str, Any]


@dataclass
class ExecutionCore:
    context: PairContext
    rules: FillRules
    journal: TradingJournal
    checkpoints: CheckpointStore
    book: PaperBook = field(init=False)
    mark: Decimal = Decimal(0)
    last_sequence: int = -1
    version: int = 0
    clock: Callable[[], float] = time.time
    fence: int | None = None
    adopted: Adopted | None = None
    """The position this run took over from a stopped one at start (`runs stop --keep`), if any."""
    _adopted_state: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.book = PaperBook(self.context.pair, self.rules)

    @property
    def key(self) -> str:
        return self.context.actor_key(ROLE)

    async def restore(self) -> list[str]:
        """Load the checkpoint, then finish what a crash interrupted: every intent is submitted (paper
        has no venue to ask), and a recorded state newer than the checkpoint's wins. Returns the client
        order ids submitted now."""
        checkpoint = await self.checkpoints.load(self.key)
        self.fence = await self.checkpoints.claim(self.key, ROLE, self.context.pair)
        if checkpoint is not None and "book" in checkpoint.state:
            state = dict(checkpoint.state)
            self.book = PaperBook.from_json(self.context.pair, self.rules, state["book"])
            self.mark = Decimal(state["mark"])
            self.last_sequence = checkpoint.sequence
        else:
            self.adopted = await self.journal.adopt(uuid.UUID(self.context.run_id), self.context.pair, self._adopting)
            if self.adopted is not None:
                state = dict(self._adopted_state)
                self.book = PaperBook.from_json(self.context.pair, self.rules, state["book"])
                self.mark = Decimal(state["mark"])
        recorded = {
            w.client_order_id: w
            for w in await self.journal.unfinished(uuid.UUID(self.context.run_id), self.context.pair)
        }
        for order in self.book.working.values():
            if order.client_order_id in recorded:
                order.state = recorded[order.client_order_id].state
        return await self._submit([o for o in self.book.working.values() if o.state == "intent"])

    async def on_plan(self, plan: OrderPlan) -> Recorded | None:
        """Record a plan; None when its candle was decided before (nothing changes then)."""
        decision = plan.decision
        market = decision.input
        if market.sequence <= self.last_sequence:
            return None  # the checkpoint, written with each decision, says this candle was decided
        before = self.book.to_json()
        mark_before = self.mark
        try:
            events = self.book.on_candle(market.candle)
            self.mark = Decimal(repr(market.candle.close))
            trades: dict[uuid.UUID, Trade] = {}
            updates = self._fill_updates(events, trades)
            placed: list[WorkingOrder] = []
            for intent in plan.orders:
                order, trade, _ = self.book.place(intent, market.sequence, market.candle.open_time_ms)
                placed.append(order)
                trades[trade.id] = trade
            latency_ms = max(0.0, (self.clock() - market.final_at) * 1000)
            commit = Commit(
                decision=self._decision_row(plan, latency_ms),
                snapshot=_snapshot_row(decision),
                trades=[self._trade_row(t) for t in trades.values()],
                new_executions=[self._execution_row(o, market.trace_id) for o in placed],
                updates=updates,
                checkpoint=self._checkpoint(market.sequence),
                metrics=self._metrics(plan, events, latency_ms),
            )
            recorded = await self.journal.commit(commit)
        except BaseException:
            self._rewind(before, mark_before)
            raise
        if not recorded:
            self._rewind(before, mark_before)
            return None
        self.last_sequence = market.sequence
        await self._submit(placed)
        closed = tuple(t for t in trades.values() if t.status == "closed")
        return Recorded(self.report(), closed, self._log_line(plan, events, placed, latency_ms))

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
        )

    def equity(self) -> Decimal:
        position = self.book.position
        return self.context.initial_equity + position.realised - position.fees + position.unrealised(self.mark)

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
            "unrealised_pnl": str(position.unrealised(self.mark)),
            "net_pnl": str(position.realised - position.fees + position.unrealised(self.mark)),
            "open_trade": None if self.book.trade is None else str(self.book.trade.id),
            "last_sequence": self.last_sequence,
        }

    def _adopting(self, handed_over: Mapping[str, Any]) -> Checkpoint:
        """This run's first checkpoint from a stopped run's book (`runs stop --keep`): the position, its
        open trade and working orders as they were; the run's own realised PnL and fees start at zero."""
        book = PaperBook.from_json(self.context.pair, self.rules, dict(handed_over["book"]))
        book.position.realised = Decimal(0)
        book.position.fees = Decimal(0)
        state = {"book": book.to_json(), "mark": str(handed_over["mark"])}
        self._adopted_state = state
        return Checkpoint(self.key, ROLE, self.context.pair, STATE_VERSION, 0, state, self.fence)

    # ---------------------------------------------------------------- operator actions

    async def cancel_trade(self, trade_id: uuid.UUID, reason: str = "operator_cancel") -> list[str]:
        """Cancel the working orders of a trade; the client order ids cancelled."""
        events = await self._commit_book_change(lambda: list(self.book.cancel_trade(trade_id, reason)))
        return [event.order.client_order_id for event in events]

    async def _commit_book_change(self, change: Callable[[], list[BookEvent]]) -> list[BookEvent]:
        """Apply `change` to the book and commit its events with a checkpoint, all or nothing: on any
        failure the book and the mark are rewound to what they were."""
        before, mark = self.book.to_json(), self.mark
        try:
            events = change()
            if events:
                trades: dict[uuid.UUID, Trade] = {}
                updates = self._fill_updates(events, trades)
                await self.journal.commit(
                    Commit(
                        trades=[self._trade_row(t) for t in trades.values()],
                        updates=updates,
                        checkpoint=self._checkpoint(self.last_sequence),
                    )
                )
        except BaseException:
            self._rewind(before, mark)
            raise
        return events

    async def flatten(self) -> dict[str, Any]:
        """`runs stop --flatten`: cancel every order that would open or add, then close what is held with a
        reduce-only market order (`close_trade`: one order however often asked). Returns the position and
        what is still working, so the caller can wait until the pair is flat."""
        opening = [o for o in self.book.working.values() if not o.reduce_only]
        if opening:
            await self._commit_book_change(
                lambda: [self.book.cancel(o.client_order_id, "run_stopping") for o in opening]
            )
        if self.book.position.quantity != 0 and self.book.trade is not None:
            reducing = sum((o.signed_quantity for o in self.book.working.values() if o.reduce_only), Decimal(0))
            if self.book.position.quantity + reducing != 0:
                await self.close_trade(self.book.trade.id)
        return self.flatness()

    def flatness(self) -> dict[str, Any]:
        return {
            "pair": self.context.pair,
            "position": str(self.book.position.quantity),
            "working_orders": sorted(self.book.working),
            "flat": self.book.position.quantity == 0 and not self.book.working,
        }

    async def close_trade(self, trade_id: uuid.UUID) -> str:
        """An operator's reduce-only exit of the open trade, filling at the next candle's open. Asking
        while one is working sends nothing more. Its client order id derives from the trade and from how
        many closes the operator sent for it before (a cancelled one's id is spent)."""
        trade = self.book.trade
        if trade is None or trade.id != trade_id:
            raise KeyError(f"trade {trade_id} is not the open trade of {self.context.pair}")
        for working in self.book.working.values():
            if working.trade_id == trade_id and working.reason == "operator":
                return working.client_order_id
        position = self.book.position.quantity
        reducing = sum((o.signed_quantity for o in self.book.working.values() if o.reduce_only), Decimal(0))
        quantity = abs(position + reducing)
        if position == 0:
            raise KeyError(f"trade {trade_id} has no position yet: its opening order is working (cancel-trade)")
        if quantity == 0:
            raise KeyError(f"trade {trade_id} is closing already: a reduce-only order for all of it is working")
        trace = f"operator.{trade_id}"
        sent = await self.journal.orders_traced(trace)
        key = f"{self.context.pair}#close" + (f"#{sent}" if sent else "")
        cid = client_order_id(self.context.run_id, key, int(trade_id.hex[:9], 16))
        intent = OrderIntent(cid, "SELL" if position > 0 else "BUY", quantity, True, "operator", 0)
        before, mark = self.book.to_json(), self.mark
        try:
            order, trade, _ = self.book.place(intent, self.last_sequence, self.book.last_open_ms or 0)
            await self.journal.commit(
                Commit(
                    trades=[self._trade_row(trade)],
                    new_executions=[self._execution_row(order, trace)],
                    checkpoint=self._checkpoint(self.last_sequence),
                )
            )
        except BaseException:
            self._rewind(before, mark)
            raise
        await self._submit([order])
        return cid

    # ---------------------------------------------------------------- rows

    async def _submit(self, orders: list[WorkingOrder]) -> list[str]:
        """Paper submission: the intent was committed first; the paper venue accepts at once."""
        if not orders:
            return []
        updates: list[ExecutionUpdate] = []
        for order in orders:
            steps: tuple[OrderState, ...] = ("submitted", "accepted")
            for step in steps:
                transition(order.state, step)
                updates.append(
                    ExecutionUpdate(
                        order.execution_id,
                        order.state,
                        step,
                        f"paper_{step}",
                        {"venue": PAPER_VENUE},
                        exchange_order_id=f"paper-{order.client_order_id}" if step == "accepted" else None,
                    )
                )
                order.state = step
        await self.journal.commit(Commit(updates=updates, checkpoint=self._checkpoint(self.last_sequence)))
        return [order.client_order_id for order in orders]

    def _fill_updates(self, events: list[BookEvent], trades: dict[uuid.UUID, Trade]) -> list[ExecutionUpdate]:
        updates: list[ExecutionUpdate] = []
        for event in events:
            order = event.order
            trades[event.trade.id] = event.trade
            state: OrderState = order.state
            if isinstance(event, OrderFilled):
                fill = event.fill
                evidence = {
                    "venue": PAPER_VENUE,
                    "fill_price": str(fill.price),
                    "quantity": str(fill.quantity),
                    "fee": str(fill.fee),
                    "candle_open_ms": self.book.last_open_ms,
                }
                updates.append(
                    _step(order, state, "filled", "paper_fill", evidence, fill.quantity, fill.price, fill.fee)
                )
            elif isinstance(event, OrderCancelled):
                updates.append(_step(order, state, "cancelled", event.reason, {"venue": PAPER_VENUE}))
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
        )

    def _checkpoint(self, sequence: int) -> Checkpoint:
        return Checkpoint(
            self.key,
            ROLE,
            self.context.pair,
            STATE_VERSION,
            max(sequence, 0),
            {"book": self.book.to_json(), "mark": str(self.mark)},
            self.fence,
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
        return {
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

    def _rewind(self, book: dict[str, Any], mark: Decimal) -> None:
        self.book = PaperBook.from_json(self.context.pair, self.rules, book)
        self.mark = mark


def action_name(target: float | None) -> str:
    """A decision's action, one type everywhere (the decision row, the decision log line): `long`,
    `short`, `flat` or `hold` (keep the current position). The signed target beside it is a number."""
    return "hold" if target is None else "flat" if target == 0 else "long" if target > 0 else "short"


def _step(
    order: WorkingOrder,
    before: OrderState,
    after: OrderState,
    reason: str,
    evidence: dict[str, Any],
    quantity: Decimal | None = None,
    price: Decimal | None = None,
    fee: Decimal | None = None,
) -> ExecutionUpdate:
    transition(before, after, reason if after in FINAL_STATES else None)
    order.state = after
    return ExecutionUpdate(order.execution_id, before, after, reason, evidence, quantity, price, fee)


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
