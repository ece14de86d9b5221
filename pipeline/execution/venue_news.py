"""Where a live pair's order news comes from: the venue's user-data stream while it is up, reads of the
pair's working orders while it is down, and one read of them after every (re)connection for what the
gap missed (the venue replays nothing).

`VenueNews.run()` turns each `ORDER_TRADE_UPDATE` of the pair's symbol into a `VenueOrderUpdate` and
hands it to `deliver` (the execution actor books it through its inbox, in order with its plans). A
stream update the book cannot cost (a fill it missed: only the newest fill's fee is on the stream) is
answered by a read of the order, whose totals carry every fee. Each pair runs its own stream (a
listenKey of its own, filtered to its symbol), so a pair's restart leaves the others' news alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from domain.errors import OrderNotFoundError, VenueError
from exchange.bingx.user_stream import OrderUpdate, UserDataStream, UserStreamConnected, UserStreamLost
from pipeline.execution.bingx_orders import STATUS_STATES
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.core import FeeUnknownError
from pipeline.execution.venue import VenueOrderUpdate

log = logging.getLogger("tradingd.execution.news")
POLL_EVERY_SEC = 5.0

Deliver = Callable[[VenueOrderUpdate], Awaitable[None]]


def update_from_stream(event: OrderUpdate) -> VenueOrderUpdate | None:
    """The stream's order event as news (None for a status we do not know: logged, never booked)."""
    state = STATUS_STATES.get(event.status)
    if state is None:
        log.warning("unknown order status %r on the user stream for %s", event.status, event.client_order_id)
        return None
    return VenueOrderUpdate(
        event.client_order_id, str(event.order_id), state, event.filled, event.average_price, None,
        event.last_quantity, event.last_price, event.last_fee, "user_stream", event.time_ms,
    )  # fmt: skip


@dataclass
class NewsStats:
    streamed: int = 0
    polled: int = 0
    reads_for_fees: int = 0
    polls: int = 0
    stream_up: bool = False


class VenueNews:
    def __init__(
        self,
        stream: UserDataStream,
        venue: BingXVenue,
        working: Callable[[], Iterable[str]],
        deliver: Deliver,
        *,
        poll_every_sec: float = POLL_EVERY_SEC,
    ) -> None:
        self.stream = stream
        self.venue = venue
        self.symbol = venue.orders.symbol
        self.working = working
        self.deliver = deliver
        self.poll_every_sec = poll_every_sec
        self.stats = NewsStats()
        self._poller: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Until cancelled (or `stream.close()`); polling stands in from the start until the stream is up."""
        self._start_polling()
        try:
            async for event in self.stream.events():
                if isinstance(event, UserStreamConnected):
                    self.stats.stream_up = True
                    await self._stop_polling()
                    await self.poll_once()  # what the gap (or the time before the first connection) missed
                elif isinstance(event, UserStreamLost):
                    self.stats.stream_up = False
                    self._start_polling()
                elif isinstance(event, OrderUpdate) and event.symbol == self.symbol:
                    news = update_from_stream(event)
                    if news is not None:
                        self.stats.streamed += 1
                        await self.book(news)
        finally:
            await self._stop_polling()

    async def book(self, news: VenueOrderUpdate) -> None:
        """Deliver `news`; when the book cannot cost it, a read of the order instead."""
        try:
            await self.deliver(news)
        except FeeUnknownError:
            self.stats.reads_for_fees += 1
            await self.deliver(await self.venue.read(news.client_order_id))

    async def poll_once(self) -> None:
        """Read every working order once and deliver what the venue shows."""
        self.stats.polls += 1
        for cid in list(self.working()):
            try:
                news = await self.venue.read(cid)
            except OrderNotFoundError:
                continue  # not on the venue (yet): its submit resolves it
            self.stats.polled += 1
            await self.deliver(news)

    def _start_polling(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever())

    async def _stop_polling(self) -> None:
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except VenueError as error:  # the venue is away too: the next round asks again
                log.warning("reading the working orders failed: %s", error)
            except Exception:  # booking failed: said loudly, and the next round tries again
                log.exception("booking a read of the working orders failed")
            await asyncio.sleep(self.poll_every_sec)
