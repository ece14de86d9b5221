"""The order state machine, as `trade_executions.state` records it.

    intent -> submitted -> accepted -> partially_filled -> filled
                 |            |              |
                 |            +--> cancel_requested -> cancelled
                 +--> unknown (the submit's outcome was lost) -> any state the venue then reports
    rejected, expired: the venue refused or dropped the order

An intent is written before anything is sent, so a crash can never leave an order nobody knows about.
A final state (filled, cancelled, rejected, expired) is entered only with evidence from the venue (or,
in paper trading, from the paper matcher): the caller names it, and it is recorded with the transition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, get_args

OrderState = Literal[
    "intent",
    "submitted",
    "accepted",
    "partially_filled",
    "filled",
    "cancel_requested",
    "cancelled",
    "rejected",
    "expired",
    "unknown",
]
ORDER_STATES: Final[tuple[OrderState, ...]] = get_args(OrderState)
FINAL_STATES: Final[frozenset[OrderState]] = frozenset({"filled", "cancelled", "rejected", "expired"})

_VENUE_OUTCOMES: Final[frozenset[OrderState]] = frozenset(
    {"accepted", "partially_filled", "filled", "cancelled", "rejected", "expired"}
)
TRANSITIONS: Final[dict[OrderState, frozenset[OrderState]]] = {
    "intent": frozenset({"submitted", "rejected"}),  # rejected: refused before sending (risk, minimums)
    "submitted": _VENUE_OUTCOMES | {"unknown"},
    "unknown": _VENUE_OUTCOMES,
    "accepted": frozenset({"partially_filled", "filled", "cancel_requested", "cancelled", "expired"}),
    "partially_filled": frozenset({"partially_filled", "filled", "cancel_requested", "cancelled", "expired"}),
    "cancel_requested": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "filled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}


class OrderTransitionError(ValueError):
    """A transition the state machine does not allow (or a final one without evidence)."""


@dataclass(frozen=True, slots=True)
class Transition:
    before: OrderState
    after: OrderState
    evidence: str | None


def transition(before: OrderState, after: OrderState, evidence: str | None = None) -> Transition:
    """Validate one step. `evidence` (the venue's status, an order query, a paper fill, a risk denial)
    is required to enter a final state."""
    if after not in TRANSITIONS[before]:
        raise OrderTransitionError(f"an order cannot go from {before} to {after}")
    if after in FINAL_STATES and not evidence:
        raise OrderTransitionError(f"an order enters {after} only with evidence from the venue")
    return Transition(before, after, evidence)


MAX_CLIENT_ORDER_ID = 40


def client_order_id(run_id: str, pair: str, sequence: int) -> str:
    """Deterministic: the same decision always names its order the same, so a resubmission after a crash
    is refused by the venue as a duplicate (101481) rather than placed twice. 1-40 characters, lower
    case, as BingX requires: `td-<24 hex of run and pair>-<decision sequence>`."""
    if sequence < 0 or sequence >= 10**11:
        raise ValueError("the decision sequence must be in [0, 10^11)")
    return f"td-{_run_digest(run_id, pair)}-{sequence}"


@lru_cache(maxsize=1024)
def _run_digest(run_id: str, pair: str) -> str:
    """Cached: a run names every order of a pair with the same digest (the backtests name one per bar)."""
    return hashlib.sha256(f"{run_id}|{pair}".encode()).hexdigest()[:24]
