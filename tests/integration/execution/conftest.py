"""What the execution stage's integration tests on a live venue share: a run of one pair, live."""

from __future__ import annotations

from decimal import Decimal

import pytest

from storage.database import Database
from storage.runs import RunStore
from tests.execution_plans import PAIR
from trading.context import PairContext


@pytest.fixture
async def context(database: Database) -> PairContext:
    """A started run trading PAIR, as its live pair's actors know it."""
    run = await RunStore(database.pool).start(
        pairs=[PAIR], interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    return PairContext(str(run.id), PAIR, "1m", "live", "v1", "baseline:momentum", Decimal(10_000))
