"""Fetch a range of candles over REST and store the final ones (used after a websocket outage, by the
polling fallback, and by the gap monitor)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domain.candles import Candle, interval_ms
from domain.market import Interval
from exchange.bingx.rest import BingXRest
from market_data.screening import screen
from storage.candles import CandleStore

PAGE = 1440
SOURCE = "bingx-rest"


@dataclass(frozen=True)
class Healed:
    stored: list[Candle]
    rejected: int
    requests: int


async def heal_range(
    rest: BingXRest,
    store: CandleStore,
    pair: str,
    interval: Interval,
    start_ms: int,
    end_ms: int,
    on_page: Callable[[int], None] | None = None,
) -> Healed:
    """Store the candles with `start_ms <= open < end_ms`, paging forward. Candles at or after
    `end_ms` are never stored here: the caller passes the open time of a candle known to be later, so
    everything below it is final. `on_page(n)`: a page covering `n` open times was fetched."""
    step = interval_ms(interval)
    cursor = start_ms - start_ms % step
    stored: list[Candle] = []
    rejected = requests = 0
    while cursor < end_ms:
        window_end = min(end_ms, cursor + PAGE * step)
        batch = await rest.klines(pair, interval, start_ms=cursor, end_ms=window_end - 1, limit=PAGE)
        requests += 1
        screened = screen(batch, pair, interval, SOURCE)
        rejected += screened.rejected
        accepted = screened.accepted
        candles = accepted.take((accepted.open_time_ms >= cursor) & (accepted.open_time_ms < window_end))
        if len(candles):
            await store.write(candles, SOURCE)
            stored.extend(candles.to_candles())
        if on_page is not None:
            on_page((window_end - cursor) // step)
        cursor = window_end
    return Healed(stored, rejected, requests)


async def poll_latest(
    rest: BingXRest, store: CandleStore, pair: str, interval: Interval, limit: int = 10
) -> tuple[list[Candle], Candle | None]:
    """Read the newest candles; all but the newest are final (the next has opened) and are stored.
    Returns the stored ones and the newest (possibly forming) one."""
    batch = await rest.klines(pair, interval, limit=limit)
    screened = screen(batch, pair, interval, SOURCE)
    if not screened.candles:
        return [], None
    *final, newest = screened.candles
    if final:
        await store.write(final, SOURCE)
    return final, newest
