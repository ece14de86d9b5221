"""Orders on BingX, each sent once and never taken as final without the venue's word.

`BingXOrders.place` sends one order whose intent the execution stage has committed, and answers with
the order's steps (`VenueStep`) and what the venue's answer means for the pair (`Consequence`):

- **Accepted**: the echo carries the venue's order id (`accepted`; a fill arrives later, from the user
  stream or a read).
- **Refused**: the venue's code says why. Most refusals end the order (`rejected`, with the code and
  message as evidence). A few say more: bad credentials, a missing permission or an IP outside the
  whitelist halt the account; an unknown or suspended symbol halts the pair.
- **Not booked, so sent again with the same client order id**: a rate limit or a stale timestamp (the
  venue refused it; the clock is measured again first) or a connection that never opened
  (`NotSentError`: nothing left this process). Neither is a second
  send: nothing reached the order book, and a repeat that did would be refused as a duplicate.
- **Ambiguous** (a timeout after sending, a reset, HTTP 504 "booked but the answer lost", a 5xx or
  busy code, an echo that does not parse): the order is `unknown`, never rejected, and is looked up by
  its client order id with bounded retries and backoff (a read may lag behind the book), then in the
  symbol's order history (a client id may have a limited lookback). A duplicate-id answer (101481) is
  evidence that the order exists: it is looked up, never sent again. Still not found after the bound:
  the order stays `unknown` and the consequence is `UNRESOLVED` (the pair reduces only and an alert
  names the decision's trace; reconciliation finds the order later, or proves it absent).

A contract check comes first: a quantity off the step, below the minimum quantity or notional, or a
symbol not open to API orders is refused before anything is sent (`intent -> rejected`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Protocol

from domain.errors import (
    DuplicateClientOrderIdError,
    FatalVenueError,
    NotSentError,
    OrderNotFoundError,
    RateLimitedError,
    RejectedError,
    TemporaryVenueError,
    UnknownSymbolError,
    VenueError,
    WireFormatError,
)
from domain.instruments import Contract
from domain.orders import OrderState
from exchange.bingx.trading import BingXTrading, VenueOrder
from exchange.bingx.wire import TIMESTAMP_MISMATCH
from pipeline.execution.venue import VenueOrderUpdate, VenueStep
from trading.paper import POST_ONLY_WOULD_TAKE

VENUE = "bingx"
POST_ONLY_TAKES = 101215
"""A PostOnly order that would have taken liquidity, refused (API.md 2.4)."""
PAIR_HALTING_CODES = frozenset({101415})
"""The pair is suspended from opening: no order of the pair can succeed until it is lifted."""
HISTORY_LOOKBACK_MS = 10 * 60_000
"""How far before the intent the history search starts (the venue's clock may differ from ours)."""
WEEK_MS = 7 * 24 * 60 * 60_000
"""The longest window the order history answers for (80014 beyond)."""


class Consequence(StrEnum):
    """What an order's outcome means beyond the order itself."""

    NONE = "none"
    UNRESOLVED = "unresolved"
    """The outcome is still unknown: the pair reduces only, and the operator is alerted."""
    HALT_PAIR = "halt_pair"
    HALT_ACCOUNT = "halt_account"


class OrderToPlace(Protocol):
    @property
    def client_order_id(self) -> str: ...
    @property
    def side(self) -> Literal["BUY", "SELL"]: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def reduce_only(self) -> bool: ...
    @property
    def limit_price(self) -> Decimal | None:
        """A post-only LIMIT entry's price (sent `timeInForce=PostOnly`); None: a MARKET order."""
        ...


@dataclass(frozen=True)
class Placement:
    """An order's steps since its intent, in order, and what they mean for the pair."""

    steps: tuple[VenueStep, ...]
    consequence: Consequence = Consequence.NONE
    reason: str | None = None
    """Why the consequence, for the alert and the log."""
    order: VenueOrder | None = None
    """The venue's order as last read, when it is known."""
    absent: bool = False
    """Unresolved, and the last lookup answered cleanly that the venue has no such order (neither by its
    id nor in the symbol's history): evidence that it never reached the order book."""

    @property
    def state(self) -> OrderState | None:
        """The order's state now; None when a lookup found nothing and no step was taken."""
        return self.steps[-1].state if self.steps else None


@dataclass(frozen=True)
class Backoff:
    """Bounded retries with exponential backoff and full jitter."""

    attempts: int = 6
    base_sec: float = 0.5
    max_sec: float = 8.0

    def delay(self, attempt: int, at_least: float = 0.0) -> float:
        ceiling = min(self.max_sec, self.base_sec * 2**attempt)
        return max(at_least, random.uniform(0, ceiling))  # noqa: S311 (jitter, not security)


STATUS_STATES: dict[str, OrderState] = {
    "NEW": "accepted",
    "PENDING": "accepted",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELLED": "cancelled",
    "CANCELED": "cancelled",
    "EXPIRED": "expired",
    "FAILED": "rejected",
}
"""The venue's order status (REST `CANCELLED`, websocket `CANCELED`; API.md 6.3) as our order state."""


def contract_refusal(contract: Contract, quantity: Decimal, price: Decimal) -> str | None:
    """Why the venue would refuse (or silently truncate) this quantity now, or None."""
    if not contract.active:
        return f"{contract.symbol} is not open to API orders (status {contract.status})"
    if quantity <= 0 or quantity % contract.step_size:
        return f"quantity {quantity} is not a positive multiple of the step {contract.step_size}"
    if quantity < contract.min_quantity:
        return f"quantity {quantity} is below the minimum {contract.min_quantity}"
    if quantity * price < contract.min_notional:
        return f"notional {quantity * price:.4f} USDT is below the minimum {contract.min_notional}"
    return None


def order_evidence(order: VenueOrder, source: str) -> dict[str, Any]:
    """The venue's order as recorded with a step: where it was read, and what the venue said."""
    return {
        "venue": VENUE,
        "source": source,
        "order_id": str(order.order_id),
        "status": order.status,
        "executed_quantity": str(order.executed_quantity),
        "avg_price": str(order.avg_price),
        "commission": str(order.commission),
    }


def step_from_order(order: VenueOrder, source: str) -> VenueStep:
    """The step the venue's order shows (its status mapped by `STATUS_STATES`)."""
    state = STATUS_STATES.get(order.status)
    if state is None:
        raise WireFormatError(f"order {order.order_id}: unknown status {order.status!r}")
    return VenueStep(
        order.client_order_id, state, f"{VENUE}_{source}", order_evidence(order, source), str(order.order_id)
    )


def update_from_order(order: VenueOrder, source: str, at_ms: int) -> VenueOrderUpdate:
    """A read of the order as the venue's news (totals; the venue reports commission as a negative
    number, a cost)."""
    state = STATUS_STATES.get(order.status)
    if state is None:
        raise WireFormatError(f"order {order.order_id}: unknown status {order.status!r}")
    return VenueOrderUpdate(
        order.client_order_id, str(order.order_id), state, order.executed_quantity, order.avg_price,
        -order.commission, source=source, at_ms=at_ms,
    )  # fmt: skip


def _error_evidence(error: VenueError) -> dict[str, Any]:
    return {"venue": VENUE, "error": type(error).__name__, "code": error.code, "http_status": error.http_status,
            "message": str(error)[:300]}  # fmt: skip


@dataclass
class BingXOrders:
    """One symbol's orders on BingX (`trading` signed with the account's keys)."""

    trading: BingXTrading
    contract: Contract
    send_backoff: Backoff = field(default_factory=lambda: Backoff(attempts=4))
    resolve_backoff: Backoff = field(default_factory=Backoff)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def symbol(self) -> str:
        return self.contract.symbol

    async def place(self, order: OrderToPlace, price: Decimal, intent_ms: int) -> Placement:
        """Send `order` once: a MARKET order (`price` is the price its notional is checked at), or a
        post-only LIMIT at its `limit_price` (refused by the venue, 101215, when it would take: the
        entry ends `rejected` as `post_only_would_take`, as the limit fill model's would). See the module
        docstring for every outcome. `intent_ms`: when its intent was committed (venue time), where a
        history search for it starts."""
        cid = order.client_order_id
        limit = order.limit_price
        refusal = contract_refusal(self.contract, order.quantity, price if limit is None else limit)
        if refusal is None and limit is not None and limit % self.contract.tick_size:
            refusal = f"limit price {limit} is not on the tick grid {self.contract.tick_size}"
        if refusal is not None:
            check = {"venue": VENUE, "check": "contract", "detail": refusal}
            return Placement((VenueStep(cid, "rejected", "contract_rules", check),), reason=refusal)
        submitted = VenueStep(cid, "submitted", f"{VENUE}_submitted", {"venue": VENUE})
        attempts: list[dict[str, Any]] = []
        for attempt in range(self.send_backoff.attempts):
            try:
                echo = await self.trading.place_order(
                    self.symbol, order.side, "MARKET" if limit is None else "LIMIT", order.quantity,
                    client_order_id=cid, reduce_only=order.reduce_only, price=limit,
                    time_in_force=None if limit is None else "PostOnly",
                )  # fmt: skip
            except (NotSentError, RateLimitedError) as error:  # not booked: the same id once more
                attempts.append(_error_evidence(error))
                if attempt + 1 < self.send_backoff.attempts:
                    wait = error.retry_after_sec if isinstance(error, RateLimitedError) else 0.0
                    await self.sleep(self.send_backoff.delay(attempt, at_least=min(wait, self.send_backoff.max_sec)))
                continue
            except DuplicateClientOrderIdError as error:  # it exists: look it up, never send again
                return await self._resolve(submitted, cid, intent_ms, _error_evidence(error))
            except FatalVenueError as error:
                return self._refused(submitted, error, Consequence.HALT_ACCOUNT)
            except UnknownSymbolError as error:
                return self._refused(submitted, error, Consequence.HALT_PAIR)
            except RejectedError as error:
                consequence = Consequence.HALT_PAIR if error.code in PAIR_HALTING_CODES else Consequence.NONE
                return self._refused(submitted, error, consequence)
            except TemporaryVenueError as error:
                if error.code != TIMESTAMP_MISMATCH:  # booked or not: ask the venue
                    return await self._resolve(submitted, cid, intent_ms, _error_evidence(error))
                attempts.append(_error_evidence(error))  # refused before booking: the clock first
                await self.trading.rest.sync_time()
                continue
            except WireFormatError as error:  # an answer we cannot read: booked or not, ask the venue
                return await self._resolve(submitted, cid, intent_ms, _error_evidence(error))
            accepted = VenueStep(
                cid, "accepted", f"{VENUE}_accepted", order_evidence(echo, "place_echo"), str(echo.order_id)
            )
            return Placement((submitted, accepted), order=echo)
        evidence: dict[str, Any] = {"venue": VENUE, "detail": "never booked", "attempts": attempts}
        return Placement(
            (submitted, VenueStep(cid, "rejected", f"{VENUE}_not_booked", evidence)),
            reason=f"not booked after {len(attempts)} attempts: {attempts[-1]['message']}",
        )

    async def place_unless_booked(self, order: OrderToPlace, price: Decimal, intent_ms: int) -> Placement:
        """After a restart, an intent the journal shows unsent: the crash may have come after the submit,
        before its answer was recorded, so the venue is asked first and the order sent only when it has
        not got it (a submit is sent once). A venue that cannot say is asked again within the bound;
        still unknown, the order is unresolved (never sent blind)."""
        cid = order.client_order_id
        submitted = VenueStep(cid, "submitted", f"{VENUE}_submitted", {"venue": VENUE})
        try:
            found = await self._find(cid, intent_ms)
        except FatalVenueError as error:
            return Placement((), Consequence.HALT_ACCOUNT, f"cannot read order {cid}: {error}")
        except (TemporaryVenueError, WireFormatError) as error:
            return await self._resolve(submitted, cid, intent_ms, _error_evidence(error))
        if found is None:
            return await self.place(order, price, intent_ms)
        return Placement((submitted, step_from_order(found, "order_lookup")), order=found)

    async def resolve(self, client_order_id: str, intent_ms: int) -> Placement:
        """An order whose outcome is unknown (after a crash, or an ambiguous answer): as the venue shows
        it, or `UNRESOLVED` after the bound."""
        return await self._resolve(None, client_order_id, intent_ms, None)

    # ---------------------------------------------------------------- internals

    def _refused(self, submitted: VenueStep, error: VenueError, consequence: Consequence) -> Placement:
        # A post-only entry that would have taken ends as the limit fill model's rejection does.
        reason = POST_ONLY_WOULD_TAKE if error.code == POST_ONLY_TAKES else f"{VENUE}_refused"
        rejected = VenueStep(submitted.client_order_id, "rejected", reason, _error_evidence(error))
        return Placement((submitted, rejected), consequence, str(error))

    async def _resolve(
        self, submitted: VenueStep | None, cid: str, intent_ms: int, why: dict[str, Any] | None
    ) -> Placement:
        steps: list[VenueStep] = [] if submitted is None else [submitted]
        if why is not None:
            steps.append(VenueStep(cid, "unknown", f"{VENUE}_outcome_unknown", why))
        last: str = "not found"
        for attempt in range(self.resolve_backoff.attempts):
            try:
                found = await self._find(cid, intent_ms)
                last = "not found"
            except FatalVenueError as error:
                return Placement(tuple(steps), Consequence.HALT_ACCOUNT, f"cannot read order {cid}: {error}")
            except (TemporaryVenueError, WireFormatError) as error:
                found, last = None, str(error)
            if found is not None:
                steps.append(step_from_order(found, "order_lookup"))
                return Placement(tuple(steps), order=found)
            if attempt + 1 < self.resolve_backoff.attempts:
                await self.sleep(self.resolve_backoff.delay(attempt))
        reason = f"order {cid} unresolved after {self.resolve_backoff.attempts} lookups ({last})"
        return Placement(tuple(steps), Consequence.UNRESOLVED, reason, absent=last == "not found")

    async def _find(self, cid: str, intent_ms: int) -> VenueOrder | None:
        """The order by client order id, else in the symbol's history since the intent; None: not found."""
        try:
            return await self.trading.query_order(self.symbol, client_order_id=cid)
        except OrderNotFoundError:
            pass
        start = intent_ms - HISTORY_LOOKBACK_MS
        history = await self.trading.all_orders(self.symbol, start_ms=start, end_ms=start + WEEK_MS, limit=1000)
        return next((order for order in history if order.client_order_id == cid), None)
