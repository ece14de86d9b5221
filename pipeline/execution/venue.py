"""Where the execution stage's orders go: the venue, behind one protocol.

The execution core keeps the book (position, trades, working orders) and decides; the venue answers
for what happens to an order outside the core, step by step, with its evidence:

    intent (committed by the core) -> submitted -> accepted   (`submit`, after the intent is committed)
    accepted -> filled | cancelled                            (`fills` at a final candle, `evidence`)
    accepted -> cancel_requested -> cancelled | filled        (`cancel`, a live venue's; paper cancels in the book)

`PaperVenue` accepts at once and fills every working order at the open of the next final candle with
the shared fill model (the `PaperBook`'s fill-at-next-open). The live venue (`bingx_venue.BingXVenue`)
implements the same protocol: nothing fills from candles there, its news of an order is booked as it
arrives (`ExecutionStage.on_venue_update`), and a cancel is asked of it and booked on its word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from domain.candles import Candle
from domain.orders import OrderState
from trading.paper import BookEvent, OrderFilled, PaperBook, WorkingOrder
from trading.protection import ProtectiveOrder


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
    cancel_reason: str | None = None
    """Why we asked the venue to cancel the order (`operator_cancel`, `run_stopping`), when this is the
    answer to our cancel: recorded as the trade's close reason. None: the venue's own (`venue_cancelled`)."""


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

    async def submit(self, orders: Sequence[WorkingOrder], *, after_restart: bool = False) -> list[VenueStep]:
        """Send orders whose intents are committed; every step the venue answered, in order. The stage
        calls it, never the core. `after_restart`: intents a crash left unsent, as far as the journal
        knows (a venue that may hold them already is asked before anything is sent)."""
        ...

    def take_news(self) -> list[VenueOrderUpdate]:
        """What the venue told of orders beyond their answers (a live venue's fills), since last asked;
        the stage books it after the answers."""
        ...

    @property
    def holds_orders(self) -> bool:
        """Whether orders live on the venue, beyond the book: then a cancel is asked of it (`cancel`);
        otherwise (paper) the book cancels them itself."""
        ...

    async def cancel(self, orders: Sequence[WorkingOrder], reason: str) -> list[VenueOrderUpdate]:
        """Ask the venue to cancel `orders` (each `cancel_requested` and written first); what it then
        says of each it answered for (cancelled, or filled before the cancel arrived)."""
        ...


@runtime_checkable
class ProtectiveVenue(Protocol):
    """A live venue that holds protective orders (`trading.protection`) for the book's positions."""

    protective_ids: dict[str, str]
    """The venue's order id of each protective order, by our client order id (reads go by it)."""

    async def place_protective(self, orders: Sequence[ProtectiveOrder], claimed: set[str]) -> list[VenueStep]:
        """Put each order on the venue (one already there, found by type, side, quantity and trigger
        among the open orders not in `claimed`, is taken instead of sending another); every step."""
        ...

    async def cancel_protective(self, orders: Sequence[ProtectiveOrder]) -> list[VenueOrderUpdate]:
        """Cancel by the venue's order id; what the venue then says of each it answered for."""
        ...


class PaperVenue:
    """Paper trading: nothing leaves the process. An order is accepted as it is submitted and fills at
    the next final candle's open (`PaperBook.on_candle`); a cancel takes effect in the book at once."""

    name = "paper"
    holds_orders = False

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
            state: OrderState = "filled" if event.order.remaining == 0 else "partially_filled"
            return VenueStep(client_order_id, state, "paper_fill", evidence)
        return VenueStep(client_order_id, "cancelled", event.reason, {"venue": self.name})

    def take_news(self) -> list[VenueOrderUpdate]:
        return []  # paper fills at candles, in the book

    async def cancel(self, orders: Sequence[WorkingOrder], reason: str) -> list[VenueOrderUpdate]:
        raise RuntimeError("paper orders never leave the book, which cancels them itself (holds_orders is False)")

    async def submit(self, orders: Sequence[WorkingOrder], *, after_restart: bool = False) -> list[VenueStep]:
        steps: list[VenueStep] = []
        for order in orders:
            cid = order.client_order_id
            steps.append(VenueStep(cid, "submitted", "paper_submitted", {"venue": self.name}))
            steps.append(VenueStep(cid, "accepted", "paper_accepted", {"venue": self.name}, f"paper-{cid}"))
        return steps
