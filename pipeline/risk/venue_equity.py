"""The live account's equity as the venue reports it, for the account guard (`AccountActor`).

On a live run the circuit breaker's drawdown is measured on what the venue says the account is worth:
the USDT balance's `equity` (wallet balance plus the open positions' unrealised PnL, API.md 6.7), read
with a signed call every `every_sec`. It is the one figure that counts every fill, fee and funding
payment and every position, ours or not, at the venue's own mark; the books' marked value stays the
paper run's measure.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import WireFormatError
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import MARGIN_ASSET, BingXTrading, VenueBalance, margin_balance


@dataclass(frozen=True)
class VenueEquitySource:
    """How the account guard reaches the venue (the keys' repr is redacted)."""

    rest_url: str
    credentials: Credentials
    recv_window_ms: int
    every_sec: float = 5.0
    signed_share: float = 1.0


class VenueEquity:
    def __init__(self, source: VenueEquitySource) -> None:
        self.source = source
        self.rest = BingXRest(
            source.rest_url, source.credentials, recv_window_ms=source.recv_window_ms, signed_share=source.signed_share
        )
        self._synced = False

    async def read(self) -> VenueBalance:
        """The account's USDT balance and equity now; a `VenueError` when the venue does not say."""
        if not self._synced:
            await self.rest.sync_time()
            self._synced = True
        balances = await BingXTrading(self.rest).balance()
        usdt = margin_balance(balances)
        if usdt is None:
            raise WireFormatError(f"balance: no {MARGIN_ASSET} asset among {[b.asset for b in balances]}")
        return usdt

    def use_credentials(self, credentials: Credentials) -> None:
        """`tradingd secrets rotate`: sign with the new keys from the next read."""
        self.rest.use_credentials(credentials)

    async def close(self) -> None:
        await self.rest.close()
