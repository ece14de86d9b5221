"""Trading states of a pair (and of the whole account).

- ACTIVE: orders that open, grow, reduce or close positions are allowed.
- REDUCING: only orders that reduce or close a position.
- HALTED: no new orders at all.

A state change always carries a reason; automatic pauses (a stale source, a failed integrity gate)
are told apart from an operator's, so that freshness returning resumes only what it paused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
TRADING_STATES: Final[tuple[TradingState, ...]] = get_args(TradingState)
Origin = Literal["operator", "automatic", "startup", "shutdown", "venue"]
"""`venue`: what an order's outcome on a live venue means for the pair (an outcome left unresolved, a
suspended symbol, refused credentials); only the operator's `resume` lifts it."""


@dataclass(frozen=True, slots=True)
class StateChange:
    before: TradingState
    after: TradingState
    reason: str
    origin: Origin


def allows(state: TradingState, reduces_position: bool) -> bool:
    """Whether an order may be sent in this state."""
    if state == "ACTIVE":
        return True
    return state == "REDUCING" and reduces_position


def strictest(*states: TradingState) -> TradingState:
    """The combined state of a pair and the account: the most restrictive wins."""
    return max(states, key=TRADING_STATES.index)
