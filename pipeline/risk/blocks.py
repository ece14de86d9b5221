"""What keeps a pair from trading: each cause (the account's daily loss limit or circuit breaker, the
pair's automatic pause, the operator's pause, the start-up halt) as a `Block` with its figures, and the
transitions (a block began, a block cleared) that are logged and alerted once each.

A pair's effective state, the one that governs its orders, is the strictest of its own blocks and the
account's; `effective_state` names it with its causes (`HALTED (daily_loss_limit)`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from domain.trading_state import Origin, TradingState, strictest

Scope = Literal["account", "pair"]


@dataclass(frozen=True, slots=True)
class Block:
    cause: str
    """Stable: `daily_loss_limit`, `circuit_breaker`, `source_stale`, `gate:<reason>`, `not_reconciled`,
    or the operator's pause reason."""
    scope: Scope
    state: TradingState
    """What it allows: HALTED (nothing new) or REDUCING (only orders that reduce a position)."""
    origin: Origin
    detail: str
    """One sentence with the figures, for an operator."""
    until: datetime | None = None
    """When it lifts by itself (the next trading day) or can first be resumed (a breaker's cooldown)."""
    figures: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "scope": self.scope,
            "state": self.state,
            "origin": self.origin,
            "detail": self.detail,
            "until": None if self.until is None else self.until.isoformat(),
            "figures": dict(self.figures),
        }


@dataclass(frozen=True, slots=True)
class Transition:
    """A block began (`began`) or cleared; `cleared_by` says how (`next_trading_day`, `operator`, ...)."""

    block: Block
    began: bool
    cleared_by: str | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account guard's answer to a pair deciding a candle: its state and what blocks it."""

    trading_state: TradingState
    blocks: tuple[Block, ...] = ()


class Announcer:
    """Remembers the blocks last announced; `changes` gives each block that began or cleared since, once.
    Figures changing under the same cause (a further loss) are no new transition."""

    def __init__(self, blocks: Iterable[Block] = ()) -> None:
        self.announced: dict[str, Block] = {block.cause: block for block in blocks}

    def changes(self, blocks: Iterable[Block], cleared_by: Mapping[str, str] | None = None) -> list[Transition]:
        current = {block.cause: block for block in blocks}
        transitions = [
            Transition(block, False, (cleared_by or {}).get(cause))
            for cause, block in self.announced.items()
            if cause not in current
        ]
        transitions += [Transition(block, True) for cause, block in current.items() if cause not in self.announced]
        self.announced = current
        return transitions


def effective(own: TradingState, blocks: Iterable[tuple[TradingState, str]]) -> tuple[TradingState, str]:
    """The state that governs orders, from the pair's own and each block's (state, cause), and its name
    with the causes that impose it: `HALTED (daily_loss_limit, source_stale)`."""
    blocks = list(blocks)
    state = strictest(own, *(blocked for blocked, _ in blocks))
    causes = [cause for blocked, cause in blocks if blocked == state] if state != "ACTIVE" else []
    return state, f"{state} ({', '.join(causes)})" if causes else state


def not_running(pair_state: str) -> Block:
    """A pair whose actors are starting, restarting, FAULTED or stopped: nothing trades it."""
    return Block(pair_state, "pair", "HALTED", "automatic", f"the pair's actors are {pair_state}")


ACCOUNT_UNAVAILABLE = Block(
    "account_guard_unavailable", "account", "HALTED", "automatic", "the account guard did not answer (restarting)"
)
"""What blocks every pair while the account guard does not answer (the supervisor is restarting it)."""
