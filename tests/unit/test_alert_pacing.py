"""A channel's pace: a token bucket of max_per_minute, and a doubling backoff after failures."""

from __future__ import annotations

import pytest

from daemon.alert_pacing import ChannelPace


def test_the_bucket_starts_full_and_refills_at_the_rate() -> None:
    pace = ChannelPace(per_minute=6, retry_max_sec=60)
    assert pace.available(0.0) == 6
    for _ in range(6):
        pace.spent()
    assert pace.available(0.0) == 0
    assert pace.next_chance(0.0) == pytest.approx(10.0)
    assert pace.available(10.0) == 1
    assert pace.available(1000.0) == 6, "never more than a minute's worth"


def test_failures_back_off_doubling_up_to_the_limit_and_a_success_resets() -> None:
    pace = ChannelPace(per_minute=10, retry_max_sec=5)
    assert [pace.failed(0.0, None) for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert pace.available(4.9) == 0
    assert pace.available(5.0) == 10
    pace.succeeded()
    assert pace.failed(10.0, None) == 1.0


def test_retry_after_is_honoured_within_the_limit() -> None:
    pace = ChannelPace(per_minute=10, retry_max_sec=30)
    assert pace.failed(0.0, 12.0) == 12.0
    assert pace.next_chance(3.0) == pytest.approx(9.0)
    assert pace.failed(0.0, 3600.0) == 30.0


async def test_within_does_not_wait_for_the_abandoned_works_shielded_cleanup() -> None:
    """asyncpg returns a connection to its pool shielded from cancellation; a frozen database holds that
    for 60 s. `within` answers at its bound and leaves the cleanup to finish in the background."""
    import asyncio
    import time

    from storage.availability import database_unreachable, within

    released = asyncio.Event()

    async def query() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.shield(released.wait())

    began = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        await within(query(), 0.2, "open trades")
    assert time.monotonic() - began < 30
    assert database_unreachable(raised.value)
    assert "open trades: the database did not answer within 0.2 s" in str(raised.value)
    released.set()
