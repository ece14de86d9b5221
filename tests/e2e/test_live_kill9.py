"""`kill -9` of the whole daemon tree at each instant of an order's life on the live venue (issue 17):
after the intent is committed and before the submit, after the submit and before its answer, after the
fill and before it is recorded, and while a stop is being replaced (the new one placed, the old one not
yet cancelled). The simulator holds the daemon at the instant and freezes (`exchange.sim.crash_window`),
so the kill lands exactly there whatever the machine's load. After each restart and its reconciliation:
no client order id sent twice, no order on the venue the journal did not record first (so no more
orders than the decisions asked for), no fill lost, and, paused, the database equal to the venue's
account with exactly one protective stop for each open position."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exchange.sim.candle_file import load_candle_file
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
    go_live,
    live_config,
    live_fills,
    promoted_agent,
)

pytestmark = pytest.mark.timeout(2400)
POINTS = ("before_submit", "before_answer", "before_fill_recorded", "stop_replacement")


def execution(url: str, client_order_id: str) -> Any:
    rows = query(url, "SELECT state, exchange_order_id, filled_quantity FROM trade_executions "
                      "WHERE client_order_id = $1", client_order_id)  # fmt: skip
    return rows[0] if rows else None


def protective_by_venue_id(url: str, order_id: str) -> Any:
    rows = query(url, "SELECT state, order_type FROM trade_executions WHERE exchange_order_id = $1", order_id)
    return rows[0] if rows else None


def at_the_instant(point: str, held: dict[str, str], url: str) -> bool:
    """Whether the daemon's own record is as the instant means it (for the kill to test that instant)."""
    if point == "stop_replacement":
        old = protective_by_venue_id(url, held["order_id"])
        return old is not None and old["state"] == "cancel_requested"
    row = execution(url, held["client_order_id"])
    if row is None:
        return False
    if point == "before_fill_recorded":  # the answer recorded, the fill not
        return bool(row["state"] == "accepted" and row["exchange_order_id"] is not None and row["filled_quantity"] == 0)
    return row["exchange_order_id"] is None and row["state"] in ("intent", "submitted", "unknown")


def kill_at(d: Daemon, urls: dict[str, str], url: str, point: str) -> dict[str, str]:
    """Arm the window, wait until the venue caught the daemon there and its record shows it, kill -9 the tree,
    thaw the venue and start again; what the window held."""
    sim_faults(urls, crash_window=point)
    d.wait_until(lambda: bool(sim_faults(urls)["crash_window"]["frozen"]), 900, f"{point}: the window caught")
    held: dict[str, str] = sim_faults(urls)["crash_window"]["held"]
    seen: list[object] = []

    def there() -> bool:
        key = held.get("client_order_id") or held.get("order_id", "")
        seen.append(execution(url, key) if "client_order_id" in held else protective_by_venue_id(url, key))
        return at_the_instant(point, held, url)

    try:
        d.wait_until(there, 120, f"{point}: the daemon's record at the instant")
    except AssertionError as failed:
        raise AssertionError(f"{point}: held {held}, the record {seen[-1:]}") from failed
    d.kill_everything()
    sim_faults(urls, release=True)
    reconciled_before = len(d.events("reconciled"))
    d.start()
    d.ready()
    d.wait_until(lambda: len(d.events("reconciled")) >= reconciled_before + len(PAIRS), 300, f"{point}: reconciled")
    assert not d.events("reconciliation_failed"), point
    return held


def resolved(point: str, held: dict[str, str], url: str) -> bool:
    if point == "stop_replacement":
        old = protective_by_venue_id(url, held["order_id"])
        return old is not None and old["state"] == "cancelled"
    row = execution(url, held["client_order_id"])
    return row is not None and row["state"] == "filled" and row["exchange_order_id"] is not None


def agrees_once_paused(d: Daemon, urls: dict[str, str], url: str, point: str, held: dict[str, str]) -> None:
    """Paused and settled, the database is the venue's account; every client order id was sent once, and
    the venue holds none the journal did not record first."""
    assert ctl(d, "pause", "--reason", f"compare_{point}").returncode == 0
    agrees_with_the_venue(d, url, urls, point)
    posted = sim_faults(urls, order_log=True)["orders_posted"]
    assert {cid: n for cid, n in posted.items() if n != 1} == {}, f"{point}: no client order id sent twice"
    recorded = {r[0] for r in query(url, "SELECT client_order_id FROM trade_executions WHERE mode = 'live'")}
    assert set(posted) <= recorded, f"{point}: no order on the venue the journal did not record first"
    if point != "stop_replacement":
        assert posted[held["client_order_id"]] == 1, point


def trades_on(d: Daemon, url: str, point: str) -> None:
    fills = {p: live_fills(url, p) for p in PAIRS}
    resumed = ctl(d, "resume")
    assert resumed_or_automatically_blocked(resumed), resumed.stdout + resumed.stderr
    d.wait_until(lambda: any(live_fills(url, p) > fills[p] for p in PAIRS), 600, f"{point}: trading on")


def test_kill_9_at_each_instant_of_an_order_leaves_the_database_agreeing_with_the_venue(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 4_000)
    first_ms = max(load_candle_file(path)[0].open_time_ms for path in set(files.values()))
    with (
        simulator_process(files, api_keys=[f"{KEY}:{SECRET}"], start_bars=HISTORY_BARS, faults=True) as (urls, _),
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
        assert resumed_or_automatically_blocked(resumed := ctl(d, "resume")), resumed.stdout + resumed.stderr
        d.wait_until(lambda: all(live_fills(postgres_url, p) >= 1 for p in PAIRS), 600, "live fills on both pairs")

        for point in POINTS:
            held = kill_at(d, urls, postgres_url, point)
            d.wait_until(lambda: resolved(point, held, postgres_url), 300, f"{point}: the held order resolved")  # noqa: B023
            agrees_once_paused(d, urls, postgres_url, point, held)
            trades_on(d, postgres_url, point)

        assert not d.events("actor_exiting"), "no actor failed a message"
        after = json.loads(ctl(d, "status", "--json").stdout)
        assert after["run"]["mode"] == "live", after["run"]
