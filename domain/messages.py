"""The messages one pair's actors pass along its pipeline, in order:

    feed --Candle--> features --MarketInput--> policy --PolicyDecision--> risk --OrderPlan--> execution
    execution --PositionReport--> risk, policy, account guard

Immutable and small. Each carries the pair, the decision `sequence` (the candle's index on its interval
grid: the same candle always has the same number, so a restarted actor derives the same client order
ids) and the `trace_id` born with the candle. Market data may be conflated; decisions, orders and
position reports never are (execution records every decision, and a report carries a whole position).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from domain.candles import Candle, interval_ms
from domain.limit_orders import EntryKind
from domain.market import Interval

Side = Literal["BUY", "SELL"]
ExitReason = Literal["target", "stop_loss", "take_profit", "operator"]


def decision_sequence(interval: Interval, open_time_ms: int) -> int:
    """A candle's index on its interval's grid (minutes since the epoch for 1m candles)."""
    return open_time_ms // interval_ms(interval)


def trace_id(pair: str, interval: Interval, open_time_ms: int) -> str:
    """Born with the candle, readable in logs and stable across restarts."""
    return f"{pair}.{interval}.{open_time_ms}"


@dataclass(frozen=True, slots=True)
class InputSnapshot:
    """What a decision saw: the candle window its features came from, and hashes of both."""

    first_open_ms: int
    last_open_ms: int
    candle_count: int
    candles_hash: str
    features_hash: str
    feature_set: str
    feature_set_version_id: str | None
    feature_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MarketInput:
    """features -> policy: the market features of one final candle, or the reason none may be used."""

    run_id: str
    pair: str
    interval: Interval
    sequence: int
    trace_id: str
    candle: Candle
    features: tuple[float, ...]
    """Raw market features (the policy scales them with its artifact's statistics); empty when forced."""
    forced_hold: str | None
    """A gate's reason (or `warming_up`): the policy must hold."""
    gates: Mapping[str, object]
    snapshot: InputSnapshot | None
    final_at: float
    """Wall time (epoch s) at which the feature actor had the candle: decision latency starts here."""


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """policy -> risk: a target position (signed fraction of the maximum), or HOLD."""

    input: MarketInput
    policy: str
    target: float | None
    confidence: float
    action: int | None = None
    hold_reason: str | None = None
    agent_version_id: str | None = None
    model_artifact_id: str | None = None
    dataset_version_id: str | None = None
    entry: EntryKind = "market"
    """How a position the decision opens or grows is entered (`domain.limit_orders`)."""


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order the risk guard allowed. A decision yields at most two: the part that reduces or closes
    the position (leg 0, reduce-only, a market order) and the part that opens the other side or grows the
    position (leg 1: a market order, or a post-only limit at the touch when the policy asked for one)."""

    client_order_id: str
    side: Side
    quantity: Decimal
    reduce_only: bool
    reason: ExitReason
    leg: int
    limit_price: Decimal | None = None
    """A post-only LIMIT entry's price (`domain.limit_orders`); None: a market order."""

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "BUY" else -self.quantity


@dataclass(frozen=True, slots=True)
class RiskOutcome:
    allowed: bool
    reason: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """risk -> execution: the decision, what the risk guard made of it, and the orders to send (none on
    HOLD, on an unchanged target, or when denied). Execution records every plan exactly once."""

    decision: PolicyDecision
    target_quantity: Decimal | None
    orders: tuple[OrderIntent, ...]
    risk: RiskOutcome
    trading_state: str
    """The effective state: the strictest of the pair's and the account's."""
    blocked_by: tuple[str, ...] = ()
    """What holds the pair back (`daily_loss_limit`, `source_stale`, the operator's reason, ...)."""
    cancels_resting: bool = False
    """An exit is due while a limit entry rests: execution cancels it before sending the orders."""


@dataclass(frozen=True, slots=True)
class PositionReport:
    """execution -> risk, policy and the account guard: the pair's whole position after a change.

    `working` is the signed quantity still to fill of orders execution knows; orders the risk guard
    sent that execution has not recorded yet are those with a sequence after `last_sequence`."""

    pair: str
    quantity: Decimal
    entry_price: Decimal
    working: Decimal
    last_sequence: int
    mark: Decimal
    realised: Decimal
    fees: Decimal
    bars_held: int
    version: int
    """Increases with every report of the pair, so a late report never overwrites a newer one."""
    resting: Decimal = Decimal(0)
    """The signed quantity still to fill of resting limit entries (not in `working`: they fill by the
    limit fill model, not at the next open)."""
    funding: Decimal = Decimal(0)
    """Funding the pair's positions paid in this run (negative: received)."""
