"""Issue 16: the watchdog reflects progress, not only a turning main loop. With both pairs' feature
actors stopped (SIGSTOP, and health checks set to tolerate it) candles keep arriving and nothing decides
them: after `daemon.stall_after_sec` the daemon stops sending WATCHDOG=1 (systemd would restart it)
while its other notifications go on, and raises a `daemon_stalled` alert; when decisions resume, so
does the watchdog. Beforehand, the metrics endpoint is scraped."""

from __future__ import annotations

import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_metrics(port: int) -> None:
    """The metrics endpoint (issue 16), scraped as Prometheus does, parsed with prometheus_client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    latency = families["tradingd_decision_latency_seconds"]
    counts = {s.labels["pair"]: s.value for s in latency.samples if s.name.endswith("_count")}
    assert set(counts) == set(PAIRS)
    assert all(count >= 1 for count in counts.values())
    states = {(s.labels["pair"], s.labels["state"]): s.value for s in families["tradingd_pair_state"].samples}
    assert all(states[(pair, "running")] == 1 for pair in PAIRS)
    trading = families["tradingd_pair_trading_state"].samples
    assert sum(s.value for s in trading) == len(PAIRS), "one current state per pair"
    assert {s.labels["state"] for s in families["tradingd_account_trading_state"].samples} == {
        "ACTIVE",
        "REDUCING",
        "HALTED",
    }
    for name in ("tradingd_actor_restarts", "tradingd_circuit_breaker_open", "tradingd_alerts_kept",
                 "tradingd_audit_events_kept", "tradingd_desired_states_unsaved", "tradingd_inbox_backlog",
                 "tradingd_slippage_bps", "tradingd_ingestion_lag_seconds"):  # fmt: skip
        assert name in families, name


def test_the_watchdog_is_withheld_while_arrived_candles_go_undecided(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    supervision = {**SUPERVISION, "health_misses": 100_000, "health_timeout_sec": 1.0, "stall_after_sec": 6.0}
    port = free_port()
    config = write_config(tmp_path, supervision=supervision, extra=f"[metrics]\nenabled = true\nport = {port}\n")
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 3 for p in PAIRS), 180, "decisions for both pairs")
        check_metrics(port)
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
