"""The operator's desired state, kept by the supervisor: a `tradingd ctl pause` sent while a pair is
restarting (its execution actor killed from outside) is kept, and applied when the pair is back, before it
can trade: its decisions are HALTED and it places no order. The pause survives `kill -9` of the daemon
and everything under it, until `tradingd ctl resume`. One replay, two daemon starts."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_harness import (
    Daemon,
    cut_files,
    daemon,
    decisions,
    newest_decided,
    query,
    replay_simulator,
    resumed_or_automatically_blocked,
    write_config,
)
from tests.e2e.daemon_harness import (
    ctl_client as ctl,
)

pytestmark = pytest.mark.timeout(900)
BTC = "BTC-USDT"


def btc(d: Daemon) -> dict[str, Any]:
    view: dict[str, Any] = d.ctl("status")["pairs"][BTC]
    return view


def after(url: str, from_ms: int) -> list[Any]:
    """BTC's decisions of candles after `from_ms`, with the orders placed for them."""
    return query(
        url,
        "SELECT d.trading_state, d.order_count, "
        "  (SELECT count(*) FROM trade_executions e WHERE e.decision_trace_id = d.trace_id) AS orders "
        "FROM trade_decisions d WHERE d.pair = $1 AND d.candle_open_time > to_timestamp($2 / 1000.0) "
        "ORDER BY d.candle_open_time",
        BTC,
        from_ms,
    )


def assert_paused(url: str, from_ms: int) -> None:
    rows = after(url, from_ms)
    assert rows
    assert {row["trading_state"] for row in rows} == {"HALTED"}, rows
    assert sum(row["order_count"] + row["orders"] for row in rows) == 0, rows


def test_a_pause_sent_while_a_pair_restarts_is_applied_when_it_is_back_and_survives_kill_9(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    config = write_config(tmp_path)
    # A backoff of 2 s: the pair is seen restarting before its actors are back, however fast they start.
    config.write_text(config.read_text().replace("restart_backoff_sec = 0.5", "restart_backoff_sec = 2.0"))
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: decisions(postgres_url, BTC) >= 3, 120, "BTC decisions")
        old = btc(d)["actors"]["execution"]["pid"]
        os.kill(old, signal.SIGKILL)
        d.wait_until(lambda: btc(d)["state"] in ("restarting", "starting"), 60, "BTC restarting")
        paused = ctl(d, "--json", "pause", BTC)
        assert paused.returncode == 0, paused.stderr
        answer = json.loads(paused.stdout)
        assert answer["pairs"] == {BTC: "HALTED"}  # not `{}`: the pause is not lost
        assert "the pause is kept and applies when the pair is back" in answer["kept"][BTC]
        assert answer["desired"][BTC]["trading_state"] == "HALTED"
        at_pause = newest_decided(postgres_url, BTC)
        status = ctl(d, "--json", "status")
        shown = json.loads(status.stdout)["pairs"][BTC]
        assert shown["state"] != "running"
        assert (shown["desired"]["trading_state"], shown["desired"]["applied"]) == ("HALTED", False)
        readable = ctl(d, "status").stdout
        assert "HALTED (operator_pause) (pending)" in readable
        # Back: the new actors were told the pause before the start-up halt lifted.
        d.wait_until(
            lambda: (view := btc(d))["state"] == "running" and view["actors"]["execution"]["pid"] != old,
            120,
            "the restarted BTC actors",
        )
        assert btc(d)["desired"]["applied"] is True
        assert btc(d)["trading_state"] == "HALTED"
        d.wait_until(lambda: newest_decided(postgres_url, BTC) >= at_pause + 4 * 60_000, 120, "BTC deciding again")
        assert_paused(postgres_url, at_pause)
        eth = query(postgres_url, "SELECT trading_state FROM trade_decisions WHERE pair = 'ETH-USDT' "
                    "ORDER BY candle_open_time DESC LIMIT 1")  # fmt: skip
        assert eth[0]["trading_state"] == "ACTIVE"  # the other pair trades on

        # kill -9 of the daemon and everything under it: the pause is read back from the database.
        d.kill_everything()
        at_kill = newest_decided(postgres_url, BTC)
        d.start()
        # The second READY=1 (the first is still in the list): the control socket is open again.
        d.wait_until(lambda: sum("READY=1" in m for m in d.notifications()) >= 2, 180, "READY=1 again")
        d.wait_until(lambda: newest_decided(postgres_url, BTC) >= at_kill + 3 * 60_000, 120, "BTC deciding again")
        assert_paused(postgres_url, at_pause)
        view = btc(d)
        assert (view["desired"]["reason"], view["desired"]["applied"]) == ("operator_pause", True)
        # The operator's pause first; the candles decided just after the restart may also be stale (the
        # replay clock ran on while the daemon was down), which adds an automatic block of their own.
        assert view["effective_state"].startswith("HALTED (operator_pause"), view["effective_state"]
        causes = view["effective_state"].removeprefix("HALTED (").removesuffix(")").split(", ")
        assert all(cause.startswith("gate:") or cause == "source_stale" for cause in causes[1:]), causes

        # Until the operator resumes it.
        resumed = ctl(d, "resume", BTC)
        assert resumed_or_automatically_blocked(resumed), resumed.stdout + resumed.stderr
        at_resume = newest_decided(postgres_url, BTC)
        d.wait_until(
            lambda: any(row["trading_state"] == "ACTIVE" for row in after(postgres_url, at_resume)),
            120,
            "an ACTIVE BTC decision after the resume",
        )
        assert btc(d)["desired"]["trading_state"] == "ACTIVE"
        assert d.terminate() == 0
