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
from domain.errors import NotSentError, RejectedError, VenueError
from exchange.bingx.trading import VenueOrder
from pipeline.execution.bingx_orders import VENUE, BingXOrders, Consequence, update_from_order
from pipeline.execution.venue import VenueOrderUpdate, VenueStep
from trading.paper import BookEvent, PaperBook, WorkingOrder
from trading.protection import ORDER_TYPES, ProtectiveOrder

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
        self.protective_ids: dict[str, str] = {}
        """Our protective orders' ids on the venue, by our client order id (the stage keeps it current)."""

    def fills(self, book: PaperBook, candle: Candle) -> list[BookEvent]:
        book.pass_candle(candle.open_time_ms)
        self.last_price = Decimal(repr(candle.close))
        return []

    def evidence(self, event: BookEvent, candle_open_ms: int | None) -> VenueStep:
        raise VenueCancelRequired(
            f"order {event.order.client_order_id} is on the live venue: only the venue's word cancels it (cancel)"
        )

    async def submit(self, orders: Sequence[WorkingOrder], *, after_restart: bool = False) -> list[VenueStep]:
        steps: list[VenueStep] = []
        for order in orders:
            price = self.last_price
            if price is None:  # restarted with intents to send, before any candle: the venue's price
                price = await self.orders.trading.rest.price(self.orders.symbol)
            send = self.orders.place_unless_booked if after_restart else self.orders.place
            placement = await send(order, price, self._venue_time_ms())
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
        """The order as the venue shows it now (the polling that stands in while the stream is down). A
        protective order is read by the venue's order id (it has no client id there)."""
        exchange_id = self.protective_ids.get(client_order_id)
        trading, symbol = self.orders.trading, self.orders.symbol
        if exchange_id is not None:
            order = await trading.query_order(symbol, order_id=int(exchange_id))
            return replace(
                update_from_order(order, "order_poll", self._venue_time_ms()), client_order_id=client_order_id
            )
        order = await trading.query_order(symbol, client_order_id=client_order_id)
        return update_from_order(order, "order_poll", self._venue_time_ms())

    # ---------------------------------------------------------------- protective orders

    async def place_protective(self, orders: Sequence[ProtectiveOrder], claimed: set[str]) -> list[VenueStep]:
        steps: list[VenueStep] = []
        for order in orders:
            cid = order.client_order_id
            if order.state == "intent":
                steps.append(VenueStep(cid, "submitted", f"{VENUE}_submitted", {"venue": VENUE}))
            found = await self._find_protective(order, claimed)
            if found is not None:  # sent before (its answer lost, or a crash before it was recorded)
                steps.append(self._protective_accepted(order, found, "found_open"))
                claimed.add(str(found.order_id))
                continue
            step = await self._send_protective(order, claimed)
            if step is not None:
                steps.append(step)
        return steps

    async def _send_protective(self, order: ProtectiveOrder, claimed: set[str]) -> VenueStep | None:
        """Send one protective order; its step, or None while its outcome is unknown (the next attempt
        looks for it among the open orders before sending again)."""
        cid, trading = order.client_order_id, self.orders.trading
        try:
            echo = await trading.place_conditional(
                self.orders.symbol, order.side, ORDER_TYPES[order.kind], order.quantity, order.trigger
            )
        except NotSentError:
            return None  # nothing left this process: sent again next time
        except RejectedError as error:  # nothing to reduce (101290), a trigger the venue refuses, ...
            evidence = {"venue": VENUE, "code": error.code, "message": str(error)[:300]}
            return VenueStep(cid, "rejected", f"{VENUE}_refused", evidence)
        except VenueError as error:  # ambiguous: it may be on the venue
            log.warning("protective order %s: the answer was lost (%s): looking for it", cid, error)
            for attempt in range(self.orders.resolve_backoff.attempts):
                try:
                    found = await self._find_protective(order, claimed)
                except VenueError:
                    found = None
                if found is not None:
                    claimed.add(str(found.order_id))
                    return self._protective_accepted(order, found, "found_after_lost_answer")
                await self.orders.sleep(self.orders.resolve_backoff.delay(attempt))
            if order.state == "unknown":
                return None
            return VenueStep(cid, "unknown", f"{VENUE}_outcome_unknown", {"venue": VENUE, "error": str(error)[:300]})
        claimed.add(str(echo.order_id))
        return self._protective_accepted(order, echo, "accepted")

    def _protective_accepted(self, order: ProtectiveOrder, venue: VenueOrder, how: str) -> VenueStep:
        self.protective_ids[order.client_order_id] = str(venue.order_id)
        evidence = {"venue": VENUE, "order_id": str(venue.order_id), "how": how, "stop_price": str(venue.stop_price)}
        return VenueStep(order.client_order_id, "accepted", f"{VENUE}_{how}", evidence, str(venue.order_id))

    async def _find_protective(self, order: ProtectiveOrder, claimed: set[str]) -> VenueOrder | None:
        for candidate in await self.orders.trading.open_orders(self.orders.symbol):
            if str(candidate.order_id) in claimed or candidate.type != ORDER_TYPES[order.kind]:
                continue
            if (candidate.side, candidate.quantity, candidate.stop_price) == (
                order.side,
                order.quantity,
                order.trigger,
            ):
                return candidate
        return None

    async def cancel_protective(self, orders: Sequence[ProtectiveOrder]) -> list[VenueOrderUpdate]:
        news = []
        trading, symbol = self.orders.trading, self.orders.symbol
        for order in orders:
            if order.exchange_order_id is None:
                continue
            try:
                echo = await trading.cancel_order(symbol, order_id=int(order.exchange_order_id))
                update = update_from_order(echo, "cancel", self._venue_time_ms())
            except VenueError as error:  # triggered first, cancelled twice, or the answer lost: ask
                log.info("cancel of protective order %s answered %s: reading it", order.client_order_id, error)
                try:
                    update = update_from_order(
                        await trading.query_order(symbol, order_id=int(order.exchange_order_id)), "order_poll",
                        self._venue_time_ms(),
                    )  # fmt: skip
                except VenueError:
                    continue  # stays cancel_requested: the next read ends it
            news.append(replace(update, client_order_id=order.client_order_id, cancel_reason="protection_moved"))
        return news

    def take_news(self) -> list[VenueOrderUpdate]:
        news, self._news = self._news, []
        return news

    def take_consequences(self) -> list[PairConsequence]:
        consequences, self._consequences = self._consequences, []
        return consequences

    def _clock(self) -> int:
        return time.time_ns() // 1_000_000 + self.orders.trading.rest.clock_offset_ms
