"""A live run on two pairs against `tradingd sim` as the venue (issue 17), every step through the real CLI
and the real daemon: an agent trained, evaluated and promoted; a paper run of it; the switch to live
refused while it holds a paper position (when it holds one at the pause), then accepted (`ctl runs
live`); orders placed on the venue and filled over the user stream, each open position with its
protective stop; `kill -9` of the whole daemon tree and a restart that reconciles and trades on; and,
once paused, the database equal to the simulator's account: the positions, every order, its fills and
its fees, with no order the venue does not know and none it has that we do not."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from exchange.sim.candle_file import load_candle_file
from reliability.invariants import sweep_secrets
from tests.e2e.cli_helpers import TRADINGD
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
from tests.e2e.live_helpers import (
    HISTORY_BARS,
    KEY,
    SECRET,
    agrees_with_the_venue,
    ctl,
    database_account,
    go_live,
    live_config,
    live_fills,
    promoted_agent,
    venue_account,
)

pytestmark = pytest.mark.timeout(1500)
KEY2, SECRET2 = "live-e2e-key-0002-rotated", "live-e2e-secret-0002-rotated-mnopqrst"


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

        go_live(d, postgres_url, run_id)
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
        agrees_with_the_venue(d, postgres_url, urls, "paused", KEY2, SECRET2)
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
