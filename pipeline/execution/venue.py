"""Where the execution stage's orders go: the venue, behind one protocol.

The execution core keeps the book (position, trades, working orders) and decides; the venue answers
for what happens to an order outside the core, step by step, with its evidence:

    intent (committed by the core) -> submitted -> accepted   (`submit`, after the intent is committed)
    accepted -> filled | cancelled                            (`fills` at a final candle, `evidence`)

`PaperVenue` is the one venue today: it accepts at once and fills every working order at the open of
the next final candle with the shared fill model (the `PaperBook`'s fill-at-next-open). A live venue
(BingX) implements the same protocol, so the decision logic does not change when it arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from domain.candles import Candle
from domain.orders import OrderState
from trading.paper import BookEvent, OrderFilled, PaperBook, WorkingOrder


@dataclass(frozen=True)
class VenueStep:
    """The venue's evidence that one order moved one step of its state machine."""

    client_order_id: str
    state: OrderState
    """The state the order is in now (`submitted`, `accepted`, `filled`, `cancelled`)."""
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    exchange_order_id: str | None = None


@dataclass(frozen=True)
class VenueOrderUpdate:
    """What a live venue says of one of our orders now (its user stream, or a read of the order). The
    figures are totals, so the same update twice, or a read after the stream told it, books nothing
    more: the book fills only what exceeds what it has."""

    client_order_id: str
    exchange_order_id: str
    state: OrderState
    """The venue's status as our order state (`accepted`, `partially_filled`, `filled`, `cancelled`, ...)."""
    filled: Decimal
    """All that has filled."""
    average_price: Decimal
    fees: Decimal | None
    """All that was paid (positive); None when only the last fill's fee is known (the stream)."""
    last_quantity: Decimal = Decimal(0)
    last_price: Decimal = Decimal(0)
    last_fee: Decimal = Decimal(0)
    """The newest fill's figures (the stream's `l`, `L`, `n`), exact where it is the whole news."""
    source: str = "order_lookup"
    at_ms: int = 0
    """The venue's time of the update."""


class Venue(Protocol):
    @property
    def name(self) -> str:
        """Recorded with every step (`evidence.venue`)."""
        ...

    def fills(self, book: PaperBook, candle: Candle) -> list[BookEvent]:
        """What a final candle fills of the book's working orders, applied to the book (a reduce-only
        order with nothing left to reduce is cancelled). Synchronous: the core calls it."""
        ...

    def evidence(self, event: BookEvent, candle_open_ms: int | None) -> VenueStep:
        """The venue's record of a fill or a cancel the book reported."""
        ...

    async def submit(self, orders: Sequence[WorkingOrder]) -> list[VenueStep]:
        """Send orders whose intents are committed; every step the venue answered, in order. The stage
        calls it, never the core."""
        ...

    def take_news(self) -> list[VenueOrderUpdate]:
        """What the venue told of orders beyond their answers (a live venue's fills), since last asked;
        the stage books it after the answers."""
        ...


class PaperVenue:
    """Paper trading: nothing leaves the process. An order is accepted as it is submitted and fills at
    the next final candle's open (`PaperBook.on_candle`); a cancel takes effect in the book at once."""

    name = "paper"

    def fills(self, book: PaperBook, candle: Candle) -> list[BookEvent]:
        return book.on_candle(candle)

    def evidence(self, event: BookEvent, candle_open_ms: int | None) -> VenueStep:
        client_order_id = event.order.client_order_id
        if isinstance(event, OrderFilled):
            fill = event.fill
            evidence = {
                "venue": self.name,
                "fill_price": str(fill.price),
                "quantity": str(fill.quantity),
                "fee": str(fill.fee),
                "candle_open_ms": candle_open_ms,
            }
            return VenueStep(client_order_id, "filled", "paper_fill", evidence)
        return VenueStep(client_order_id, "cancelled", event.reason, {"venue": self.name})

    def take_news(self) -> list[VenueOrderUpdate]:
        return []  # paper fills at candles, in the book

    async def submit(self, orders: Sequence[WorkingOrder]) -> list[VenueStep]:
        steps: list[VenueStep] = []
        for order in orders:
            cid = order.client_order_id
            steps.append(VenueStep(cid, "submitted", "paper_submitted", {"venue": self.name}))
            steps.append(VenueStep(cid, "accepted", "paper_accepted", {"venue": self.name}, f"paper-{cid}"))
        return steps
