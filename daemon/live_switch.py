"""Switching the active run between paper and live (`ctl runs live RUN_ID`, `ctl runs paper RUN_ID`).

A paper run goes live only when every condition holds, and a refusal names each one that does not:

- `exchange.mode = live` is configured (with the account's keys and a `risk.stop_loss_pct`: the safety
  guard refuses to start without them), so the daemon may send orders at all;
- the run trades an agent version that is `promoted` (`tradingd promote`; a baseline never goes live);
- its paper record meets `trading.live_min_paper_decisions` and `trading.live_min_paper_days` (days of
  candles decided, market time), and the circuit breaker never tripped during it;
- it holds nothing on paper (a paper position has no counterpart on the venue);
- start-up reconciliation passes: for each of its pairs the venue is readable with the keys, the contract
  is open to API orders, and the account holds no position and no open order on it (the live book starts
  flat, so the venue must be flat too);
- the account's USDT equity on the venue covers the equity the run sizes its orders from (its
  `run.initial_equity`): a run sized for more money than the account holds would trade a leverage no
  limit set allowed (or have its orders refused for margin).

Back to paper is refused while the venue holds a position or an open order of the run's pairs (close them
first: the paper book would not know them). Each switch is recorded in `agent_runs` (its `mode` and the
`mode_changes` in its settings) and, as every command, in `ops_audit_events`. The pairs then restart on
the new venue; a live pair reconciles again in its own start before it may trade.
"""

from __future__ import annotations

from decimal import Decimal

from config import Settings
from domain.errors import VenueError
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading, margin_balance
from storage.agents import AgentStore
from storage.database import Database
from storage.runs import Run, RunStore


async def live_refusals(settings: Settings, database: Database, run: Run) -> list[str]:
    """Every unmet condition for switching `run` to live (empty: it may switch)."""
    refusals = []
    if settings.exchange.mode != "live":
        refusals.append(
            "exchange.mode is paper: set exchange.mode = live (TRADINGD_TRADING_MODE) with BINGX_API_KEY and "
            "BINGX_SECRET_KEY, and restart the daemon"
        )
    if run.agent_version_id is None:
        refusals.append(f"the run trades the baseline {run.baseline_policy}: only a promoted agent version goes live")
    else:
        version = await AgentStore(database.pool).version(run.agent_version_id)
        status = None if version is None else version.status
        if status != "promoted":
            refusals.append(f"agent version {run.agent_version_id} is {status}, not promoted (`tradingd promote`)")
    record = await RunStore(database.pool).paper_record(run.id)
    trading = settings.trading
    if record.decisions < trading.live_min_paper_decisions:
        refusals.append(
            f"the run made {record.decisions} decisions on paper; trading.live_min_paper_decisions is "
            f"{trading.live_min_paper_decisions}"
        )
    if record.days < trading.live_min_paper_days:
        refusals.append(
            f"the run decided {record.days:.2f} days of candles on paper; trading.live_min_paper_days is "
            f"{trading.live_min_paper_days:g}"
        )
    if record.breaker_trips:
        refusals.append(f"the circuit breaker tripped {record.breaker_trips} time(s) during the run")
    held = [h for h in await RunStore(database.pool).holdings(run.id) if h.is_open]
    if held:
        refusals.append(f"the run holds {'; '.join(h.describe() for h in held)} on paper: close it first")
    if settings.exchange.mode == "live":
        equity = Decimal(str(run.settings.get("initial_equity", settings.run.initial_equity)))
        refusals += await venue_refusals(settings, run.pairs, sizing_equity=equity)
    return refusals


async def paper_refusals(settings: Settings, run: Run) -> list[str]:
    """Every unmet condition for switching a live `run` back to paper."""
    if run.mode != "live":
        return [f"run {run.id} trades on paper already"]
    return await venue_refusals(settings, run.pairs)


async def venue_refusals(settings: Settings, pairs: tuple[str, ...], sizing_equity: Decimal | None = None) -> list[str]:
    """The venue, read with the account's keys: each pair listed and open to API orders, with no position
    and no open order on it; with `sizing_equity` (going live), an account whose USDT equity covers the
    equity the run sizes its orders from."""
    exchange = settings.exchange
    if exchange.api_key is None or exchange.secret_key is None:
        return ["no BINGX_API_KEY / BINGX_SECRET_KEY to read the account with"]
    credentials = Credentials(exchange.api_key.get_secret_value(), exchange.secret_key.get_secret_value())
    refusals = []
    try:
        async with BingXRest(exchange.rest_url, credentials, recv_window_ms=exchange.recv_window_ms) as rest:
            await rest.sync_time()
            venue = BingXTrading(rest)
            if sizing_equity is not None:
                usdt = margin_balance(await venue.balance())
                held_equity = Decimal(0) if usdt is None else usdt.equity
                if held_equity < sizing_equity:
                    refusals.append(
                        f"the run sizes its orders from an equity of {sizing_equity} USDT (run.initial_equity) but "
                        f"the venue account holds {held_equity} USDT: start a run with run.initial_equity at most that"
                    )
            contracts = {contract.symbol: contract for contract in await rest.contracts()}
            for pair in pairs:
                contract = contracts.get(pair)
                if contract is None or not contract.active:
                    refusals.append(f"{pair} is not open to API orders on the venue")
                    continue
                held = [p for p in await venue.positions(pair) if p.symbol == pair and p.quantity != 0]
                if held:
                    refusals.append(f"the venue holds a position of {held[0].quantity} {pair}: close it first")
                orders = await venue.open_orders(pair)
                if orders:
                    refusals.append(f"the venue has {len(orders)} open order(s) on {pair}: cancel them first")
    except VenueError as error:
        refusals.append(f"the venue could not be read with the account's keys: {error}")
    return refusals
