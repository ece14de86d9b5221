"""The simulator's crash windows (`exchange.sim.crash_window`): at each instant of the kill -9 matrix the
venue holds the request, freezes (later requests wait unprocessed, the user stream tells nothing) and,
released, processes nothing it held. And an intent found unsent after a restart is looked up before it
is sent (`BingXOrders.place_unless_booked`), so an order the crash caught after its submit is never sent
twice, and one caught before is sent once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from domain.errors import VenueError
from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import BingXOrders
from tests.integration.exchange.test_bingx_orders import Order, no_sleep, states

KEY, SECRET = "window-key-0001", "window-secret-0001-abcdefghijklmnop"
MINUTE = 60_000
T0 = 1_700_000_040_000
PRICE = Decimal("100")
SYMBOL = "BTC-USDT"


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * MINUTE, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator([ReplaySeries(SYMBOL, "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await simulator.start()
    yield simulator
    await simulator.stop()


def rest_for(url: str) -> BingXRest:
    return BingXRest(url, Credentials(KEY, SECRET), retry=RetryPolicy(attempts=1, base_delay_sec=0), sleep=no_sleep,
                     timeout_sec=1.0)  # fmt: skip


def streamed(sim: BingXSimulator) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    sim.user_streams.listeners.append(events.append)
    return events


async def held_then_released(sim: BingXSimulator, rest: BingXRest) -> None:
    """While frozen, a later request is not answered; released, the venue answers again."""
    with pytest.raises(VenueError):
        await BingXTrading(rest).balance()
    sim.trading.faults.window.release()
    assert [b.asset for b in await BingXTrading(rest).balance()] == ["USDT"]


async def test_before_submit_the_order_never_reaches_the_venue_and_is_sent_once_after_the_restart(
    sim: BingXSimulator,
) -> None:
    events = streamed(sim)
    sim.trading.faults.window.arm("before_submit")
    async with rest_for(sim.rest_url) as rest:
        trading = BingXTrading(rest)
        with pytest.raises(VenueError):
            await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-1")
        assert sim.trading.faults.window.status() == {
            "armed": None, "frozen": True,
            "held": {"point": "before_submit", "symbol": SYMBOL, "client_order_id": "td-w-1"},
        }  # fmt: skip
        assert sim.account.orders == {}
        assert "td-w-1" not in sim.trading.orders_posted
        assert events == []
        await held_then_released(sim, rest)  # the held handler woke before the later request was answered
        assert sim.account.orders == {}, "released, the held order was never processed"

        (contract,) = await rest.contracts(SYMBOL)
        orders = BingXOrders(trading, contract, sleep=no_sleep)
        placed = await orders.place_unless_booked(Order("td-w-1"), PRICE, T0)
        assert states(placed) == ["submitted", "accepted"]
        assert sim.trading.orders_posted["td-w-1"] == 1


async def test_before_answer_the_order_is_booked_silently_and_found_not_sent_again_after_the_restart(
    sim: BingXSimulator,
) -> None:
    events = streamed(sim)
    sim.trading.faults.window.arm("before_answer")
    async with rest_for(sim.rest_url) as rest:
        trading = BingXTrading(rest)
        with pytest.raises(VenueError):
            await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-2")
        assert sim.trading.faults.window.held["point"] == "before_answer"
        (booked,) = sim.account.orders.values()
        assert (booked.client_order_id, booked.status) == ("td-w-2", "FILLED")
        assert events == [], "the fill is never streamed to the daemon the window caught"
        await held_then_released(sim, rest)

        (contract,) = await rest.contracts(SYMBOL)
        placed = await BingXOrders(trading, contract, sleep=no_sleep).place_unless_booked(Order("td-w-2"), PRICE, T0)
        assert states(placed) == ["submitted", "filled"]
        assert placed.steps[-1].evidence["source"] == "order_lookup"
        assert sim.trading.orders_posted["td-w-2"] == 1, "looked up, not sent again"
        assert len(sim.account.orders) == 1


async def test_before_fill_recorded_the_answer_arrives_but_the_fill_is_never_streamed(sim: BingXSimulator) -> None:
    events = streamed(sim)
    sim.trading.faults.window.arm("before_fill_recorded")
    async with rest_for(sim.rest_url) as rest:
        trading = BingXTrading(rest)
        echo = await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-3")
        assert echo.client_order_id == "td-w-3"
        assert sim.trading.faults.window.frozen
        assert events == []
        await held_then_released(sim, rest)
        sim.account.place(SYMBOL, "SELL", "MARKET", Decimal("0.5"), None, "", True, PRICE, T0)
        assert {e["e"] for e in events} == {"ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"}, "released: streamed again"


async def test_a_stop_replacement_holds_the_old_stops_cancel_but_a_lone_stops_cancel_goes(
    sim: BingXSimulator,
) -> None:
    async with rest_for(sim.rest_url) as rest:
        trading = BingXTrading(rest)
        await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("1"), client_order_id="td-w-4")
        lone = await trading.place_conditional(SYMBOL, "SELL", "STOP_MARKET", Decimal("1"), Decimal("90"))
        sim.trading.faults.window.arm("stop_replacement")
        take_profit = await trading.place_conditional(
            SYMBOL, "SELL", "TAKE_PROFIT_MARKET", Decimal("1"), Decimal("120")
        )
        await trading.cancel_order(SYMBOL, order_id=take_profit.order_id)  # no other take-profit: not a replacement
        assert sim.trading.faults.window.armed == "stop_replacement"

        new = await trading.place_conditional(SYMBOL, "SELL", "STOP_MARKET", Decimal("1"), Decimal("91"))
        with pytest.raises(VenueError):
            await trading.cancel_order(SYMBOL, order_id=lone.order_id)
        held = sim.trading.faults.window.held
        assert held == {"point": "stop_replacement", "symbol": SYMBOL, "order_id": str(lone.order_id),
                        "order_type": "STOP_MARKET"}  # fmt: skip
        open_ids = {o.order_id for o in sim.account.open_orders(SYMBOL)}
        assert open_ids == {lone.order_id, new.order_id}, "two stops: the old one's cancel never ran"
        await held_then_released(sim, rest)
        assert {o.order_id for o in sim.account.open_orders(SYMBOL)} == open_ids


async def test_a_crash_window_is_refused_when_unknown_or_while_frozen(sim: BingXSimulator) -> None:
    window = sim.trading.faults.window
    with pytest.raises(ValueError, match="is not one of before_submit"):
        window.arm("after_lunch")
    window.arm("before_fill_recorded")
    async with rest_for(sim.rest_url) as rest:
        await BingXTrading(rest).place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-5")
    with pytest.raises(ValueError, match="frozen; release it first"):
        window.arm("before_submit")
    window.release()
    window.arm("before_submit")
    assert window.status()["armed"] == "before_submit"


async def test_an_order_the_account_refuses_is_not_the_instant_the_next_one_is(sim: BingXSimulator) -> None:
    window = sim.trading.faults.window
    window.arm("before_fill_recorded")
    sim.trading.faults.reject_next_orders.append(101204)
    async with rest_for(sim.rest_url) as rest:
        trading = BingXTrading(rest)
        with pytest.raises(VenueError, match="101204"):
            await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-6")
        assert window.status() == {"armed": "before_fill_recorded", "frozen": False, "held": {}}
        await trading.place_order(SYMBOL, "BUY", "MARKET", Decimal("0.5"), client_order_id="td-w-7")
        assert window.held["client_order_id"] == "td-w-7"
