"""The live venue behind the execution stage: BingX (or the simulator), one symbol per stage.

Orders go out through `BingXOrders` (each sent once; an ambiguous answer is resolved by client order
id). Nothing fills from candles here: the venue's news of an order (`VenueOrderUpdate`, from its user
stream or a read) is booked as it arrives (`ExecutionStage.on_venue_update`). A submit answers with
the order's steps up to its acceptance; what a lookup learnt beyond that (an order whose lost answer
turned out filled) is kept as news (`take_news`), booked by the stage right after the answers, so a
fill is booked one way only. What an outcome means for the pair (`Consequence`: unresolved, halt the
pair, halt the account) is kept for the actor (`take_consequences`).

A cancel goes to the venue (`cancel`: the stage has written each order `cancel_requested` first) and
is booked on its word: the cancelled order's echo, or, when the venue refuses the cancel (the order
filled first, 80018; the same cancel within a second, 109201) or its answer is lost, a read of the
order. An order the venue could not tell about stays requested, for the next read to end. The book
never cancels an order the venue holds by itself (`evidence` refuses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from domain.candles import Candle
from domain.errors import VenueError
from pipeline.execution.bingx_orders import VENUE, BingXOrders, Consequence, update_from_order
from pipeline.execution.venue import VenueOrderUpdate, VenueStep
from trading.paper import BookEvent, PaperBook, WorkingOrder

log = logging.getLogger("tradingd.execution.bingx")
BEYOND_ACCEPTED = frozenset({"partially_filled", "filled", "cancelled", "expired"})


class VenueCancelRequired(RuntimeError):
    """A book change that would cancel an order the live venue still holds, without asking the venue
    (a bug: the stage cancels through `cancel` when `holds_orders`)."""


@dataclass(frozen=True)
class PairConsequence:
    client_order_id: str
    consequence: Consequence
    reason: str


class BingXVenue:
    name = VENUE
    holds_orders = True

    def __init__(self, orders: BingXOrders, venue_time_ms: Callable[[], int] | None = None) -> None:
        self.orders = orders
        self._venue_time_ms = venue_time_ms or self._clock
        self.last_price: Decimal | None = None
        """The close of the newest candle decided: the price an order's notional is checked at."""
        self._news: list[VenueOrderUpdate] = []
        self._consequences: list[PairConsequence] = []

    def fills(self, book: PaperBook, candle: Candle) -> list[BookEvent]:
        book.pass_candle(candle.open_time_ms)
        self.last_price = Decimal(repr(candle.close))
        return []

    def evidence(self, event: BookEvent, candle_open_ms: int | None) -> VenueStep:
        raise VenueCancelRequired(
            f"order {event.order.client_order_id} is on the live venue: only the venue's word cancels it (cancel)"
        )

    async def submit(self, orders: Sequence[WorkingOrder]) -> list[VenueStep]:
        steps: list[VenueStep] = []
        for order in orders:
            price = self.last_price
            if price is None:  # restarted with intents to send, before any candle: the venue's price
                price = await self.orders.trading.rest.price(self.orders.symbol)
            placement = await self.orders.place(order, price, self._venue_time_ms())
            for step in placement.steps:
                if step.state in BEYOND_ACCEPTED and placement.order is not None:
                    # Booked from the news, one way only: acceptance here, the fill (or cancel) from the news.
                    steps.append(VenueStep(step.client_order_id, "accepted", step.reason, step.evidence,
                                           step.exchange_order_id))  # fmt: skip
                    self._news.append(update_from_order(placement.order, "order_lookup", self._venue_time_ms()))
                    break
                steps.append(step)
            if placement.consequence is not Consequence.NONE:
                reason = placement.reason or placement.consequence.value
                self._consequences.append(PairConsequence(order.client_order_id, placement.consequence, reason))
        return steps

    async def cancel(self, orders: Sequence[WorkingOrder], reason: str) -> list[VenueOrderUpdate]:
        news = []
        for order in orders:
            update = await self._cancel(order.client_order_id)
            if update is not None:
                news.append(replace(update, cancel_reason=reason))
        return news

    async def _cancel(self, client_order_id: str) -> VenueOrderUpdate | None:
        try:
            echo = await self.orders.trading.cancel_order(self.orders.symbol, client_order_id=client_order_id)
            return update_from_order(echo, "cancel", self._venue_time_ms())
        except VenueError as error:  # filled first, cancelled twice, not found, or the answer lost: ask
            log.info("cancel of %s answered %s: reading the order", client_order_id, error)
        try:
            return await self.read(client_order_id)
        except VenueError as error:
            log.warning("cancel of %s: reading the order failed (%s); it stays requested", client_order_id, error)
            return None

    async def read(self, client_order_id: str) -> VenueOrderUpdate:
        """The order as the venue shows it now (the polling that stands in while the stream is down)."""
        order = await self.orders.trading.query_order(self.orders.symbol, client_order_id=client_order_id)
        return update_from_order(order, "order_poll", self._venue_time_ms())

    def take_news(self) -> list[VenueOrderUpdate]:
        news, self._news = self._news, []
        return news

    def take_consequences(self) -> list[PairConsequence]:
        consequences, self._consequences = self._consequences, []
        return consequences

    def _clock(self) -> int:
        return time.time_ns() // 1_000_000 + self.orders.trading.rest.clock_offset_ms
