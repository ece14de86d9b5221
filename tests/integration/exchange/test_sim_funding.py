"""The simulator charges funding (API.md 4.3 and 5.5): at each funding time its clock passes, an open
position pays `quantity x close x rate` from the balance (the close of the candle ending at the funding
time, a long paying a positive rate), and the user stream tells it with `ACCOUNT_UPDATE` `m = FUNDING_FEE`;
checked by an independent client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, SimulatorOptions
from tests.independent_bingx import IndependentBingX, call_in_thread, stream_events

KEY, SECRET = "independent-key", "independent-secret-0123456789"
MINUTE = 60_000
FUNDING_MS = 1_700_006_400_000  # 2023-11-15 00:00 UTC
RATE = "0.0005"


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    """Candles around the funding time; the one ending at it closes at 103.0. The clock 30 s before it."""
    rows = [
        FileCandle(FUNDING_MS + i * MINUTE, "100.0", "104.0", "99.0", "103.0" if i == -1 else "100.0", "10")
        for i in range(-3, 3)
    ]
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)],
        ReplayClock(FUNDING_MS - 30_000),
        api_keys={KEY: SECRET},
        options=SimulatorOptions(funding_rate=RATE),
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def signed(sim: BingXSimulator, method: str, path: str, **params: Any) -> Any:
    return await call_in_thread(IndependentBingX(sim.rest_url, KEY, SECRET), method, path, **params)


async def balance(sim: BingXSimulator) -> Decimal:
    [usdt] = (await signed(sim, "GET", "/openApi/swap/v3/user/balance"))["data"]
    return Decimal(usdt["balance"])


async def account_updates(ws: aiohttp.ClientWebSocketResponse, reason: str) -> dict[str, Any]:
    """The next ACCOUNT_UPDATE for `reason`."""
    [event] = await stream_events(ws, 1, lambda e: e.get("e") == "ACCOUNT_UPDATE" and e["a"]["m"] == reason)
    return dict(event)


@pytest.mark.parametrize(("side", "paid"), [("SELL", Decimal("-0.1030")), ("BUY", Decimal("0.1030"))])
async def test_an_open_position_pays_funding_at_the_funding_time(sim: BingXSimulator, side: str, paid: Decimal) -> None:
    listen_key = (await signed(sim, "POST", "/openApi/user/auth/userDataStream"))["listenKey"]
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as ws:
        await sim.market.step(1)
        order = await signed(
            sim, "POST", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", side=side, positionSide="BOTH",
            type="MARKET", quantity="2", clientOrderId="funded-1",
        )  # fmt: skip
        assert order["data"]["order"]["status"] == "FILLED"
        before = await balance(sim)
        await sim.market.step(20)  # 10 s before the funding time: nothing yet
        assert await balance(sim) == before
        await sim.market.step(20)
        update = await account_updates(ws, "FUNDING_FEE")
        after = await balance(sim)
    assert before - after == paid  # 2 x 103.0 x 0.0005, a long paying, a short receiving
    assert Decimal(update["a"]["B"][0]["wb"]) == after
    assert sim.funding_paid == [("BTC-USDT", FUNDING_MS, paid)]
    await sim.market.step(120)  # two minutes later, no funding time passed: nothing more
    assert await balance(sim) == after


async def test_a_flat_account_pays_nothing(sim: BingXSimulator) -> None:
    before = await balance(sim)
    await sim.market.step(60)
    assert await balance(sim) == before
    assert sim.funding_paid == []
