"""The simulator's user-data stream (API.md 5.5): a listenKey from REST, then the account's order and
balance events on the websocket, its expiry, and the venue closing it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from tests.independent_bingx import IndependentBingX, call_in_thread, stream_events

KEY, SECRET = "independent-key", "independent-secret-0123456789"
T0 = 1_700_000_040_000
STREAM = "/openApi/user/auth/userDataStream"


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * 60_000, "100.0", "100.5", "99.5", "100.0", "10") for i in range(5)]
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET},
        ping_interval_sec=0.2,
    )  # fmt: skip
    await simulator.start()
    yield simulator
    await simulator.stop()


async def signed(sim: BingXSimulator, method: str, path: str, **params: Any) -> Any:
    return await call_in_thread(IndependentBingX(sim.rest_url, KEY, SECRET), method, path, **params)


async def events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    return await stream_events(ws, count)


async def test_orders_and_fills_arrive_on_the_stream_in_order(sim: BingXSimulator) -> None:
    created = await signed(sim, "POST", STREAM)
    listen_key = created["listenKey"]
    assert len(listen_key) == 64
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as ws:
        await signed(
            sim, "POST", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", side="BUY", positionSide="BOTH",
            type="MARKET", quantity="0.5", clientOrderId="stream-1",
        )  # fmt: skip
        new, trade, account = await events(ws, 3)
        assert (new["e"], new["o"]["x"], new["o"]["X"], new["o"]["c"]) == (
            "ORDER_TRADE_UPDATE",
            "NEW",
            "NEW",
            "stream-1",
        )
        assert (trade["o"]["x"], trade["o"]["X"], trade["o"]["z"], trade["o"]["l"]) == (
            "TRADE",
            "FILLED",
            "0.5000",
            "0.5000",
        )
        assert trade["o"]["L"] == trade["o"]["ap"] == "100.1"
        assert Decimal(trade["o"]["n"]) == Decimal("-0.025025"), "the fee, negative"
        assert account["e"] == "ACCOUNT_UPDATE"
        assert account["a"]["m"] == "ORDER"
        (position,) = account["a"]["P"]
        assert (position["s"], position["pa"], position["ep"], position["ps"]) == (
            "BTC-USDT",
            "0.5000",
            "100.1",
            "BOTH",
        )
        (usdt,) = account["a"]["B"]
        assert usdt["a"] == "USDT"
        assert usdt["wb"] == str(sim.account.balance)

        resting = await signed(
            sim, "POST", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", side="BUY", positionSide="BOTH",
            type="LIMIT", quantity="0.1", price="50", clientOrderId="stream-2",
        )  # fmt: skip
        await signed(sim, "DELETE", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", clientOrderId="stream-2")
        opened, cancelled = await events(ws, 2)
        assert (opened["o"]["x"], opened["o"]["i"]) == ("NEW", resting["data"]["order"]["orderId"])
        assert (cancelled["o"]["x"], cancelled["o"]["X"]) == ("CANCELED", "CANCELED"), "the stream's spelling"


async def test_a_listen_key_is_extended_expires_and_ends_its_stream(sim: BingXSimulator) -> None:
    listen_key = (await signed(sim, "POST", STREAM))["listenKey"]
    assert await signed(sim, "PUT", STREAM, listenKey=listen_key) == {}
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as ws:
        sim.user_streams.expire_all()
        (expired,) = await events(ws, 1)
        assert (expired["e"], expired["listenKey"]) == ("listenKeyExpired", listen_key)
        async with asyncio.timeout(60):
            assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert (await signed(sim, "PUT", STREAM, listenKey=listen_key))["code"] == 100400
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}")
        assert refused.value.status == 404
    unknown_key = await call_in_thread(IndependentBingX(sim.rest_url, "nobody", SECRET), "POST", STREAM)
    assert unknown_key["code"] == 100413


async def test_the_venue_closing_a_user_stream_keeps_its_key(sim: BingXSimulator) -> None:
    listen_key = (await signed(sim, "POST", STREAM))["listenKey"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as ws:
            await sim.stream.drop_user_streams()
            async with asyncio.timeout(60):
                assert (await ws.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        async with session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as again:
            await signed(
                sim, "POST", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", side="SELL", positionSide="BOTH",
                type="MARKET", quantity="0.2",
            )  # fmt: skip
            new, trade, _ = await events(again, 3)
            assert (new["o"]["x"], trade["o"]["X"]) == ("NEW", "FILLED")
    assert (await signed(sim, "DELETE", STREAM, listenKey=listen_key)) == {}


async def test_a_fill_can_arrive_only_on_the_stream_while_rest_reads_lag(sim: BingXSimulator) -> None:
    """`rest_lag_ms`: order reads show each order as it was that long ago; the stream reports at once."""
    listen_key = (await signed(sim, "POST", STREAM))["listenKey"]
    sim.trading.faults.rest_lag_ms = 600_000
    async with aiohttp.ClientSession() as session, session.ws_connect(f"{sim.ws_url}?listenKey={listen_key}") as ws:
        placed = await signed(
            sim, "POST", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", side="BUY", positionSide="BOTH",
            type="MARKET", quantity="0.5", clientOrderId="lagging-1",
        )  # fmt: skip
        assert placed["data"]["order"]["status"] == "FILLED", "the answer to the order itself is not late"
        _, trade, _ = await events(ws, 3)
        assert trade["o"]["X"] == "FILLED"
        read = await signed(sim, "GET", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", clientOrderId="lagging-1")
        assert (read["data"]["order"]["status"], read["data"]["order"]["executedQty"]) == ("NEW", "0")
        working = await signed(sim, "GET", "/openApi/swap/v2/trade/openOrders", symbol="BTC-USDT")
        assert [o["clientOrderId"] for o in working["data"]["orders"]] == ["lagging-1"]
    sim.trading.faults.rest_lag_ms = 0
    read = await signed(sim, "GET", "/openApi/swap/v2/trade/order", symbol="BTC-USDT", clientOrderId="lagging-1")
    assert read["data"]["order"]["status"] == "FILLED"
