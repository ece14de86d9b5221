"""The account guard on a live run measures the drawdown on the venue's equity (issue 17): read from the
simulator's balance (wallet plus the open position's unrealised PnL at its mark), the first reading is
the peak's start, an unrealised loss on the venue trips the breaker though no trade closed and no pair
reported, the peak survives a restart, and a switch back to paper starts the book's count afresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.messages import PositionReport
from exchange.bingx.rest import Credentials
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import FileCandle
from exchange.sim.replay import ReplayClock, ReplaySeries
from exchange.sim.server import BingXSimulator
from pipeline.risk.account import AccountPolicy
from pipeline.risk.desk import AccountDesk
from pipeline.risk.venue_equity import VenueEquity, VenueEquitySource
from storage.database import Database
from storage.risk import RiskStore

KEY, SECRET = "equity-key-0001", "equity-secret-0001-abcdefghijklmnop"
MINUTE = 60_000
T0 = 1_700_000_040_000
NOW = datetime(2025, 5, 5, 12, tzinfo=UTC)
POLICY = AccountPolicy("dd", Decimal(50_000), Decimal(50_000), Decimal(10_000), 50, timedelta(0), Decimal(30))


@pytest.fixture
async def sim() -> AsyncIterator[BingXSimulator]:
    rows = [
        FileCandle(T0, "100.0", "100.5", "99.5", "100.0", "10"),
        FileCandle(T0 + MINUTE, "100.0", "100.0", "60.0", "60.0", "10"),  # the long loses 40 per unit
    ]
    simulator = BingXSimulator(
        [ReplaySeries("BTC-USDT", "1m", rows)], ReplayClock(T0 + 59_000), api_keys={KEY: SECRET}, balance=Decimal(1000)
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_an_unrealised_loss_on_the_venue_trips_the_breaker_and_the_peak_survives_a_restart(
    sim: BingXSimulator, database: Database
) -> None:
    store = RiskStore(database.pool)
    venue = VenueEquity(VenueEquitySource(sim.rest_url, Credentials(KEY, SECRET), 5000))
    try:
        desk = AccountDesk(POLICY, await store.account_state(), NOW, "venue")
        first = await venue.read()
        assert (first.asset, first.equity) == ("USDT", Decimal(1000))
        assert not desk.venue_equity(first.equity, first.balance, NOW)
        assert (desk.guard.state.equity, desk.guard.state.equity_peak) == (Decimal(1000), Decimal(1000))

        await BingXTrading(venue.rest).place_order("BTC-USDT", "BUY", "MARKET", Decimal(1), client_order_id="eq-1")
        opened = await venue.read()
        assert opened.equity < Decimal(1000), "the fee"
        assert not desk.venue_equity(opened.equity, opened.balance, NOW)
        await store.save_account_state(desk.row())

        # A pair's report moves nothing on a live run: the venue's equity is the account's.
        report = PositionReport("BTC-USDT", Decimal(1), Decimal(100), Decimal(0), 1, Decimal(10), Decimal(0),
                                Decimal(0), 0, 2)  # fmt: skip
        assert not desk.on_report(report)
        assert desk.guard.state.equity == opened.equity

        sim.clock.set(T0 + MINUTE + 59_000)  # the price falls to 60: unrealised -40
        restored = AccountDesk(POLICY, await store.account_state(), NOW, "venue")
        assert restored.guard.state.equity_peak == Decimal(1000), "the peak survives the restart"
        fallen = await venue.read()
        assert fallen.equity < Decimal(970)
        assert restored.venue_equity(fallen.equity, fallen.balance, NOW), "30 below the peak, no trade closed"
        assert restored.guard.trading_state == "REDUCING"
        assert "unrealised PnL included" in (restored.guard.state.breaker_reason or "")
        summary = restored.summary()
        assert (summary["equity_source"], summary["venue_equity"]) == ("venue", str(fallen.equity))
        assert summary["venue_balance"] == str(fallen.balance)
        await store.save_account_state(restored.row())

        paper = AccountDesk(POLICY, await store.account_state(), NOW, "book")
        assert (paper.guard.state.equity, paper.guard.state.equity_peak) == (Decimal(0), Decimal(0))
        assert paper.guard.state.breaker_open, "a switch to paper keeps the tripped breaker"
    finally:
        await venue.close()
