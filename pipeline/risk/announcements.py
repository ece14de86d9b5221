"""What an operator is told when a block begins or clears: the event, its log level, the alert's severity,
kind and message, and the figures, for a pair's automatic pause and for the account's halts. Pure: the
actor shells log and store what this returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pipeline.risk.account import BREAKER
from pipeline.risk.blocks import Transition
from storage.ops import Severity

Level = Literal["critical", "warning"]


@dataclass(frozen=True, slots=True)
class Announcement:
    event: str
    """The log event, also the alert's kind."""
    level: Level
    severity: Severity
    message: str
    fields: dict[str, Any]
    """The log line's fields."""
    details: dict[str, Any]
    """The alert's details."""


def pair_announcement(pair: str, transition: Transition) -> Announcement:
    """A pair's automatic pause (a failed gate, a stale source) began (`pair_halted`) or cleared
    (`pair_resumed`)."""
    block = transition.block
    fields: dict[str, Any] = {"pair": pair, "reason": block.cause, "detail": block.detail, **block.figures}
    details = {"reason": block.cause, "cleared_by": transition.cleared_by, **block.figures}
    if transition.began:
        message = f"{pair} is {block.state}: {block.detail}"
        return Announcement("pair_halted", "warning", "warning", message, {**fields, "state": block.state}, details)
    message = f"{pair}: the automatic pause ({block.cause}) cleared ({transition.cleared_by})"
    fields["cleared_by"] = transition.cleared_by
    return Announcement("pair_resumed", "warning", "info", message, fields, details)


def account_announcement(
    transition: Transition, market_time: str, pair: str | None = None, trade_id: str | None = None
) -> Announcement:
    """The account's halt (daily loss limit, circuit breaker) began (`account_halted`), cleared
    (`account_resumed`), or the breaker cooled down (`circuit_breaker_cooled_down`: `resume` may close it);
    `pair` and `trade_id`: the trade whose close caused it, if one did."""
    block = transition.block
    fields: dict[str, Any] = {"reason": block.cause, "detail": block.detail, "market_time": market_time}
    fields.update(block.figures)
    details: dict[str, Any] = {"reason": block.cause, "market_time": market_time, **block.figures}
    if trade_id is not None:
        details["trade_id"] = trade_id
    if transition.began:
        fields.update(pair=pair, trade_id=trade_id)
        last = f" (last: trade {trade_id} on {pair})" if trade_id is not None and block.cause == BREAKER else ""
        message = f"the account is {block.state}: {block.detail}{last}"
        return Announcement("account_halted", "critical", "critical", message, fields, details)
    if transition.cleared_by == "cooldown_over":
        message = "the circuit breaker has cooled down: `tradingd ctl resume` closes it"
        return Announcement("circuit_breaker_cooled_down", "warning", "info", message, fields, details)
    details["cleared_by"] = transition.cleared_by
    message = f"the account's {block.cause} halt cleared ({transition.cleared_by})"
    return Announcement(
        "account_resumed", "warning", "info", message, {**fields, "cleared_by": transition.cleared_by}, details
    )
