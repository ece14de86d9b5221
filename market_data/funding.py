"""The venue's funding rates for runs: as the feed stores the candles holding funding times, it fetches
the settled rate of each from the venue's funding history (API.md 4.3, `GET /openApi/swap/v2/quote/
fundingRate`) and stores it (`storage.funding_rates`) before it passes the candles on, so the plan of
such a candle finds its rate when execution pays it (`domain.funding`: the position held through the
candle holding a funding time pays `quantity x close x rate`).

A rate the venue does not give yet (not published, the venue unreachable, the store down) stays wanted
and is asked again with every later final candle, for `GIVE_UP_AFTER_MS`; execution keeps the payment
due until then. A start fetches the recent funding times first (`warm_up`), so a restart between a
funding time and its payment finds the rate.

Two sessions of the feed (a restart) may both store a time's rate: the store keeps the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

from domain.candles import Candle, interval_ms
from domain.errors import VenueError
from domain.funding import FUNDING_INTERVAL_MS, funding_times_within
from exchange.bingx.rest import BingXRest
from observability import get_logger
from storage.funding_rates import FundingRateStore

log = get_logger("tradingd.feed")
SOURCE = "venue"
FETCH_TIMEOUT_SEC = 10.0
WARM_UP_TIMES = 3
"""Funding times a start fetches back from now (a day's)."""
GIVE_UP_AFTER_MS = 3 * 24 * 3_600_000
"""A funding time the venue has not given a rate for within three days is no longer asked for."""


class FundingCollector:
    def __init__(self, rest: BingXRest, store: FundingRateStore, pair: str) -> None:
        self.rest = rest
        self.store = store
        self.pair = pair
        self.newest_ms = 0
        """The venue's time as its candles tell it (a replay's is not the wall clock's)."""
        self.wanted: set[int] = set()
        """Funding times passed whose rate is not stored yet."""

    async def warm_up(self, newest_open_ms: int) -> int:
        """The rates of the last `WARM_UP_TIMES` funding times up to the venue's newest candle, asked
        once (they are for a restart's payments due; a time the venue has no rate for is not asked
        again); how many were new. Never raises; runs beside `on_final` (it leaves `wanted` alone)."""
        self.newest_ms = max(self.newest_ms, newest_open_ms)
        last = newest_open_ms // FUNDING_INTERVAL_MS * FUNDING_INTERVAL_MS
        fetched = await self._fetch(sorted(last - i * FUNDING_INTERVAL_MS for i in range(WARM_UP_TIMES)))
        return 0 if fetched is None else fetched[0]

    async def on_final(self, candles: Sequence[Candle]) -> int:
        """Before `candles` go on: the rates of the funding times they hold, and of those still wanted;
        how many were new. Never raises."""
        for candle in candles:
            self.newest_ms = max(self.newest_ms, candle.open_time_ms)
            self.wanted.update(funding_times_within(candle.open_time_ms, interval_ms(candle.interval)))
        return await self._collect() if self.wanted else 0

    async def _collect(self) -> int:
        stale = {t for t in self.wanted if t < self.newest_ms - GIVE_UP_AFTER_MS}
        if stale:
            log.error("funding_rate_given_up", pair=self.pair, funding_times=sorted(stale))
            self.wanted -= stale
        asked = sorted(self.wanted)
        fetched = await self._fetch(asked)
        if fetched is None:
            return 0
        stored, not_given = fetched
        self.wanted -= set(asked) - not_given
        if self.wanted:
            log.info("funding_rate_not_given_yet", pair=self.pair, funding_times=sorted(self.wanted))
        return stored

    async def _fetch(self, times: list[int]) -> tuple[int, set[int]] | None:
        """Fetch and store the rates of those of `times` not stored yet: how many were stored and which
        the venue did not give; None when the venue or the store failed (logged)."""
        try:
            missing = await self.store.missing(self.pair, times)
            if not missing:
                return 0, set()
            fetched = await asyncio.wait_for(
                self.rest.funding_rates(self.pair, missing[0], missing[-1]), FETCH_TIMEOUT_SEC
            )
            found: list[tuple[int, Decimal]] = [(t, rate) for t, rate in fetched if t in set(missing)]
            stored = await self.store.store(self.pair, found, SOURCE)
        except (VenueError, TimeoutError, OSError) as error:
            log.warning("funding_rate_unavailable", pair=self.pair, funding_times=times, error=str(error))
            return None
        except Exception as error:
            log.warning("funding_rate_unstored", pair=self.pair, funding_times=times,
                        error=f"{type(error).__name__}: {error}")  # fmt: skip
            return None
        if found:
            log.info("funding_rates_stored", pair=self.pair, rates={str(t): str(r) for t, r in found}, new=stored)
        return stored, set(missing) - {t for t, _ in found}
