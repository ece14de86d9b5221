"""Signed trading calls against the simulator: orders, positions, balance, auth and lost responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from domain.errors import (
    DuplicateClientOrderIdError,
    FatalVenueError,
    OrderNotFoundError,
    RejectedError,
    TemporaryVenueError,
    UnknownOutcomeError,
)
from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy, SystemClock
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator

KEY, SECRET = "sim-api-key-0001", "sim-secret-0001-abcdefghijklmnop"
MINUTE = 60_000
T0 = 1_700_000_040_000


async def no_sleep(_seconds: float) -> None:
    return None


def rows() -> list[FileCandle]:
    # Minute 0 trades at 100; minute 1 dips to 95 (crosses a 96 buy limit).
    return [
        FileCandle(T0, "100.0", "100.5", "99.5", "100.0", "10"),
        FileCandle(T0 + MINUTE, "100.0", "100.2", "95.0", "96.5", "10"),
        FileCandle(T0 + 2 * MINUTE, "96.5", "97.0", "96.0", "96.8", "10"),
    ]


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows())], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET}
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


def client(sim: BingXSimulator, secret: str = SECRET, key: str = KEY, clock: object = None) -> BingXRest:
    return BingXRest(
        sim.rest_url,
        Credentials(key, secret),
        retry=RetryPolicy(attempts=3, base_delay_sec=0),
        sleep=no_sleep,
        clock=clock,
    )  # type: ignore[arg-type]


async def test_market_order_fills_with_fee_and_moves_the_position(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        trading = BingXTrading(rest)
        order = await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.5"), client_order_id="td-run1-7")
        assert order.order_id > 2**53
        assert order.status == "FILLED"
        assert order.client_order_id == "td-run1-7"
        by_client = await trading.query_order("BTC-USDT", client_order_id="td-run1-7")
        by_id = await trading.query_order("BTC-USDT", order_id=order.order_id)
        assert by_client == by_id
        assert by_id.avg_price == Decimal("100.1")  # 2 bps of slippage, rounded up to the 0.1 tick
        assert by_id.commission == Decimal("-0.025025")  # 0.05% taker fee, reported negative
        (position,) = await trading.positions()
        assert (position.symbol, position.quantity, position.entry_price) == (
            "BTC-USDT",
            Decimal("0.5"),
            Decimal("100.1"),
        )
        (usdt,) = await trading.balance()
        assert usdt.balance == Decimal("9999.974975")
        closed = await trading.close_all_positions("BTC-USDT")
        assert len(closed) == 1
        assert await trading.positions() == []


async def test_a_resting_limit_fills_when_the_replay_crosses_it(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        trading = BingXTrading(rest)
        limit = await trading.place_order(
            "BTC-USDT", "BUY", "LIMIT", Decimal("0.2"), client_order_id="lim-1", price=Decimal("96")
        )
        assert limit.open
        other = await trading.place_order(
            "BTC-USDT", "BUY", "LIMIT", Decimal("0.2"), client_order_id="lim-2", price=Decimal("90")
        )
        assert {o.client_order_id for o in await trading.open_orders("BTC-USDT")} == {"lim-1", "lim-2"}
        await sim.market.step(60)  # to the end of minute 1, whose low (95) crosses 96
        filled = await trading.query_order("BTC-USDT", client_order_id="lim-1")
        assert (filled.status, filled.avg_price) == ("FILLED", Decimal("96"))
        cancelled = await trading.cancel_order("BTC-USDT", order_id=other.order_id)
        assert cancelled.status == "CANCELLED"
        with pytest.raises(RejectedError) as already_filled:
            await trading.cancel_order("BTC-USDT", client_order_id="lim-1")
        assert already_filled.value.code == 80018
        with pytest.raises(OrderNotFoundError):
            await trading.query_order("BTC-USDT", client_order_id="never-placed")


async def test_venue_rules_are_refused_with_their_codes(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        trading = BingXTrading(rest)
        await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="dup-1")
        with pytest.raises(DuplicateClientOrderIdError):
            await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="dup-1")
        with pytest.raises(RejectedError) as grows:
            await trading.place_order(
                "BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="ro-1", reduce_only=True
            )
        assert grows.value.code == 101290
        with pytest.raises(RejectedError) as tiny:
            await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.00001"), client_order_id="tiny-1")
        assert tiny.value.code == 101400
        with pytest.raises(RejectedError) as margin:
            await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("1000"), client_order_id="big-1")
        assert margin.value.code == 101204
        with pytest.raises(ValueError, match="client order ids"):
            await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="UPPER")


async def test_both_client_id_spellings_are_accepted_and_lower_cased(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        params = {
            "symbol": "BTC-USDT",
            "side": "BUY",
            "positionSide": "BOTH",
            "type": "MARKET",
            "quantity": "0.1",
            "clientOrderID": "MyOrder1",
        }
        echo = await rest.write("POST", "/openApi/swap/v2/trade/order", params)
        assert echo["order"]["clientOrderID"] == "myorder1"
        found = await BingXTrading(rest).query_order("BTC-USDT", client_order_id="myorder1")
        assert found.status == "FILLED"
        missing_side = {k: v for k, v in params.items() if k != "positionSide"} | {"clientOrderID": "x2"}
        with pytest.raises(RejectedError) as hedge:
            await rest.write("POST", "/openApi/swap/v2/trade/order", missing_side)
        assert hedge.value.code == 109400


async def test_authentication_is_checked_like_the_venue(sim: BingXSimulator) -> None:
    async with client(sim, secret="wrong-secret") as rest:
        with pytest.raises(FatalVenueError) as bad_signature:
            await BingXTrading(rest).balance()
        assert bad_signature.value.code == 100001
    async with client(sim, key="unknown-key") as rest:
        with pytest.raises(FatalVenueError) as bad_key:
            await BingXTrading(rest).balance()
        assert bad_key.value.code == 100413


class SkewedClock:
    def __init__(self, skew_ms: int) -> None:
        self.skew_ms = skew_ms

    def now_ms(self) -> int:
        return SystemClock().now_ms() - self.skew_ms


async def test_a_skewed_clock_is_corrected_before_writes_and_on_100421(sim: BingXSimulator) -> None:
    clock = SkewedClock(10 * MINUTE)
    async with client(sim, clock=clock) as rest:
        trading = BingXTrading(rest)
        # The offset is measured before the first signed call, so the write is not refused.
        order = await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="skew-1")
        assert order.status == "FILLED"
        assert abs(rest.clock_offset_ms - 10 * MINUTE) < 2000
        clock.skew_ms = 25 * MINUTE  # the local clock jumps: measured again before the next signed call
        order = await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="skew-2")
        assert order.status == "FILLED"
        assert abs(rest.clock_offset_ms - 25 * MINUTE) < 2000
    async with client(sim, clock=clock) as rest:
        await rest.sync_time()
        clock.skew_ms = 26 * MINUTE  # a drift smaller than the refresh period: the venue refuses a write,
        trading = BingXTrading(rest)
        with pytest.raises(TemporaryVenueError) as stale:
            await trading.place_order("BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="skew-3")
        assert stale.value.code == 100421
        assert len(await trading.positions()) == 1  # and a read re-syncs on 100421 and succeeds
        assert abs(rest.clock_offset_ms - 26 * MINUTE) < 2000


async def test_a_lost_response_is_resolved_by_client_order_id(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        trading = BingXTrading(rest)
        sim.trading.faults.lose_next_order_response = True
        with pytest.raises(UnknownOutcomeError):
            await trading.place_order("BTC-USDT", "SELL", "MARKET", Decimal("0.3"), client_order_id="lost-1")
        resolved = await trading.query_order("BTC-USDT", client_order_id="lost-1")
        assert (resolved.status, resolved.executed_quantity) == ("FILLED", Decimal("0.3"))
        with pytest.raises(DuplicateClientOrderIdError):  # a blind resubmit would be refused, not doubled
            await trading.place_order("BTC-USDT", "SELL", "MARKET", Decimal("0.3"), client_order_id="lost-1")
        (position,) = await trading.positions()
        assert position.quantity == Decimal("-0.3")


async def test_a_post_only_limit_rests_as_a_maker_and_one_that_would_take_is_refused_unbooked(
    sim: BingXSimulator,
) -> None:
    """At the last price 100, a market buy pays 100.1 (2 bps of slippage, rounded up a tick): a PostOnly
    buy at 100.1 would take (101215, not booked), one at 100.0 rests and fills at its price, as a maker,
    once minute 1 trades down to it; a GTC buy at 101 takes at once, as the market order would."""
    async with client(sim) as rest:
        trading = BingXTrading(rest)
        with pytest.raises(RejectedError) as takes:
            await trading.place_order(
                "BTC-USDT", "BUY", "LIMIT", Decimal("0.2"), client_order_id="po-take", price=Decimal("100.1"),
                time_in_force="PostOnly",
            )  # fmt: skip
        assert takes.value.code == 101215
        assert [o for o in await trading.all_orders("BTC-USDT") if o.client_order_id == "po-take"] == []
        resting = await trading.place_order(
            "BTC-USDT", "BUY", "LIMIT", Decimal("0.2"), client_order_id="po-rest", price=Decimal("100.0"),
            time_in_force="PostOnly",
        )  # fmt: skip
        assert (resting.status, resting.price) == ("NEW", Decimal("100.0"))
        taken = await trading.place_order(
            "BTC-USDT", "BUY", "LIMIT", Decimal("0.2"), client_order_id="gtc-take", price=Decimal("101")
        )
        assert (taken.status, taken.avg_price) == ("FILLED", Decimal("100.1"))
        taker = await trading.query_order("BTC-USDT", client_order_id="gtc-take")
        assert taker.commission == Decimal("-0.01001"), "the taker's 5 bps of 20.02 USDT"
        assert (await trading.query_order("BTC-USDT", client_order_id="po-rest")).status == "NEW"
        await sim.market.step(60)  # minute 1 trades down through 100
        filled = await trading.query_order("BTC-USDT", client_order_id="po-rest")
        assert (filled.status, filled.avg_price, filled.commission) == ("FILLED", Decimal("100"), Decimal("-0.004"))


async def test_time_in_force_is_refused_when_not_simulated_or_misspelt(sim: BingXSimulator) -> None:
    async with client(sim) as rest:
        for value in ("IOC", "FOK", "postonly"):
            with pytest.raises(RejectedError) as refused:
                await rest.write(
                    "POST", "/openApi/swap/v2/trade/order",
                    {"symbol": "BTC-USDT", "side": "BUY", "positionSide": "BOTH", "type": "LIMIT", "quantity": "0.1",
                     "price": "90", "timeInForce": value, "clientOrderId": f"tif-{value.lower()}"},
                )  # fmt: skip
            assert refused.value.code == 109400
            assert value in str(refused.value)
        with pytest.raises(ValueError, match="LIMIT"):
            await BingXTrading(rest).place_order(
                "BTC-USDT", "BUY", "MARKET", Decimal("0.1"), client_order_id="tif-m", time_in_force="PostOnly"
            )
