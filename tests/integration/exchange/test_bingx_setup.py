"""A live pair's account settings, read and set at start against the simulator (issue 17): the contract
checked, the leverage set to exactly what the risk limits need, the margin type set, and each refusal
explained (a margin type that cannot change with a position open, a leverage above the contract's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_setup import AccountSetupError, prepare_pair, venue_leverage

KEY, SECRET = "setup-key-0001", "setup-secret-0001-abcdefghijklmnop"
T0 = 1_700_000_040_000


@pytest.fixture
async def trading() -> AsyncIterator[tuple[BingXSimulator, BingXTrading]]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    sim = BingXSimulator([ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await sim.start()
    rest = BingXRest(sim.rest_url, Credentials(KEY, SECRET), retry=RetryPolicy(attempts=2, base_delay_sec=0))
    yield sim, BingXTrading(rest)
    await rest.close()
    await sim.stop()


def test_the_venue_leverage_covers_the_guards_limit() -> None:
    assert [venue_leverage(Decimal(x)) for x in ("1", "1.5", "3")] == [1, 2, 3]


async def test_a_pair_is_set_up_once_and_a_second_start_changes_nothing(
    trading: tuple[BingXSimulator, BingXTrading],
) -> None:
    _, venue = trading
    before, ceiling = await venue.leverage("BTC-USDT")
    wanted = 2 if before != 2 else 3
    assert wanted <= ceiling
    setup = await prepare_pair(venue, "BTC-USDT", leverage=wanted, margin_type="ISOLATED")
    assert setup.contract.symbol == "BTC-USDT"
    assert f"leverage: {before} -> {wanted}" in setup.changed
    assert (await venue.leverage("BTC-USDT"))[0] == wanted
    assert await venue.margin_type("BTC-USDT") == "ISOLATED"
    again = await prepare_pair(venue, "BTC-USDT", leverage=wanted, margin_type="ISOLATED")
    assert again.changed == ()
    lowered = await prepare_pair(venue, "BTC-USDT", leverage=1, margin_type="ISOLATED")
    assert lowered.changed == (f"leverage: {wanted} -> 1",)  # exactly what the guard needs, lowered too


async def test_refusals_name_what_to_do(trading: tuple[BingXSimulator, BingXTrading]) -> None:
    _, venue = trading
    _, ceiling = await venue.leverage("BTC-USDT")
    with pytest.raises(AccountSetupError, match="above the contract's maximum"):
        await prepare_pair(venue, "BTC-USDT", leverage=ceiling + 1, margin_type="ISOLATED")
    with pytest.raises(AccountSetupError, match="not listed"):
        await prepare_pair(venue, "NOPE-USDT", leverage=1, margin_type="ISOLATED")
    found = await venue.margin_type("BTC-USDT")
    other = "CROSSED" if found != "CROSSED" else "ISOLATED"
    await venue.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="setup-1")
    with pytest.raises(AccountSetupError, match=f"set exchange.margin_type = '{found}'"):
        await prepare_pair(venue, "BTC-USDT", leverage=1, margin_type=other)
    assert await venue.margin_type("BTC-USDT") == found
