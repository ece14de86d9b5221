"""The REST client against the simulator on loopback: market data, paging, errors, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from domain.errors import FatalVenueError, RateLimitedError, RejectedError, TemporaryVenueError
from exchange.bingx.rest import BingXRest, RetryPolicy
from exchange.sim.candle_file import FileCandle, load_candle_file
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator, SimulatorOptions

MINUTE = 60_000
START = 1_700_000_040_000  # minute-aligned


def synthetic_rows(count: int) -> list[FileCandle]:
    rows = []
    for i in range(count):
        base = 100 + i
        rows.append(
            FileCandle(START + i * MINUTE, f"{base}.5", f"{base + 2}.25", f"{base - 1}.75", f"{base + 1}.0", f"{i}.125")
        )
    return rows


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = synthetic_rows(3000)
    clock = ReplayClock(start_ms=rows[-1].open_time_ms + 10 * MINUTE)
    simulator = BingXSimulator([ReplaySeries("BTC-USDT", "1m", rows)], clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: BingXSimulator) -> AsyncIterator[BingXRest]:
    rest = BingXRest(sim.rest_url, retry=RetryPolicy(attempts=4), sleep=no_sleep)
    yield rest
    await rest.close()


async def test_server_time_and_clock_offset(client: BingXRest) -> None:
    offset = await client.sync_time()
    assert abs(offset) < 1000
    assert client.clock_offset_ms == offset


async def test_contracts(client: BingXRest) -> None:
    (contract,) = await client.contracts()
    assert contract.symbol == "BTC-USDT"
    assert contract.tick_size == Decimal("0.1")
    assert contract.active


async def test_klines_page_from_start_time(client: BingXRest) -> None:
    batch = await client.klines("BTC-USDT", "1m", start_ms=START + 10 * MINUTE, limit=5)
    assert [c.open_time_ms for c in batch.candles] == [START + (10 + i) * MINUTE for i in range(5)]
    first = batch.candles[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (110.5, 112.25, 109.75, 111.0, 10.125)


async def test_klines_without_range_return_the_latest(client: BingXRest) -> None:
    batch = await client.klines("BTC-USDT", "1m", limit=3)
    assert [c.open_time_ms for c in batch.candles] == [START + i * MINUTE for i in (2997, 2998, 2999)]


async def test_descending_pages_are_sorted_by_the_client(sim: BingXSimulator, client: BingXRest) -> None:
    sim.options = SimulatorOptions(kline_order="desc")
    batch = await client.klines("BTC-USDT", "1m", start_ms=START, limit=10)
    assert batch.unsorted
    assert [c.open_time_ms for c in batch.candles] == sorted(c.open_time_ms for c in batch.candles)


async def test_end_time_is_exclusive_unless_configured(sim: BingXSimulator, client: BingXRest) -> None:
    exclusive = await client.klines("BTC-USDT", "1m", start_ms=START, end_ms=START + 3 * MINUTE, limit=100)
    assert len(exclusive.candles) == 3
    sim.options = SimulatorOptions(kline_end_inclusive=True)
    inclusive = await client.klines("BTC-USDT", "1m", start_ms=START, end_ms=START + 3 * MINUTE, limit=100)
    assert len(inclusive.candles) == 4


async def test_forming_candle_is_not_final_until_its_last_second() -> None:
    sim = BingXSimulator([ReplaySeries("BTC-USDT", "1m", synthetic_rows(10))], ReplayClock(START + 5 * MINUTE + 20_000))
    await sim.start()
    client = BingXRest(sim.rest_url, sleep=no_sleep)
    forming = (await client.klines("BTC-USDT", "1m", limit=1)).candles[0]
    assert forming.open_time_ms == START + 5 * MINUTE
    assert forming.close != 106.0
    sim.clock.set(START + 6 * MINUTE - 1000)
    final = (await client.klines("BTC-USDT", "1m", limit=1)).candles[0]
    assert (final.open_time_ms, final.close, final.high, final.low, final.volume) == (
        START + 5 * MINUTE,
        106.0,
        107.25,
        104.75,
        5.125,
    )
    await client.close()
    await sim.stop()


async def test_price(client: BingXRest) -> None:
    assert await client.price("BTC-USDT") == Decimal("3100.0")


async def test_business_errors_arrive_with_http_200(client: BingXRest) -> None:
    with pytest.raises(RejectedError) as error:
        await client.klines("NOPE-USDT", "1m", limit=5)
    assert error.value.code == 109425
    assert error.value.http_status == 200
    with pytest.raises(ValueError, match="limit"):
        await client.klines("BTC-USDT", "1m", limit=5000)


async def test_rate_limit_and_server_error_bursts_are_retried(sim: BingXSimulator, client: BingXRest) -> None:
    sim.faults.burst(429, 2)
    sim.faults.burst(503, 1)
    batch = await client.klines("BTC-USDT", "1m", start_ms=START, limit=2)
    assert len(batch.candles) == 2
    assert [r.status for r in sim.requests_to("/openApi/swap/v3/quote/klines")] == [429, 429, 503, 200]


async def test_retries_give_up_with_the_family(sim: BingXSimulator, client: BingXRest) -> None:
    sim.faults.burst(429, 10)
    with pytest.raises(RateLimitedError):
        await client.klines("BTC-USDT", "1m", limit=1)
    sim.faults.http_errors.clear()
    sim.faults.burst(502, 10)
    with pytest.raises(TemporaryVenueError):
        await client.server_time_ms()


async def test_signed_call_without_credentials_is_refused_locally(client: BingXRest) -> None:
    with pytest.raises(Exception, match="needs API credentials"):
        await client._send("GET", "/openApi/swap/v2/user/positions", {}, signed=True)


async def test_unknown_route_is_an_enveloped_404(client: BingXRest) -> None:
    with pytest.raises(RejectedError) as error:
        await client._get("/openApi/swap/v9/nothing", {})
    assert (error.value.code, error.value.http_status) == (100400, 404)


async def test_real_candles_page_through_exactly(shared_candles: Path) -> None:
    rows = load_candle_file(shared_candles / "BINANCE_BTCUSDT_1m.csv")[:5000]
    simulator = BingXSimulator([ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(rows[-1].open_time_ms + MINUTE))
    await simulator.start()
    try:
        async with BingXRest(simulator.rest_url, sleep=no_sleep) as rest:
            fetched = []
            cursor = rows[0].open_time_ms
            while True:
                page = (await rest.klines("BTC-USDT", "1m", start_ms=cursor, limit=1440)).candles
                if not page:
                    break
                fetched.extend(page)
                cursor = page[-1].open_time_ms + MINUTE
        assert len(fetched) == len(rows)
        for candle, row in zip(fetched, rows, strict=True):
            assert candle.open_time_ms == row.open_time_ms
            assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
                float(row.open),
                float(row.high),
                float(row.low),
                float(row.close),
                float(row.volume),
            )
        assert len(simulator.request_log) == 5
    finally:
        await simulator.stop()


async def test_fatal_errors_are_not_retried(sim: BingXSimulator, client: BingXRest) -> None:
    sim.faults.burst(401, 3)
    with pytest.raises(FatalVenueError):
        await client.server_time_ms()
    assert [r.status for r in sim.request_log] == [401]
