"""The simulator's account settings and 24 h ticker (API.md 4.3, 6.1, 6.9), through a client written from
the spec alone (tests/independent_bingx.py), with its parameters in the query, a form body or JSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from tests.independent_bingx import IndependentBingX, call_in_thread

KEY, SECRET = "independent-key", "independent-secret-0123456789"
MINUTE = 60_000
T0 = 1_700_000_040_000


def rows() -> list[FileCandle]:
    return [
        FileCandle(T0, "100.0", "101.0", "99.0", "100.5", "2"),
        FileCandle(T0 + MINUTE, "100.5", "103.0", "100.0", "102.0", "3"),
        FileCandle(T0 + 2 * MINUTE, "102.0", "102.5", "98.0", "99.0", "5"),
    ]


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows()), ReplaySeries("ETH-USDT", "1m", rows())],
        ReplayClock(T0 + 3 * MINUTE - 1000),  # the last minute's final second: all three final
        api_keys={KEY: SECRET},
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def call(client: IndependentBingX, method: str, path: str, placement: str = "query", **params: Any) -> Any:
    return await call_in_thread(client, method, path, placement, **params)  # type: ignore[arg-type]


async def test_the_24h_ticker_is_computed_from_the_replayed_candles(sim: BingXSimulator) -> None:
    client = IndependentBingX(sim.rest_url, KEY, SECRET)
    one = await call(client, "PUBLIC", "/openApi/swap/v2/quote/ticker", symbol="BTC-USDT")
    assert one["code"] == 0
    ticker = one["data"]
    assert (ticker["symbol"], ticker["openPrice"], ticker["lastPrice"]) == ("BTC-USDT", "100.0", "99.0")
    assert (ticker["highPrice"], ticker["lowPrice"], ticker["volume"]) == ("103", "98", "10")
    assert (ticker["priceChange"], ticker["priceChangePercent"]) == ("-1", "-1")
    assert ticker["quoteVolume"] == "1002"  # each candle's volume at its close: 2 x 100.5 + 3 x 102 + 5 x 99
    assert (ticker["openTime"], ticker["closeTime"]) == (T0, T0 + 3 * MINUTE - 1000)
    assert (ticker["bidPrice"], ticker["askPrice"]) == ("99", "99.1"), "no book: the ask is one tick above"
    every = await call(client, "PUBLIC", "/openApi/swap/v2/quote/ticker")
    assert [t["symbol"] for t in every["data"]] == ["BTC-USDT", "ETH-USDT"]
    unknown = await call(client, "PUBLIC", "/openApi/swap/v2/quote/ticker", symbol="XRP-USDT")
    assert unknown["code"] == 109425


@pytest.mark.parametrize("placement", ["query", "form", "json"])
async def test_leverage_and_margin_type_are_kept_per_symbol_and_reported(sim: BingXSimulator, placement: str) -> None:
    client = IndependentBingX(sim.rest_url, KEY, SECRET)
    lev = "/openApi/swap/v2/trade/leverage"
    before = await call(client, "GET", lev, symbol="BTC-USDT")
    assert (before["code"], before["data"]["longLeverage"], before["data"]["maxLongLeverage"]) == (0, 5, 125)
    changed = await call(client, "POST", lev, placement, symbol="BTC-USDT", side="BOTH", leverage=8)
    assert changed["code"] == 0, changed
    assert (changed["data"]["leverage"], changed["data"]["symbol"]) == (8, "BTC-USDT")
    after = await call(client, "GET", lev, symbol="BTC-USDT")
    assert (after["data"]["longLeverage"], after["data"]["shortLeverage"]) == (8, 8)
    other = await call(client, "GET", lev, symbol="ETH-USDT")
    assert other["data"]["longLeverage"] == 5, "per symbol"
    hedge = await call(client, "POST", lev, placement, symbol="BTC-USDT", side="LONG", leverage=3)
    assert hedge["code"] == 109400, "LONG/SHORT is hedge mode's"
    too_high = await call(client, "POST", lev, placement, symbol="BTC-USDT", side="BOTH", leverage=126)
    assert too_high["code"] == 101414, "leverage above maximum"

    margin = "/openApi/swap/v2/trade/marginType"
    assert (await call(client, "GET", margin, symbol="BTC-USDT"))["data"] == {"marginType": "CROSSED"}
    isolated = await call(client, "POST", margin, placement, symbol="BTC-USDT", marginType="ISOLATED")
    assert isolated == {"code": 0, "msg": ""}, "the venue answers this one with no data"
    assert (await call(client, "GET", margin, symbol="BTC-USDT"))["data"] == {"marginType": "ISOLATED"}
    bad = await call(client, "POST", margin, placement, symbol="BTC-USDT", marginType="PORTFOLIO")
    assert bad["code"] == 109400

    placed = await call(
        client,
        "POST",
        "/openApi/swap/v2/trade/order",
        placement,
        symbol="BTC-USDT",
        side="BUY",
        positionSide="BOTH",
        type="MARKET",
        quantity="0.5",
        clientOrderId="independent-1",
    )
    assert placed["code"] == 0, placed
    assert placed["data"]["order"]["status"] == "FILLED"
    (position,) = (await call(client, "GET", "/openApi/swap/v2/user/positions", symbol="BTC-USDT"))["data"]
    assert (position["leverage"], position["isolated"], position["positionAmt"]) == (8, True, "0.5000")
    locked = await call(client, "POST", margin, placement, symbol="BTC-USDT", marginType="CROSSED")
    assert locked["code"] == 109400, "not with a position open"


async def test_the_position_mode_is_one_way_and_changes_only_when_flat(sim: BingXSimulator) -> None:
    client = IndependentBingX(sim.rest_url, KEY, SECRET)
    mode = "/openApi/swap/v1/positionSide/dual"
    assert (await call(client, "GET", mode))["data"] == {"dualSidePosition": "false"}
    assert (await call(client, "POST", mode, dualSidePosition="false"))["code"] == 0
    refused = await call(client, "POST", mode, dualSidePosition="true")
    assert refused["code"] == 109400
    assert "one-way" in refused["msg"]
    await call(
        client, "POST", "/openApi/swap/v2/trade/order", symbol="ETH-USDT", side="SELL", positionSide="BOTH",
        type="MARKET", quantity="1",
    )  # fmt: skip
    busy = await call(client, "POST", mode, dualSidePosition="false")
    assert busy["code"] == 104103


async def test_a_wrong_secret_an_unknown_key_and_a_bad_json_body_are_refused(sim: BingXSimulator) -> None:
    lev = "/openApi/swap/v2/trade/leverage"
    wrong = await call(IndependentBingX(sim.rest_url, KEY, "not-the-secret"), "GET", lev, symbol="BTC-USDT")
    assert wrong["code"] == 100001
    unknown = await call(IndependentBingX(sim.rest_url, "nobody", SECRET), "GET", lev, symbol="BTC-USDT")
    assert unknown["code"] == 100413
    for placement in ("form", "json"):
        wrong_body = await call(
            IndependentBingX(sim.rest_url, KEY, "not-the-secret"), "POST", lev, placement,
            symbol="BTC-USDT", side="BOTH", leverage=2,
        )  # fmt: skip
        assert wrong_body["code"] == 100001, placement
