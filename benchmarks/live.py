"""Live trading benchmark (issue 17): the real `tradingd run` trading live on `tradingd sim` (its own
process, on loopback), and reconciliation at scale.

    uv run python -m benchmarks.live [--part daemon|reconcile|all] [--keep DIR] [--write]

- **candle final -> order accepted by the venue**, p50/p99, for the same run's orders on paper and then
  live: each order's decision latency (`trade_decisions.latency_ms`: the feature actor holding the final
  candle to the execution actor about to commit the decision) plus the time from that commit
  (`decided_at`) to the commit of the order's `accepted` state (`trade_state_events.occurred_at`, after the
  venue's answer on a live run). Both clocks are the database's. Two pairs (BTC, ETH, real 1m candles)
  at `--speed 60`, an agent trained, evaluated and promoted as in the live e2e test (it trades often);
  the first 10 orders of each phase are not counted.
- **`kill -9` to trading live again**: the whole daemon tree killed while it trades live, then started
  at once: to READY=1, to the last pair's start-up reconciliation (`reconciled`), and to the first live
  order the venue accepted after the kill (its recorded state change); three trials.
- **reconciliation of 10 pairs with 100 orders** (in this process, each pair's execution stage on a live
  context over a real PostgreSQL, the simulator in its own process): (a) 100 open orders on the venue:
  each pair holds a position with its stop and take-profit on the venue, and 8 resting limit orders
  placed from outside (named, as reconciliation does); (b) after a crash: each pair has 10 orders whose
  answers were lost and which the venue booked, each resolved by its client order id. Each reconciled
  all 10 pairs at once (as the actors do) and one after another.

`--write` replaces the live section of docs/performance.md (only after `--part all`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.daemon import SHARED, Postgres, pair_names
from benchmarks.market_data import percentile
from benchmarks.report import write_section
from domain.fills import Side
from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import load_candle_file
from pipeline.execution.bingx_orders import BingXOrders
from pipeline.execution.bingx_venue import BingXVenue
from pipeline.execution.reconciliation import Reconciler
from pipeline.execution.stage import ExecutionStage
from pipeline.execution.venue import VenueStep
from storage.checkpoints import CheckpointStore
from storage.database import Database, StorageOptions
from storage.journal import TradingJournal
from storage.migrator import migrate
from storage.runs import RunStore
from tests.e2e.daemon_harness import PAIRS, Daemon, cut_files, daemon, decisions, query, simulator_process
from tests.e2e.live_helpers import KEY, SECRET, ctl, go_live, live_config, promoted_agent
from tests.execution_plans import RULES, plan
from trading.context import PairContext
from trading.protection import ProtectionRule

START, END = "<!-- live-bench:start -->", "<!-- live-bench:end -->"
SKIP = 10
RECONCILE_PAIRS = 10
FOREIGN_PER_PAIR = 8
LOST_PER_PAIR = 10
KILL_TRIALS = 3


# ---------------------------------------------------------------- candle final -> accepted


ACCEPTED_SQL = """
    SELECT e.mode, d.latency_ms + extract(epoch FROM (s.occurred_at - d.decided_at)) * 1000 AS ms
    FROM trade_executions e
    JOIN trade_decisions d ON d.trace_id = e.decision_trace_id AND d.run_id = e.run_id
    JOIN trade_state_events s ON s.execution_id = e.id AND s.to_state = 'accepted'
    WHERE e.order_type = 'MARKET' AND e.mode = $1 AND d.latency_ms IS NOT NULL
    ORDER BY d.decided_at
"""


def accepted_ms(url: str, mode: str) -> list[float]:
    """Candle final to accepted, per order of `mode`, oldest first."""
    return [float(row["ms"]) for row in query(url, ACCEPTED_SQL, mode)]


def summary(values: list[float]) -> str:
    if not values:
        return "no orders"
    return f"p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms (n={len(values)})"


def daemon_part(work: Path, postgres: Postgres) -> dict[str, Any]:
    files = cut_files(SHARED, work, 4_000)
    first_ms = max(load_candle_file(path)[0].open_time_ms for path in set(files.values()))
    url = postgres.new_database()
    figures: dict[str, Any] = {}
    with (
        simulator_process(files, api_keys=[f"{KEY}:{SECRET}"], start_bars=3000, faults=True) as (urls, _),
        daemon(
            work / "unused.toml", urls, url, work, extra_env={"BINGX_API_KEY": KEY, "BINGX_SECRET_KEY": SECRET}
        ) as d,
    ):
        version = promoted_agent(d, work, first_ms)
        d.config = live_config(work, version)
        d.start()
        d.wait_ready()
        run_id = str(query(url, "SELECT id FROM agent_runs WHERE status = 'running'")[0][0])
        d.wait_until(lambda: len(accepted_ms(url, "paper")) >= SKIP + 40, 900, "paper orders")
        figures["paper"] = accepted_ms(url, "paper")[SKIP:]
        d.wait_until(lambda: all(decisions(url, p) >= 5 for p in PAIRS), 300, "paper decisions")
        go_live(d, url, run_id)
        assert ctl(d, "resume").returncode in (0, 1)
        d.wait_until(lambda: len(accepted_ms(url, "live")) >= SKIP + 40, 1200, "live orders")
        figures["live"] = accepted_ms(url, "live")[SKIP:]

        figures["kill9"] = [kill_trial(d, url) for _ in range(KILL_TRIALS)]
    return figures


ACCEPTED_AFTER_SQL = """
    SELECT min(s.occurred_at) FROM trade_state_events s JOIN trade_executions e ON e.id = s.execution_id
    WHERE e.mode = 'live' AND e.order_type = 'MARKET' AND s.to_state = 'accepted' AND s.occurred_at > $1
"""


def kill_trial(d: Daemon, url: str) -> tuple[float, float, float]:
    """`kill -9` of the tree (while it trades live) and a start at once: seconds from the kill to READY=1,
    to the last pair's start-up reconciliation (its log line), and to the first live order the venue
    accepted after the kill (its recorded state change). The database and the logs share this machine's
    clock."""
    reconciled_before = len(d.events("reconciled"))
    killed = datetime.fromtimestamp(d.kill_everything(), UTC)
    d.start()
    d.ready()
    ready_sec = (datetime.now(UTC) - killed).total_seconds()
    d.wait_until(lambda: len(d.events("reconciled")) >= reconciled_before + len(PAIRS), 300, "reconciled", 0.2)
    last = max(datetime.fromisoformat(e["timestamp"]) for e in d.events("reconciled")[reconciled_before:])
    d.wait_until(lambda: query(url, ACCEPTED_AFTER_SQL, killed)[0][0] is not None, 600, "a live order accepted")
    accepted: datetime = query(url, ACCEPTED_AFTER_SQL, killed)[0][0]
    return ready_sec, (last - killed).total_seconds(), (accepted - killed).total_seconds()


# ---------------------------------------------------------------- reconciliation at scale


async def _stages(
    database: Database, url: str, pairs: list[str], protection: ProtectionRule, clients: list[BingXRest]
) -> list[ExecutionStage]:
    """One live execution stage per pair, each with a REST client of its own at its share of the account's
    signed budget, as the daemon's pairs have (kept in `clients`, for the caller to close)."""
    run = await RunStore(database.pool).start(
        pairs=pairs, interval="1m", feature_set="v1", decision_threshold=0.5, settings={}, baseline_policy="momentum"
    )
    stages = []
    for pair in pairs:
        rest = BingXRest(url, Credentials(KEY, SECRET), signed_share=1 / len(pairs))
        clients.append(rest)
        await rest.sync_time()
        (contract,) = await rest.contracts(pair)
        context = PairContext(str(run.id), pair, "1m", "live", "v1", "baseline:momentum", Decimal(10_000))
        venue = BingXVenue(BingXOrders(BingXTrading(rest), contract))
        stage = ExecutionStage(context, RULES, TradingJournal(database.pool), CheckpointStore(database.pool), venue,
                               protection)  # fmt: skip
        await stage.restore()
        stages.append(stage)
    return stages


def _reconcilers(stages: list[ExecutionStage]) -> list[Reconciler]:
    return [Reconciler(s, s.venue, "halt") for s in stages if isinstance(s.venue, BingXVenue)]


async def _timed(stages: list[ExecutionStage], clients: list[BingXRest]) -> dict[str, Any]:
    """All pairs reconciled at once (as the actors do), then one after another: seconds, the requests the
    first sent, and what it found."""
    sent = sum(c.requests_sent for c in clients)
    started = time.perf_counter()
    results = list(await asyncio.gather(*(r.run() for r in _reconcilers(stages))))
    together = time.perf_counter() - started
    calls = sum(c.requests_sent for c in clients) - sent
    started = time.perf_counter()
    for reconciler in _reconcilers(stages):
        await reconciler.run()
    return {"together_sec": together, "requests": calls, "sequential_sec": time.perf_counter() - started,
            "findings": Counter(f.kind for r in results for f in r.findings)}  # fmt: skip


async def _quantity(rest: BingXRest, pair: str, notional: int) -> tuple[Decimal, Decimal]:
    """The pair's price now and a quantity of about `notional` USDT on the test rules' grid."""
    price = await rest.price(pair)
    return price, max(Decimal("0.001"), (Decimal(notional) / price).quantize(Decimal("0.001")))


async def _lost_answers(stage: ExecutionStage, rest: BingXRest, count: int) -> None:
    """`count` orders whose intents were committed and whose answers were lost; the venue booked each."""
    price, quantity = await _quantity(rest, stage.pair, 20)
    for minute in range(count):
        step = stage.core.on_plan(plan(stage.core.context, 100 + minute, float(price), None,
                                       [("BUY", str(quantity), False)], pair=stage.pair))  # fmt: skip
        if step is None or not await stage._write(step):
            raise RuntimeError(f"{stage.pair}: the intent was not written")
        (order,) = step.submit
        cid = order.client_order_id
        lost = [VenueStep(cid, "submitted", "bingx_submitted"), VenueStep(cid, "unknown", "bingx_outcome_unknown")]
        if not await stage._write(stage.core.submitted(lost)):
            raise RuntimeError(f"{stage.pair}: the lost answer was not written")
        await BingXTrading(rest).place_order(stage.pair, "BUY", "MARKET", quantity, client_order_id=cid)


Scenario = Callable[[Database, BingXRest, list[str], list[BingXRest]], Awaitable[dict[str, Any]]]


async def reconcile_part(database_urls: list[str], work: Path) -> dict[str, Any]:
    """The two scenarios, each on a database of its own (one run at a time)."""
    pairs = pair_names(RECONCILE_PAIRS)
    files = cut_files(SHARED, work, 2_000, pairs)
    figures: dict[str, Any] = {}
    scenarios: tuple[tuple[str, Scenario], ...] = (
        ("open_orders", _open_orders_scenario), ("lost_answers", _lost_answers_scenario)
    )  # fmt: skip
    with simulator_process(files, api_keys=[f"{KEY}:{SECRET}"], start_bars=1500) as (urls, _):
        async with BingXRest(urls["rest_url"], Credentials(KEY, SECRET)) as rest:
            await rest.sync_time()
            for (name, scenario), url in zip(scenarios, database_urls, strict=True):
                database = await Database.open(StorageOptions(url=url, data_dir=work, pool_max_size=12))
                clients: list[BingXRest] = []
                try:
                    async with database.pool.acquire() as connection:
                        await migrate(connection)
                    figures[name] = await scenario(database, rest, pairs, clients)
                finally:
                    for client in clients:
                        await client.close()
                    await database.close()
    return figures


async def _open_orders_scenario(
    database: Database, rest: BingXRest, pairs: list[str], clients: list[BingXRest]
) -> dict[str, Any]:
    trading = BingXTrading(rest)
    stages = await _stages(database, rest.base_url, pairs, ProtectionRule(Decimal("0.05"), Decimal("0.05")), clients)
    for stage in stages:
        price, quantity = await _quantity(rest, stage.pair, 200)
        await stage.on_plan(plan(stage.core.context, 0, float(price), 1.0, [("BUY", str(quantity), False)],
                                 pair=stage.pair))  # fmt: skip
    first = list(await asyncio.gather(*(r.run() for r in _reconcilers(stages))))  # fills booked, stops placed
    if not all(r.ok for r in first):
        raise RuntimeError(f"the set-up did not reconcile: {[r.unresolved() for r in first if not r.ok]}")
    for stage in stages:
        price, quantity = await _quantity(rest, stage.pair, 20)
        for n in range(FOREIGN_PER_PAIR):
            await trading.place_order(stage.pair, "BUY", "LIMIT", quantity,
                                      client_order_id=f"by-hand-{stage.pair.lower()}-{n}",
                                      price=(price * Decimal("0.5")).quantize(Decimal("0.1")))  # fmt: skip
    open_orders = sum([len(await trading.open_orders(p)) for p in pairs])
    return {"open_orders": open_orders, **await _timed(stages, clients)}


async def _lost_answers_scenario(
    database: Database, rest: BingXRest, pairs: list[str], clients: list[BingXRest]
) -> dict[str, Any]:
    trading = BingXTrading(rest)
    for pair in pairs:  # the venue cleared of the first scenario
        for order in await trading.open_orders(pair):
            await trading.cancel_order(pair, order_id=order.order_id)
        for position in await trading.positions(pair):
            if position.quantity:
                side: Side = "SELL" if position.quantity > 0 else "BUY"
                await trading.place_order(pair, side, "MARKET", abs(position.quantity), reduce_only=True,
                                          client_order_id=f"clear-{pair.lower()}")  # fmt: skip
    stages = await _stages(database, rest.base_url, pairs, ProtectionRule(Decimal("0.05")), clients)
    for stage in stages:
        await _lost_answers(stage, rest, LOST_PER_PAIR)
    return {"orders": LOST_PER_PAIR * len(pairs), **await _timed(stages, clients)}


# ---------------------------------------------------------------- report


def _reconciled(figures: dict[str, Any]) -> str:
    found = ", ".join(f"{n} {kind}" for kind, n in sorted(figures["findings"].items()))
    return (
        f"{figures['together_sec']:.1f} s all pairs at once, as the actors do ({figures['requests']} requests; "
        f"found: {found}); again, one pair after another: {figures['sequential_sec']:.1f} s"
    )


def markdown(figures: dict[str, Any], took_min: float) -> str:
    kill = figures["kill9"]
    open_orders, lost = figures["reconcile"]["open_orders"], figures["reconcile"]["lost_answers"]

    def median(index: int) -> float:
        return float(statistics.median(trial[index] for trial in kill))

    rows = [
        ("candle final -> order accepted, paper (the same run, before the switch)", summary(figures["paper"])),
        ("candle final -> order accepted by the venue, live", summary(figures["live"])),
        (f"`kill -9` of the whole tree while trading live -> READY=1 (median of {len(kill)})", f"{median(0):.1f} s"),
        ("... -> every pair's start-up reconciliation done", f"{median(1):.1f} s"),
        ("... -> the next order the venue accepted", f"{median(2):.1f} s (trials: "
         + ", ".join(f"{t[2]:.1f}" for t in kill) + " s)"),
        (f"reconciliation, {RECONCILE_PAIRS} pairs, {open_orders['open_orders']} open orders on the venue "
         f"(each pair: its position's stop and take-profit, {FOREIGN_PER_PAIR} resting limits from outside)",
         _reconciled(open_orders)),
        (f"reconciliation after a crash, {RECONCILE_PAIRS} pairs, {lost['orders']} orders whose answers were lost "
         "(each booked on the venue, resolved by client order id)", _reconciled(lost)),
    ]  # fmt: skip
    table = ["| what | figure |", "| --- | --- |", *(f"| {what} | {figure} |" for what, figure in rows)]
    head = (
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.live --write` on "
        f"{platform.machine()}, Python {platform.python_version()}: `tradingd run` live on `tradingd sim` (its "
        f"own process, loopback), 2 pairs at 60x, an agent trained and promoted as in the live e2e test, "
        f"embedded PostgreSQL; the whole run took {took_min:.0f} min."
    )
    return "\n".join([START, head, "", *table, END])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.live", description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("daemon", "reconcile", "all"), default="all")
    parser.add_argument("--keep", type=Path, help="keep the logs and files here")
    parser.add_argument("--write", action="store_true", help="replace the live section of docs/performance.md")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        raise SystemExit(f"the candles are not there: {SHARED}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tradingd-live-bench-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        postgres = Postgres(work / "postgres")
        postgres.start()
        figures: dict[str, Any] = {}
        try:
            if args.part in ("reconcile", "all"):
                (work / "reconcile").mkdir(exist_ok=True)
                figures["reconcile"] = asyncio.run(
                    reconcile_part([postgres.new_database(), postgres.new_database()], work / "reconcile")
                )
                print(json.dumps({"reconcile": figures["reconcile"]}), flush=True)
            if args.part in ("daemon", "all"):
                (work / "daemon").mkdir(exist_ok=True)
                figures.update(daemon_part(work / "daemon", postgres))
                print(json.dumps({"paper": summary(figures["paper"]), "live": summary(figures["live"]),
                                  "kill9": figures["kill9"]}), flush=True)  # fmt: skip
        finally:
            postgres.stop()
    if args.write:
        if args.part != "all":
            raise SystemExit("--write needs --part all")
        write_section(START, END, markdown(figures, (time.monotonic() - started) / 60), heading="Live trading")


if __name__ == "__main__":
    main()
