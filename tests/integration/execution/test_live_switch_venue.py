"""The venue's part of the paper-to-live switch (`daemon.live_switch.venue_refusals`), against the simulator:
a flat account with each contract open passes; a position, an open order or keys the venue refuses are
each named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from config import load_settings
from config.settings import Settings
from daemon.live_switch import venue_refusals
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator

KEY, SECRET = "switch-key-0001", "switch-secret-0001-abcdefghijklmnop"
T0 = 1_700_000_040_000
PAIRS = ("BTC-USDT", "ETH-USDT")


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    series = [ReplaySeries(pair, "1m", rows) for pair in PAIRS]
    simulator = BingXSimulator(series, ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await simulator.start()
    yield simulator
    await simulator.stop()


def settings_for(sim: BingXSimulator, secret: str = SECRET) -> Settings:
    return load_settings(
        None,
        {"BINGX_REST_URL": sim.rest_url, "BINGX_WS_URL": sim.ws_url, "BINGX_API_KEY": KEY, "BINGX_SECRET_KEY": secret},
    )


async def test_a_flat_account_passes_and_what_it_holds_is_named(sim: BingXSimulator) -> None:
    settings = settings_for(sim)
    assert await venue_refusals(settings, PAIRS) == []
    async with BingXRest(sim.rest_url, Credentials(KEY, SECRET)) as rest:
        venue = BingXTrading(rest)
        await venue.place_order("ETH-USDT", "BUY", "MARKET", Decimal("0.5"), client_order_id="by-hand-1")
        await venue.place_order(
            "BTC-USDT", "BUY", "LIMIT", Decimal("0.5"), client_order_id="by-hand-2", price=Decimal("90")
        )
    assert await venue_refusals(settings, PAIRS) == [
        "the venue has 1 open order(s) on BTC-USDT: cancel them first",
        "the venue holds a position of 0.5000 ETH-USDT: close it first",
    ]
    assert await venue_refusals(settings, ("DOGE-USDT",)) == ["DOGE-USDT is not open to API orders on the venue"]


async def test_keys_the_venue_refuses_are_named(sim: BingXSimulator) -> None:
    (said,) = await venue_refusals(settings_for(sim, "not-the-secret"), PAIRS)
    assert said.startswith("the venue could not be read with the account's keys")
    assert "100001" in said


async def test_an_account_holding_less_than_the_run_sizes_from_is_refused(sim: BingXSimulator) -> None:
    settings = settings_for(sim)
    assert await venue_refusals(settings, PAIRS, sizing_equity=Decimal(10_000)) == []  # the simulator's 10,000
    (said,) = await venue_refusals(settings, PAIRS, sizing_equity=Decimal("10000.01"))
    assert said == (
        "the run sizes its orders from an equity of 10000.01 USDT (run.initial_equity) but the venue account holds "
        "10000 USDT: start a run with run.initial_equity at most that"
    )
