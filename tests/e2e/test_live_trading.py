"""A live run on two pairs against `tradingd sim` as the venue (issue 17), every step through the real CLI
and the real daemon: an agent trained, evaluated and promoted; a paper run of it; the switch to live
refused while it holds a paper position (when it holds one at the pause), then accepted (`ctl runs
live`); orders placed on the venue and filled over the user stream, each open position with its
protective stop; `kill -9` of the whole daemon tree and a restart that reconciles and trades on; and,
once paused, the database equal to the simulator's account: the positions, every order, its fills and
its fees, with no order the venue does not know and none it has that we do not."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest

from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading
from exchange.sim.candle_file import load_candle_file
from reliability.invariants import sweep_secrets
from tests.e2e.cli_helpers import TINY_AGENT, TRADINGD, tradingd
from tests.e2e.daemon_harness import (
    PAIRS,
    Daemon,
    cut_files,
    daemon,
    decisions,
    query,
    resumed_or_automatically_blocked,
    sim_faults,
    simulator_process,
)

pytestmark = pytest.mark.timeout(1500)
KEY, SECRET = "live-e2e-key-0001", "live-e2e-secret-0001-abcdefghijkl"
KEY2, SECRET2 = "live-e2e-key-0002-rotated", "live-e2e-secret-0002-rotated-mnopqrst"
HISTORY_BARS = 3000


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return tradingd(d.env, "ctl", *args, "--config", str(d.config), timeout=180)


def promoted_agent(d: Daemon, tmp_path: Path, first_ms: int) -> str:
    """`dataset build`, `agent create`, `train`, `evaluate` (walk-forward) and `promote` of an ETH agent."""
    built = tradingd(
        d.env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--feature-set", "v1",
        "--from", str(first_ms + 100 * 60_000), "--to", str(first_ms + 2_900 * 60_000),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    dataset = str(json.loads(built.stdout)["id"])
    (tmp_path / "agent.toml").write_text(TINY_AGENT.format(name="live", margin=-1_000_000.0))
    assert tradingd(d.env, "agent", "create", str(tmp_path / "agent.toml")).returncode == 0
    trained = tradingd(d.env, "train", "--agent", "live", "--dataset", dataset)
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = str(json.loads(trained.stdout)["id"])
    folds = ["--folds", "3", "--purge-bars", "6", "--embargo-bars", "4", "--min-train-bars", "1000"]
    evaluated = tradingd(d.env, "evaluate", "--agent-version", version, "--dataset", dataset, *folds)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    promoted = tradingd(d.env, "promote", version)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    return version


def live_config(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(
        f"""
[exchange]
mode = "live"

[market_data]
source = "bingx"
pairs = {json.dumps(list(PAIRS))}
intervals = ["1m"]

[run]
policy = "agent:{version}"

[trading]
live_min_paper_decisions = 4
live_min_paper_days = 0

[account]
breaker_max_losses = 100000
daily_loss_limit = 100000

[daemon]
health_interval_sec = 1.0
restart_backoff_sec = 0.5

[logging]
format = "json"
"""
    )
    return path


def live_fills(url: str, pair: str) -> int:
    rows = query(url, "SELECT count(*) FROM trade_executions WHERE mode = 'live' AND pair = $1 AND filled_quantity > 0",
                 pair)  # fmt: skip
    return int(rows[0][0])


def open_positions(url: str, run_id: str) -> dict[str, Decimal]:
    rows = query(
        url,
        "SELECT pair, sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END) FROM trade_executions "
        "WHERE run_id = $1::uuid GROUP BY pair",
        run_id,
    )
    return {row[0]: row[1] for row in rows if row[1] != 0}


def venue_account(urls: dict[str, str], key: str = KEY, secret: str = SECRET) -> dict[str, dict[str, object]]:
    """Per pair, the simulator's account as the venue reports it: position, orders with fills and fees, and
    the protective stops open."""

    async def read() -> dict[str, dict[str, object]]:
        async with BingXRest(urls["rest_url"], Credentials(key, secret)) as rest:
            venue = BingXTrading(rest)
            found: dict[str, dict[str, object]] = {}
            for pair in PAIRS:
                orders = await venue.all_orders(pair, limit=1000)
                found[pair] = {
                    "position": sum((p.quantity for p in await venue.positions(pair)), Decimal(0)),
                    "orders": {str(o.order_id): (o.executed_quantity, -o.commission) for o in orders},
                    "stops": [o for o in await venue.open_orders(pair) if o.type == "STOP_MARKET"],
                }
            return found

    return asyncio.run(read())


def rotate(d: Daemon, key: str, secret: str, *, via_file: bool) -> subprocess.CompletedProcess[str]:
    """`tradingd secrets rotate`, the new pair from a credentials file (0600, outside the swept directory,
    removed after) or from standard input."""
    assert TRADINGD is not None
    command = [TRADINGD, "secrets", "rotate", "--config", str(d.config)]
    if not via_file:
        return subprocess.run(command, input=f"{key}\n{secret}\n", env=d.env, capture_output=True, text=True,
                              timeout=180, check=False)  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "new-keys.toml"
        path.touch(mode=0o600)
        path.write_text(f'api_key = "{key}"\nsecret_key = "{secret}"\n')
        command += ["--credentials-file", str(path)]
        return subprocess.run(command, env=d.env, capture_output=True, text=True, timeout=180, check=False)


def signed_since(url: str, since: object) -> int:
    """Live market orders the venue accepted since `since` (each one a signed call)."""
    rows = query(
        url,
        "SELECT count(*) FROM trade_executions WHERE mode = 'live' AND order_type = 'MARKET' "
        "AND exchange_order_id IS NOT NULL AND created_at > $1",
        since,
    )
    return int(rows[0][0])


def database_account(url: str, pair: str) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]:
    rows = query(
        url,
        "SELECT exchange_order_id, side, filled_quantity, fee FROM trade_executions WHERE mode = 'live' AND pair = $1 "
        "AND exchange_order_id IS NOT NULL",
        pair,
    )
    position = sum((r[2] if r[1] == "BUY" else -r[2] for r in rows), Decimal(0))
    return position, {str(r[0]): (r[2], r[3]) for r in rows}


def test_a_paper_run_goes_live_trades_on_the_venue_survives_kill_9_and_agrees_with_it(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 4_000)
    first_ms = max(load_candle_file(path)[0].open_time_ms for path in set(files.values()))
    with (
        simulator_process(files, api_keys=[f"{KEY}:{SECRET}", f"{KEY2}:{SECRET2}"], start_bars=HISTORY_BARS,
                          faults=True) as (urls, _),
        daemon(tmp_path / "unused.toml", urls, postgres_url, tmp_path,
               extra_env={"BINGX_API_KEY": KEY, "BINGX_SECRET_KEY": SECRET}) as d,
    ):  # fmt: skip
        version = promoted_agent(d, tmp_path, first_ms)
        d.config = live_config(tmp_path, version)
        d.start()
        d.wait_ready()
        run_id = str(query(postgres_url, "SELECT id FROM agent_runs WHERE status = 'running'")[0][0])
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 5 for p in PAIRS), 300, "paper decisions")

        # Paused, its paper trades closed: then it may go live (a paper position has no venue counterpart).
        assert ctl(d, "pause", "--reason", "going_live").returncode == 0
        if open_positions(postgres_url, run_id):  # the agent trades often: it usually holds one here
            held = ctl(d, "runs", "live", run_id)
            assert held.returncode == 1
            assert "on paper: close it first" in held.stderr

        def closed_on_paper() -> bool:
            """Close every trade that holds a position (one still opening may fill after the pause: it is
            closed on a later round; `close-trade` twice sends one order)."""
            if not open_positions(postgres_url, run_id):
                return True
            for trade in json.loads(ctl(d, "status", "--json").stdout)["open_trades"]:
                if trade["entry_price"] is not None:
                    ctl(d, "close-trade", trade["id"])
            return False

        answers: list[subprocess.CompletedProcess[str]] = []

        def switched() -> bool:
            if not closed_on_paper():
                return False
            answers.append(ctl(d, "runs", "live", run_id))
            if answers[-1].returncode == 0:
                return True
            assert "on paper: close it first" in answers[-1].stderr, answers[-1].stderr  # filled meanwhile
            return False

        d.wait_until(switched, 300, "flat on paper, then switched", every=3)
        assert "switched: live" in answers[-1].stdout
        assert query(postgres_url, "SELECT mode FROM agent_runs WHERE id = $1::uuid", run_id)[0][0] == "live"
        changes = query(postgres_url, "SELECT settings->'mode_changes' FROM agent_runs WHERE id = $1::uuid", run_id)
        assert [change["mode"] for change in json.loads(changes[0][0])] == ["live"]
        resumed = ctl(d, "resume")
        assert resumed_or_automatically_blocked(resumed), resumed.stdout + resumed.stderr

        d.wait_until(lambda: all(live_fills(postgres_url, p) >= 3 for p in PAIRS), 600, "live fills on both pairs")
        assert all(event["ok"] for event in d.events("reconciled")), "the start-up reconciliation passed"
        assert not d.events("reconciliation_failed")

        # Ambiguous outcomes through the daemon: the next three orders (a protective one among them, maybe) are
        # booked and their answers lost (HTTP 504, no answer at all, the connection reset); each is resolved
        # (by its client order id; a stop, found among the open orders), never sent again, and trading goes on.
        before = sim_faults(urls, order_log=True)["orders_posted"]
        sim_faults(urls, order_outcomes=["504", "timeout", "reset"])
        d.wait_until(lambda: sim_faults(urls)["order_outcomes"] == 0, 600, "three orders booked, their answers lost")
        faulted = sorted(set(sim_faults(urls, order_log=True)["orders_posted"]) - set(before))

        def resolved() -> bool:
            rows = query(postgres_url, "SELECT state, exchange_order_id FROM trade_executions "
                                       "WHERE client_order_id = ANY($1::text[])", faulted)  # fmt: skip
            return len(rows) == len(faulted) and all(r["state"] not in ("intent", "submitted", "unknown") for r in rows)

        d.wait_until(resolved, 300, "each faulted order resolved by its client order id")

        # kill -9 of the whole tree while it trades live, then a restart: reconciled, and trading on.
        d.kill_everything()
        fills_before = {p: live_fills(postgres_url, p) for p in PAIRS}
        reconciled_before = len(d.events("reconciled"))
        d.start()
        d.ready()  # READY=1 of this start
        d.wait_until(lambda: len(d.events("reconciled")) >= reconciled_before + 2, 300, "reconciled after kill -9")
        assert not d.events("reconciliation_failed")
        d.wait_until(lambda: any(live_fills(postgres_url, p) > fills_before[p] + 1 for p in PAIRS), 600, "trading on")
        assert not d.events("actor_exiting"), "no actor failed a message"

        # secrets rotate: a pair the venue does not know is refused; the second pair is swapped in without a
        # restart, the first revoked on the venue, and the daemon trades on, signing with the new one.
        refused = rotate(d, "unknown-key-0000000001", "unknown-secret-0000000001", via_file=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "the venue refused a signed read with the new keys" in refused.stderr, refused.stderr
        rotated = rotate(d, KEY2, SECRET2, via_file=True)
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert "live pairs swapped: BTC-USDT, ETH-USDT" in rotated.stdout, rotated.stdout
        assert "the keys replaced: same account" in rotated.stdout, rotated.stdout
        sim_faults(urls, revoke_api_keys=[KEY])
        revoked_at = query(postgres_url, "SELECT now()")[0][0]
        d.wait_until(lambda: signed_since(postgres_url, revoked_at) >= 2, 600, "orders signed with the new keys")
        assert not d.events("reconciliation_failed")
        audit = query(postgres_url, "SELECT outcome, params FROM ops_audit_events WHERE command = 'secrets-rotate' "
                                    "ORDER BY id")  # fmt: skip
        assert [row["outcome"] for row in audit] == ["rejected", "accepted"]
        assert json.loads(audit[1]["params"])["api_key"].startswith("sha256:")

        # Paused and settled: the database is the venue's account.
        assert ctl(d, "pause", "--reason", "compare").returncode == 0

        def settled() -> bool:
            working = query(
                postgres_url,
                "SELECT count(*) FROM trade_executions WHERE mode = 'live' AND order_type = 'MARKET' "
                "AND state IN ('intent', 'submitted', 'accepted', 'partially_filled', 'unknown')",
            )
            return int(working[0][0]) == 0

        d.wait_until(settled, 120, "no market order working")
        seen: list[dict[str, dict[str, object]]] = []

        def one_stop_each() -> bool:
            """Each open position with exactly one stop: a stop being moved (or one whose cancel the venue
            did not take, asked again within the actor's protection check) may be two for a moment."""
            seen.append(venue_account(urls, KEY2, SECRET2))
            return all(
                isinstance(v["stops"], list) and len(v["stops"]) == (1 if v["position"] != 0 else 0)
                for v in seen[-1].values()
            )

        d.wait_until(one_stop_each, 120, "one stop for each open position")
        venue = seen[-1]
        for pair in PAIRS:
            position, orders = database_account(postgres_url, pair)
            assert position == venue[pair]["position"], pair
            assert orders == venue[pair]["orders"], f"{pair}: every order, its fills and fees, both ways"
            stops = venue[pair]["stops"]
            assert isinstance(stops, list)
            assert len(stops) == (1 if position != 0 else 0), f"{pair}: exactly one stop for an open position"
            if stops:
                assert stops[0].quantity == abs(position)
        duplicated = query(
            postgres_url,
            "SELECT client_order_id FROM trade_executions GROUP BY client_order_id HAVING count(*) > 1",
        )
        assert duplicated == []
        # The simulator's order log: every client order id submitted once (the faulted ones included), and
        # none we did not record.
        posted = sim_faults(urls, order_log=True)["orders_posted"]
        recorded = {
            r[0] for r in query(postgres_url, "SELECT client_order_id FROM trade_executions WHERE mode = 'live'")
        }
        assert faulted
        assert set(faulted) <= set(posted)
        assert {cid: n for cid, n in posted.items() if n != 1} == {}, "no client order id submitted twice"
        assert set(posted) <= recorded, "no order on the venue that the journal did not record first"

        # The emergency flatten on the venue: each position closed reduce-only, then its stop cancelled.
        flattened = ctl(d, "close-all", "--all")
        assert flattened.returncode == 0, flattened.stdout + flattened.stderr
        assert all(f"{pair}: flat (closed " in flattened.stdout for pair in PAIRS), flattened.stdout
        flat: list[dict[str, dict[str, object]]] = []

        def flat_on_the_venue() -> bool:
            flat.append(venue_account(urls, KEY2, SECRET2))
            return all(v["position"] == 0 and not v["stops"] for v in flat[-1].values())

        d.wait_until(flat_on_the_venue, 120, "flat on the venue with no stop left")
        for pair in PAIRS:
            position, orders = database_account(postgres_url, pair)
            assert position == 0, pair
            assert orders == flat[-1][pair]["orders"], f"{pair}: the closes recorded as the venue filled them"
        after = json.loads(ctl(d, "status", "--json").stdout)
        assert all(after["pairs"][p]["desired"]["reason"] == "operator_close_all" for p in PAIRS), after["pairs"]

        # No key or secret, old or new, in any table or file the run wrote (logs, the daemon's data directory).
        swept = sweep_secrets(postgres_url, [tmp_path], [KEY, SECRET, KEY2, SECRET2])
        assert swept.files > 0
        assert swept.found == 0, (swept.in_files, swept.in_tables)
