"""The account's signed request budget shared by the processes that sign for it (a live daemon's pairs):
each client paces its signed calls to its share of BingX's 5 requests/s per account (API.md 3)."""

from __future__ import annotations

import asyncio

import pytest

from exchange.bingx.rest import BingXRest, signed_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + 1e-9  # a real sleep never ends early


@pytest.mark.parametrize(("share", "calls", "seconds"), [(1.0, 15, 2.0), (0.5, 11, 3.6), (0.1, 6, 10.0)])
def test_a_share_of_the_budget_paces_the_calls_to_it(share: float, calls: int, seconds: float) -> None:
    """After the burst, each call waits for its token: `calls` take `seconds` at `share` x 5/s."""
    clock = Clock()
    bucket = signed_bucket(share, clock)

    async def spend() -> None:
        for _ in range(calls):
            await bucket.acquire(clock.sleep)

    asyncio.run(spend())
    assert clock.now == pytest.approx(seconds)


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="signed_share"):
        BingXRest("http://127.0.0.1:1", signed_share=0)
    with pytest.raises(ValueError, match="signed_share"):
        BingXRest("http://127.0.0.1:1", signed_share=1.5)
