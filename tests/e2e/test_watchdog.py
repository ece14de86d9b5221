"""Issue 16: the watchdog reflects progress, not only a turning main loop. With both pairs' feature
actors stopped (SIGSTOP, and health checks set to tolerate it) candles keep arriving and nothing decides
them: after `daemon.stall_after_sec` the daemon stops sending WATCHDOG=1 (systemd would restart it)
while its other notifications go on, and raises a `daemon_stalled` alert; when decisions resume, so
does the watchdog."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.daemon_harness import (
    PAIRS,
    SUPERVISION,
    cut_files,
    daemon,
    decisions,
    query,
    replay_simulator,
    write_config,
)

pytestmark = pytest.mark.timeout(900)


def test_the_watchdog_is_withheld_while_arrived_candles_go_undecided(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    supervision = {**SUPERVISION, "health_misses": 100_000, "health_timeout_sec": 1.0, "stall_after_sec": 6.0}
    config = write_config(tmp_path, supervision=supervision)
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 3 for p in PAIRS), 180, "decisions for both pairs")
        pairs = d.ctl("status")["pairs"]
        stopped = [pairs[pair]["actors"]["features"]["pid"] for pair in PAIRS]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            d.wait_until(lambda: bool(d.events("watchdog_withheld")), 120, "the watchdog withheld")
            withheld_at = time.monotonic()

            # The main loop still turns (its STATUS= heartbeats arrive), but sends no WATCHDOG=1.
            def heartbeats_since() -> int:
                return sum(1 for at, m in list(d.arrivals) if at > withheld_at and m.startswith("STATUS="))

            d.wait_until(lambda: heartbeats_since() >= 2, 60, "two heartbeats while withheld")
            late = [m for at, m in list(d.arrivals) if at > withheld_at + 0.5 and "WATCHDOG=1" in m]
            assert not late, "WATCHDOG=1 sent while stalled"
            assert d.ctl("status")["ok"] is True
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        record = d.events("watchdog_withheld")[0]
        assert set(record["stalled_sec"]) == set(PAIRS)
        assert all(span >= 6.0 for span in record["stalled_sec"].values())
        alerts = query(postgres_url, "SELECT severity, message FROM alerts WHERE kind = 'daemon_stalled'")
        assert [row["severity"] for row in alerts] == ["critical"]
        assert "the watchdog is withheld" in alerts[0]["message"]
        d.wait_until(lambda: bool(d.events("watchdog_resumed")), 120, "the watchdog resumed")
        resumed_at = time.monotonic()
        d.wait_until(
            lambda: any(at > resumed_at and "WATCHDOG=1" in m for at, m in list(d.arrivals)), 30, "WATCHDOG=1 again"
        )
