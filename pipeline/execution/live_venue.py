"""A live pair's way to the venue, opened by its execution actor at start (`exchange.mode = live`).

`open_live_venue` signs a REST client with the account's keys, measures the venue's clock, makes the
account ready for the pair (`bingx_setup.prepare_pair`: listed and open to API orders, one-way position
mode, the guard's leverage, the margin type) and answers with the `BingXVenue` the execution stage
sends through and the pair's order news (`VenueNews`, its own user-data stream). Anything the account
setup refuses raises `AccountSetupError` with a sentence for the operator: the pair does not trade.

What an order's outcome means for the pair (`Consequence`) becomes a trading state of its risk guard
(`pair_state`): an outcome still unknown holds the pair to reducing only (no new entry until the order
is found or proved absent), a venue that refuses the pair or the account halts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from domain.trading_state import TradingState
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading
from exchange.bingx.user_stream import UserDataStream
from pipeline.execution.bingx_orders import BingXOrders, Consequence
from pipeline.execution.bingx_setup import PairSetup, prepare_pair
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.reconciliation import ExternalPositions
from pipeline.execution.venue_news import Deliver, VenueNews
from trading.protection import ProtectionRule


@dataclass(frozen=True)
class LiveVenueSource:
    """How a live pair reaches the venue; Ray hands it to the execution actor (the keys' repr is
    redacted, and the daemon registers them with every worker's log redactor)."""

    rest_url: str
    ws_url: str
    credentials: Credentials
    recv_window_ms: int
    margin_type: str
    leverage: int
    protection: ProtectionRule
    """The limit set's stop-loss (and take-profit) distances: every position's protective orders."""
    reconcile_every_sec: float = 300.0
    """`trading.reconcile_interval_min`: how often the pair's book is reconciled with the venue."""
    external_positions: ExternalPositions = "halt"
    signed_share: float = 1.0
    """The pair's share of the account's signed request budget (1 / the run's pairs)."""


@dataclass
class LiveVenue:
    source: LiveVenueSource
    rest: BingXRest
    venue: BingXVenue
    setup: PairSetup

    def news(self, working: Callable[[], Iterable[str]], deliver: Deliver) -> VenueNews:
        """The pair's order news (a user-data stream of its own), delivered to `deliver` until cancelled."""
        return VenueNews(UserDataStream(self.rest, self.source.ws_url), self.venue, working, deliver)

    async def close(self) -> None:
        await self.rest.close()


async def open_live_venue(source: LiveVenueSource, symbol: str) -> LiveVenue:
    """The venue for `symbol`, with the account made ready for it (see the module docstring)."""
    rest = BingXRest(
        source.rest_url, source.credentials, recv_window_ms=source.recv_window_ms, signed_share=source.signed_share
    )
    try:
        await rest.sync_time()
        trading = BingXTrading(rest)
        setup = await prepare_pair(trading, symbol, leverage=source.leverage, margin_type=source.margin_type)
    except BaseException:
        await rest.close()
        raise
    return LiveVenue(source, rest, BingXVenue(BingXOrders(trading, setup.contract)), setup)


PAIR_STATES: dict[Consequence, tuple[TradingState, str]] = {
    Consequence.UNRESOLVED: ("REDUCING", "order_unresolved"),
    Consequence.HALT_PAIR: ("HALTED", "venue_refused_pair"),
    Consequence.HALT_ACCOUNT: ("HALTED", "venue_refused_account"),
}


def pair_state(consequence: Consequence) -> tuple[TradingState, str] | None:
    """The trading state (and its reason) an order's outcome puts its pair in; None: the order's own end."""
    return PAIR_STATES.get(consequence)
