"""What the execution journal writes, as plain values: a decision with its provenance snapshot, the
order intents and their state steps, the trades, metrics, and an actor's checkpoint, gathered in one
`Commit`. Pure (no I/O): the execution core builds them, `storage.journal` writes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from domain.orders import OrderState

Mode = Literal["paper", "live"]


@dataclass(frozen=True)
class Checkpoint:
    actor_key: str
    role: str
    pair: str | None
    state_version: int
    sequence: int
    state: Mapping[str, Any]
    fence: int | None = None
    """The writer's fencing token (see `CheckpointStore.claim`); None writes unconditionally."""


@dataclass(frozen=True)
class DecisionRow:
    run_id: uuid.UUID
    pair: str
    interval: str
    candle_open_ms: int
    sequence: int
    trace_id: str
    action: Literal["long", "short", "flat", "hold"]
    target_position: Decimal
    confidence: float | None
    forced_hold_reason: str | None
    gates: Mapping[str, Any]
    policy: str
    risk_reason: str | None
    trading_state: str
    order_count: int
    latency_ms: float
    agent_version_id: uuid.UUID | None = None
    model_artifact_id: uuid.UUID | None = None
    feature_set_version_id: uuid.UUID | None = None
    dataset_version_id: uuid.UUID | None = None


@dataclass(frozen=True)
class SnapshotRow:
    first_open_ms: int
    last_open_ms: int
    candle_count: int
    candles_hash: str
    features: Mapping[str, float | None]
    features_hash: str
    integrity: Mapping[str, Any]
    quality: Mapping[str, Any]


@dataclass(frozen=True)
class TradeRow:
    id: uuid.UUID
    run_id: uuid.UUID
    pair: str
    mode: Mode
    side: Literal["long", "short"]
    status: Literal["open", "closing", "closed", "cancelled"]
    quantity: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    fees: Decimal
    realized_pnl: Decimal | None
    close_reason: str | None
    opened_at_ms: int
    closed_at_ms: int | None
    origin: Literal["decision", "external"] = "decision"
    funding: Decimal = Decimal(0)


@dataclass(frozen=True)
class FundingRow:
    """What a run's position paid at one funding time (`funding_payments`)."""

    run_id: uuid.UUID
    pair: str
    mode: Mode
    funding_time_ms: int
    trade_id: uuid.UUID
    quantity: Decimal
    mark: Decimal
    rate: Decimal
    payment: Decimal
    trade_closed_before: bool = False
    """The trade had left the book (closed before the rate was known): the journal adds the payment to
    its row (funding, and realized_pnl net of it) rather than a trade row carrying it."""


@dataclass(frozen=True)
class ExecutionRow:
    id: uuid.UUID
    run_id: uuid.UUID
    trade_id: uuid.UUID
    trace_id: str
    client_order_id: str
    pair: str
    mode: Mode
    side: Literal["BUY", "SELL"]
    reduce_only: bool
    quantity: Decimal
    reason: str
    order_type: Literal["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"] = "MARKET"
    stop_price: Decimal | None = None
    """A protective order's trigger."""
    price: Decimal | None = None
    """A limit entry's price."""


@dataclass(frozen=True)
class ExecutionUpdate:
    """One step of an order's state machine, with what it changed."""

    id: uuid.UUID
    before: OrderState
    after: OrderState
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    filled_quantity: Decimal | None = None
    avg_fill_price: Decimal | None = None
    fee: Decimal | None = None
    exchange_order_id: str | None = None


@dataclass(frozen=True)
class MetricRow:
    metric: str
    value: float
    pair: str | None = None
    run_id: uuid.UUID | None = None
    trace_id: str | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Commit:
    """Everything one decision (or one operator action) changes, written together or not at all."""

    decision: DecisionRow | None = None
    snapshot: SnapshotRow | None = None
    trades: Sequence[TradeRow] = ()
    new_executions: Sequence[ExecutionRow] = ()
    updates: Sequence[ExecutionUpdate] = ()
    checkpoint: Checkpoint | None = None
    metrics: Sequence[MetricRow] = ()
    funding: Sequence[FundingRow] = ()


@dataclass(frozen=True)
class Adopted:
    """A position taken over from a stopped run."""

    pair: str
    from_run: uuid.UUID
    position: str
    trades: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "from_run": str(self.from_run),
            "position": self.position,
            "trades": list(self.trades),
        }
