"""Protective orders on the simulator (STOP_MARKET, TAKE_PROFIT_MARKET) triggered by the replayed candles,
the order history, and the faults a live venue must survive (answers lost after booking, refusals by code,
a position opened from outside), through a client written from API.md alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from tests.independent_bingx import IndependentBingX, call_in_thread

KEY, SECRET = "independent-key", "independent-secret-0123456789"
MINUTE = 60_000
T0 = 1_700_000_040_000
ORDER = "/openApi/swap/v2/trade/order"


def rows() -> list[FileCandle]:
    return [
        FileCandle(T0, "100.0", "100.5", "99.5", "100.0", "10"),
        FileCandle(T0 + MINUTE, "100.0", "100.2", "95.0", "96.5", "10"),  # falls through 97
        FileCandle(T0 + 2 * MINUTE, "96.5", "104.0", "96.0", "103.0", "10"),  # rises through 103
        FileCandle(T0 + 3 * MINUTE, "103.0", "103.5", "102.5", "103.0", "10"),
    ]


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows())], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET}
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def signed(sim: BingXSimulator, method: str, path: str, **params: Any) -> Any:
    return await call_in_thread(IndependentBingX(sim.rest_url, KEY, SECRET), method, path, **params)


async def order(sim: BingXSimulator, **params: Any) -> dict[str, Any]:
    placed = await signed(sim, "POST", ORDER, symbol="BTC-USDT", positionSide="BOTH", **params)
    assert placed["code"] == 0, placed
    echo: dict[str, Any] = placed["data"]["order"]
    return echo


async def status(sim: BingXSimulator, order_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = (await signed(sim, "GET", ORDER, symbol="BTC-USDT", orderId=order_id))["data"]["order"]
    return answer


async def position(sim: BingXSimulator) -> str:
    rows = (await signed(sim, "GET", "/openApi/swap/v2/user/positions", symbol="BTC-USDT"))["data"]
    return "0" if not rows else f"{rows[0]['positionSide']} {rows[0]['positionAmt']}"


async def test_a_stop_closes_a_long_when_the_price_falls_to_it_and_a_take_profit_a_short_when_it_rises(
    sim: BingXSimulator,
) -> None:
    await order(sim, side="BUY", type="MARKET", quantity="1")
    stop = await order(
        sim, side="SELL", type="STOP_MARKET", stopPrice="97", closePosition="true", clientOrderId="ignored-id"
    )
    assert (stop["status"], stop["clientOrderID"], stop["stopPrice"]) == ("NEW", "", "97.0")
    opened = (await signed(sim, "GET", "/openApi/swap/v2/trade/openOrders", symbol="BTC-USDT"))["data"]["orders"]
    assert [(o["type"], o["stopPrice"]) for o in opened] == [("STOP_MARKET", "97.0")]
    await sim.market.step(30)  # minute 1 part-formed: not down to 97 yet
    assert (await status(sim, stop["orderId"]))["status"] == "NEW"
    await sim.market.step(30)  # minute 1's low, 95: through the stop
    triggered = await status(sim, stop["orderId"])
    assert (triggered["status"], triggered["executedQty"], triggered["avgPrice"]) == ("FILLED", "1.0000", "96.9")
    assert await position(sim) == "0", "the whole position, slipped from the stop as a market order"

    await order(sim, side="SELL", type="MARKET", quantity="0.5")
    take = await order(sim, side="BUY", type="TAKE_PROFIT_MARKET", stopPrice="98", quantity="0.5", reduceOnly="true")
    stop_loss = await order(sim, side="BUY", type="STOP_MARKET", stopPrice="103", quantity="0.5", reduceOnly="true")
    await sim.market.step(60)  # minute 2 goes 96 to 104: the take-profit (below) fills; the stop finds no position
    assert (await status(sim, take["orderId"]))["status"] == "FILLED"
    assert (await status(sim, stop_loss["orderId"]))["status"] == "CANCELLED", "nothing left to reduce"
    assert await position(sim) == "0"


async def test_conditional_orders_are_refused_without_a_stop_price_or_a_position_to_reduce(
    sim: BingXSimulator,
) -> None:
    missing = await signed(
        sim, "POST", ORDER, symbol="BTC-USDT", side="SELL", positionSide="BOTH", type="STOP_MARKET", quantity="1"
    )
    assert missing["code"] == 109400
    nothing = await signed(
        sim, "POST", ORDER, symbol="BTC-USDT", side="SELL", positionSide="BOTH", type="STOP_MARKET",
        stopPrice="90", closePosition="true",
    )  # fmt: skip
    assert nothing["code"] == 101290


async def test_the_order_history_lists_every_status_within_seven_days(sim: BingXSimulator) -> None:
    filled = await order(sim, side="BUY", type="MARKET", quantity="1", clientOrderId="hist-1")
    resting = await order(sim, side="BUY", type="LIMIT", quantity="0.1", price="50", clientOrderId="hist-2")
    await signed(sim, "DELETE", ORDER, symbol="BTC-USDT", orderId=resting["orderId"])
    stop = await order(sim, side="SELL", type="STOP_MARKET", stopPrice="90", closePosition="true")
    history = await signed(sim, "GET", "/openApi/swap/v2/trade/allOrders", symbol="BTC-USDT")
    listed = [(o["orderId"], o["status"], o["type"]) for o in history["data"]["orders"]]
    assert listed == [
        (filled["orderId"], "FILLED", "MARKET"),
        (resting["orderId"], "CANCELLED", "LIMIT"),
        (stop["orderId"], "NEW", "STOP_MARKET"),
    ]
    later = await signed(sim, "GET", "/openApi/swap/v2/trade/allOrders", symbol="BTC-USDT", orderId=resting["orderId"])
    assert [o["orderId"] for o in later["data"]["orders"]] == [resting["orderId"], stop["orderId"]]
    one = await signed(sim, "GET", "/openApi/swap/v2/trade/allOrders", symbol="BTC-USDT", limit=1)
    assert len(one["data"]["orders"]) == 1
    week = 7 * 86_400_000
    too_long = await signed(
        sim, "GET", "/openApi/swap/v2/trade/allOrders", symbol="BTC-USDT", startTime=0, endTime=week + 1
    )
    assert too_long["code"] == 80014


async def test_each_lost_answer_leaves_the_order_booked_once_and_findable_by_client_id(sim: BingXSimulator) -> None:
    """The ambiguous outcomes a client must resolve by client order id: booked, then 504, no answer, or a
    cut connection; and refusals by code, which book nothing."""
    sim.trading.faults.hang_sec = 5.0
    client = IndependentBingX(sim.rest_url, KEY, SECRET, timeout_sec=1.0)
    lost: dict[str, Any] = {}
    for n, outcome in enumerate(["504", "timeout", "reset"]):
        sim.trading.faults.next_order_outcomes.append(outcome)  # type: ignore[arg-type]
        lost[outcome] = await call_in_thread(
            client, "POST", ORDER, symbol="BTC-USDT", side="BUY", positionSide="BOTH", type="MARKET",
            quantity="0.1", clientOrderId=f"lost-{n}",
        )  # fmt: skip
    assert lost["504"]["http_status"] == 504
    assert lost["timeout"]["transport_error"] in ("TimeoutError", "timeout")
    assert "transport_error" in lost["reset"]
    for n in range(3):
        found = await signed(sim, "GET", ORDER, symbol="BTC-USDT", clientOrderId=f"lost-{n}")
        assert found["data"]["order"]["status"] == "FILLED", n
    assert len([o for o in sim.account.orders.values() if o.client_order_id.startswith("lost-")]) == 3

    for code in (101204, 101400, 100410, 80012):
        sim.trading.faults.reject_next_orders.append(code)
        refused = await signed(
            sim, "POST", ORDER, symbol="BTC-USDT", side="BUY", positionSide="BOTH", type="MARKET",
            quantity="0.1", clientOrderId=f"refused-{code}",
        )  # fmt: skip
        assert refused["code"] == code
        missing = await signed(sim, "GET", ORDER, symbol="BTC-USDT", clientOrderId=f"refused-{code}")
        assert missing["code"] == 109421, "a refusal books nothing"


async def test_a_position_opened_from_outside_shows_on_the_account(sim: BingXSimulator) -> None:
    sim.trading.external_order("BTC-USDT", "SELL", Decimal("0.3"))
    assert await position(sim) == "SHORT 0.3000"
    (placed,) = sim.account.orders.values()
    assert placed.client_order_id == "", "placed in the app: no client order id of ours"


async def test_a_limit_bigger_than_its_share_of_a_thin_candle_fills_partially_over_several(
    sim: BingXSimulator,
) -> None:
    """A resting limit fills at most a quarter of each candle's volume (SimulatorOptions.limit_volume_share):
    3 BTC at 96 against 10 BTC candles is 2.5 in minute 1 (its low, 95, crosses) and the rest in minute 2."""
    placed = await order(sim, side="BUY", type="LIMIT", quantity="3", price="96", clientOrderId="thin-1")
    await sim.market.step(60)  # through minute 1
    partial_fill = await status(sim, placed["orderId"])
    assert (partial_fill["status"], partial_fill["executedQty"]) == ("PARTIALLY_FILLED", "2.5000")
    opened = (await signed(sim, "GET", "/openApi/swap/v2/trade/openOrders", symbol="BTC-USDT"))["data"]["orders"]
    assert [o["orderId"] for o in opened] == [placed["orderId"]], "still working"
    assert await position(sim) == "LONG 2.5000"
    await sim.market.step(60)  # minute 2 touches 96 again
    done = await status(sim, placed["orderId"])
    assert (done["status"], done["executedQty"], done["avgPrice"]) == ("FILLED", "3.0000", "96.0")
