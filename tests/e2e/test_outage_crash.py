"""Issue 16: a pause sent while PostgreSQL is down is applied at once and kept to be stored; if the daemon
then dies (`kill -9` of the whole tree) before the database answers, the pause is not forgotten: it is on
disk (`<data_dir>/desired_state.unsaved.json`), the next start applies it before the pair can trade, and
stores it. The control socket's audit events of the outage are written when the database is back, with the
time each command ran."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_harness import (
    Daemon,
    ctl_client,
    cut_files,
    daemon,
    decisions,
    newest_decided,
    query,
    replay_simulator,
    resumed_or_automatically_blocked,
    write_config,
)
from tests.e2e.stoppable_postgres import stoppable_postgres

pytestmark = pytest.mark.timeout(900)
ETH = "ETH-USDT"
MINUTE = 60_000


def eth(d: Daemon) -> dict[str, Any]:
    view: dict[str, Any] = d.ctl("status")["pairs"][ETH]
    return view


def stored(url: str) -> list[Any]:
    return query(url, "SELECT trading_state, reason FROM operator_desired_states WHERE scope = $1", ETH)


def test_a_pause_kept_through_an_outage_survives_kill_9_and_its_audit_is_written_after(
    tmp_path: Path, shared_candles: Path
) -> None:
    files = cut_files(shared_candles, tmp_path, 2400)
    (tmp_path / "pg").mkdir()
    unsaved = tmp_path / "data" / "desired_state.unsaved.json"
    with (
        stoppable_postgres(tmp_path / "pg") as pg,
        replay_simulator(files) as urls,
        daemon(write_config(tmp_path), urls, pg.url, tmp_path) as d,
    ):
        d.start()
        d.wait_ready()
        d.wait_until(lambda: decisions(pg.url, ETH) >= 3, 180, "ETH decisions")

        # The audit of a command during an outage is kept and written when the database is back.
        pg.stop()
        outage_began = datetime.now(UTC)
        d.wait_until(lambda: d.ctl("status")["database"]["reachable"] is False, 60, "the outage seen")
        paused = ctl_client(d, "pause", ETH)
        assert paused.returncode == 0, paused.stderr
        assert "stored when it answers" in paused.stdout
        assert eth(d)["trading_state"] == "HALTED", "applied at once"
        assert unsaved.exists(), "the kept pause is on disk"
        assert unsaved.stat().st_mode & 0o777 == 0o600
        pg.start()
        d.wait_until(lambda: stored(pg.url) == [("HALTED", "operator_pause")], 120, "the pause stored")
        d.wait_until(lambda: not unsaved.exists(), 60, "the kept pause's file removed once stored")
        d.wait_until(
            lambda: query(
                pg.url,
                "SELECT occurred_at FROM ops_audit_events WHERE command = 'pause' AND target = $1 AND outcome = "
                "'accepted' AND occurred_at >= $2",
                ETH,
                outage_began,
            ),
            120,
            "the pause's audit event written",
        )
        audit_at = query(
            pg.url, "SELECT occurred_at FROM ops_audit_events WHERE command = 'pause' AND target = $1", ETH
        )[0]["occurred_at"]
        assert audit_at < datetime.now(UTC), audit_at
        assert d.events("audit_event_kept"), "kept while the database was away"
        assert d.events("audit_events_written")
        # The outage restarted the pairs (their feeds need the database); resumed once ETH is back.
        d.wait_until(lambda: eth(d)["state"] == "running", 300, "ETH running again")
        resumed = ctl_client(d, "resume", ETH)
        assert resumed_or_automatically_blocked(resumed), resumed.stdout + resumed.stderr
        assert stored(pg.url) == [("ACTIVE", None)]

        # Now a pause during an outage, and the daemon killed before the database answers.
        pg.stop()
        d.wait_until(lambda: d.ctl("status")["database"]["reachable"] is False, 60, "the second outage seen")
        paused = ctl_client(d, "pause", ETH)
        assert paused.returncode == 0, paused.stderr
        assert unsaved.exists()
        d.kill_everything()
        pg.start()
        assert stored(pg.url) == [("ACTIVE", None)], "the database never heard of the pause"
        at_kill = newest_decided(pg.url, ETH)
        restarted = time.monotonic()
        d.start()
        d.wait_until(lambda: sum("READY=1" in m for m in d.notifications()) >= 2, 180, "READY=1 again")
        assert d.events("desired_state_recovered"), "read back from disk"
        d.wait_until(lambda: stored(pg.url) == [("HALTED", "operator_pause")], 120, "the recovered pause stored")
        d.wait_until(lambda: not unsaved.exists(), 60, "the file removed once stored")
        view = eth(d)
        assert (view["desired"]["trading_state"], view["desired"]["applied"]) == ("HALTED", True)
        d.wait_until(lambda: newest_decided(pg.url, ETH) >= at_kill + 3 * MINUTE, 180, "ETH deciding again")
        after = query(
            pg.url,
            "SELECT trading_state, order_count FROM trade_decisions WHERE pair = $1 "
            "AND candle_open_time > to_timestamp($2 / 1000.0)",
            ETH,
            at_kill,
        )
        assert after
        assert {row["trading_state"] for row in after} == {"HALTED"}, "it never traded after the restart"
        assert sum(row["order_count"] for row in after) == 0
        print(f"restart to recovered pause stored: {time.monotonic() - restarted:.1f} s")
        assert d.terminate() == 0
