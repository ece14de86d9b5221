"""Orders sent once against the simulator, through every outcome the venue can give (issue 17):
accepted, refused by consequence, not booked and sent again with the same id, ambiguous and resolved by
client order id, a duplicate id looked up, and unresolved after the bound. After each, the venue holds
at most one order of the id."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import pytest

from domain.instruments import Contract
from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.execution.bingx_orders import Backoff, BingXOrders, Consequence, contract_refusal

KEY, SECRET = "orders-key-0001", "orders-secret-0001-abcdefghijklmnop"
MINUTE = 60_000
T0 = 1_700_000_040_000
PRICE = Decimal("100")


@dataclass(frozen=True)
class Order:
    client_order_id: str
    side: Literal["BUY", "SELL"] = "BUY"
    quantity: Decimal = Decimal("0.5")
    reduce_only: bool = False
    limit_price: Decimal | None = None


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [FileCandle(T0 + i * MINUTE, "100.0", "100.5", "99.5", "100.0", "10") for i in range(3)]
    simulator = BingXSimulator([ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await simulator.start()
    yield simulator
    await simulator.stop()


def rest_for(url: str, timeout_sec: float = 10.0) -> BingXRest:
    return BingXRest(
        url, Credentials(KEY, SECRET), retry=RetryPolicy(attempts=3, base_delay_sec=0), sleep=no_sleep,
        timeout_sec=timeout_sec,
    )  # fmt: skip


async def desk(rest: BingXRest) -> BingXOrders:
    (contract,) = await rest.contracts("BTC-USDT")
    return BingXOrders(BingXTrading(rest), contract, sleep=no_sleep)


async def orders_of(rest: BingXRest, cid: str) -> int:
    return sum(1 for o in await BingXTrading(rest).all_orders("BTC-USDT") if o.client_order_id == cid)


def states(placement: object) -> list[str]:
    return [step.state for step in placement.steps]  # type: ignore[attr-defined]


async def test_an_accepted_order_carries_the_venues_order_id(sim: BingXSimulator) -> None:
    async with rest_for(sim.rest_url) as rest:
        placed = await (await desk(rest)).place(Order("td-a-1"), PRICE, T0)
        assert states(placed) == ["submitted", "accepted"]
        assert placed.consequence is Consequence.NONE
        assert placed.order is not None
        assert placed.steps[-1].exchange_order_id == str(placed.order.order_id)
        assert placed.steps[-1].evidence["source"] == "place_echo"
        assert await orders_of(rest, "td-a-1") == 1


@pytest.mark.parametrize("outcome", ["504", "timeout", "reset"])
async def test_a_lost_answer_is_unknown_then_resolved_by_client_order_id(sim: BingXSimulator, outcome: str) -> None:
    sim.trading.faults.hang_sec = 6.0
    sim.trading.faults.next_order_outcomes.append(outcome)  # type: ignore[arg-type]
    async with rest_for(sim.rest_url, timeout_sec=2.0) as rest:
        placed = await (await desk(rest)).place(Order("td-lost-1"), PRICE, T0)
        assert states(placed) == ["submitted", "unknown", "filled"]
        assert placed.steps[-1].evidence["source"] == "order_lookup"
        assert placed.steps[-1].evidence["executed_quantity"] == "0.5000"
        assert placed.consequence is Consequence.NONE
        assert await orders_of(rest, "td-lost-1") == 1  # looked up, never sent again


async def test_a_duplicate_id_is_evidence_the_order_exists(sim: BingXSimulator) -> None:
    async with rest_for(sim.rest_url) as rest:
        orders = await desk(rest)
        await orders.trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.5"), client_order_id="td-dup-1")
        placed = await orders.place(Order("td-dup-1"), PRICE, T0)
        assert states(placed) == ["submitted", "unknown", "filled"]
        assert placed.steps[1].evidence["code"] == 101481
        assert await orders_of(rest, "td-dup-1") == 1


@pytest.mark.parametrize(
    ("code", "consequence"),
    [
        (101204, Consequence.NONE),  # insufficient margin: this order only
        (101290, Consequence.NONE),  # reduce-only would open
        (101415, Consequence.HALT_PAIR),  # the pair is suspended from opening
        (109425, Consequence.HALT_PAIR),  # no such symbol
        (100413, Consequence.HALT_ACCOUNT),  # the key is wrong
        (100004, Consequence.HALT_ACCOUNT),  # the key may not trade
    ],
)
async def test_a_refusal_ends_the_order_and_says_what_it_means(
    sim: BingXSimulator, code: int, consequence: Consequence
) -> None:
    sim.trading.faults.reject_next_orders.append(code)
    async with rest_for(sim.rest_url) as rest:
        placed = await (await desk(rest)).place(Order("td-ref-1"), PRICE, T0)
        assert states(placed) == ["submitted", "rejected"]
        assert placed.steps[-1].evidence["code"] == code
        assert placed.consequence is consequence
        assert await orders_of(rest, "td-ref-1") == 0


async def test_a_rate_limit_or_a_stale_clock_is_sent_again_with_the_same_id(sim: BingXSimulator) -> None:
    sim.trading.faults.reject_next_orders.extend([100410, 100421])
    async with rest_for(sim.rest_url) as rest:
        placed = await (await desk(rest)).place(Order("td-rl-1"), PRICE, T0)
        assert states(placed) == ["submitted", "accepted"]
        assert await orders_of(rest, "td-rl-1") == 1


async def test_a_busy_venue_may_have_booked_so_the_order_is_looked_up(sim: BingXSimulator) -> None:
    sim.trading.faults.reject_next_orders.append(80012)  # refused, so nothing is found
    async with rest_for(sim.rest_url) as rest:
        orders = await desk(rest)
        orders.resolve_backoff = Backoff(attempts=3)
        placed = await orders.place(Order("td-busy-1"), PRICE, T0)
        assert states(placed) == ["submitted", "unknown"]
        assert placed.consequence is Consequence.UNRESOLVED
        assert placed.reason is not None
        assert "td-busy-1" in placed.reason
        assert await orders_of(rest, "td-busy-1") == 0
        # reconciliation asks again later: still absent, still unresolved, and nothing is sent
        again = await orders.resolve("td-busy-1", T0)
        assert (again.steps, again.consequence) == ((), Consequence.UNRESOLVED)
        assert await orders_of(rest, "td-busy-1") == 0


async def test_an_unknown_order_resolves_once_the_venue_shows_it(sim: BingXSimulator) -> None:
    async with rest_for(sim.rest_url) as rest:
        orders = await desk(rest)
        await orders.trading.place_order("BTC-USDT", "SELL", "MARKET", Decimal("0.5"), client_order_id="td-late-1")
        found = await orders.resolve("td-late-1", T0)
        assert states(found) == ["filled"]
        assert found.order is not None
        assert found.order.executed_quantity == Decimal("0.5")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_connection_that_never_opens_books_nothing(sim: BingXSimulator) -> None:
    async with rest_for(sim.rest_url) as rest:
        (contract,) = await rest.contracts("BTC-USDT")
    async with rest_for(f"http://127.0.0.1:{closed_port()}") as nowhere:
        orders = BingXOrders(BingXTrading(nowhere), contract, sleep=no_sleep)
        placed = await orders.place(Order("td-ns-1"), PRICE, T0)
        assert states(placed) == ["submitted", "rejected"]
        assert placed.steps[-1].reason == "bingx_not_booked"
        assert len(placed.steps[-1].evidence["attempts"]) == orders.send_backoff.attempts


async def test_the_contract_is_checked_before_anything_is_sent(sim: BingXSimulator) -> None:
    async with rest_for(sim.rest_url) as rest:
        orders = await desk(rest)
        step = orders.contract.step_size
        for quantity in (step / 2, orders.contract.min_quantity - step, Decimal("0.00001")):
            placed = await orders.place(Order("td-cc-1", quantity=quantity), PRICE, T0)
            assert states(placed) == ["rejected"]
            assert placed.steps[0].reason == "contract_rules"
        assert await orders_of(rest, "td-cc-1") == 0
        assert (await orders.place(Order("td-cc-2", quantity=Decimal("0.0001")), Decimal("1"), T0)).state == "rejected"
        assert sim.requests_to("/openApi/swap/v2/trade/order") == []  # nothing went out


def test_contract_refusals_name_the_rule() -> None:
    contract = Contract("X-USDT", 1, 3, Decimal("0.01"), Decimal("2"), Decimal("0.0002"), Decimal("0.0005"), 50, 50,
                        1, True)  # fmt: skip
    assert contract_refusal(contract, Decimal("0.5"), PRICE) is None
    assert "step" in (contract_refusal(contract, Decimal("0.0005"), PRICE) or "")
    assert "minimum 0.01" in (contract_refusal(contract, Decimal("0.005"), PRICE) or "")
    assert "notional" in (contract_refusal(contract, Decimal("0.01"), PRICE) or "")
    halted = Contract(*[getattr(contract, f) for f in contract.__slots__][:9], 0, True)  # type: ignore[arg-type]
    assert "not open" in (contract_refusal(halted, Decimal("0.5"), PRICE) or "")
