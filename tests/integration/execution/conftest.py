"""What the execution stage's integration tests on a live venue share: a run of one pair, live, and by
default a simulator whose minute 1 falls from 100 to 95 (a module may bring its own `sim` and `rest`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from exchange.bingx.rest import BingXRest, Credentials, RetryPolicy
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from storage.database import Database
from storage.runs import RunStore
from tests.execution_plans import PAIR, no_sleep
from trading.context import PairContext

KEY, SECRET = "venue-key-0001", "venue-secret-0001-abcdefghijklmnop"
MINUTE = 60_000
T0 = 1_700_000_040_000


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [
        FileCandle(T0, "100.0", "100.5", "99.5", "100.0", "10"),
        FileCandle(T0 + MINUTE, "100.0", "100.2", "95.0", "96.5", "10"),  # falls through 99.9, and a 2% stop
        FileCandle(T0 + 2 * MINUTE, "96.5", "97.0", "96.0", "96.5", "10"),
    ]
    simulator = BingXSimulator([ReplaySeries(PAIR, "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET})
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def rest(sim: BingXSimulator) -> AsyncIterator[BingXRest]:
    client = BingXRest(sim.rest_url, Credentials(KEY, SECRET), retry=RetryPolicy(attempts=2, base_delay_sec=0),
                       sleep=no_sleep, timeout_sec=5.0)  # fmt: skip
    yield client
    await client.close()


@pytest.fixture
async def context(database: Database) -> PairContext:
    """A started run trading PAIR, as its live pair's actors know it."""
    run = await RunStore(database.pool).start(
        pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    return PairContext(str(run.id), PAIR, "1m", "live", "v1", "baseline:momentum", Decimal(10_000))
