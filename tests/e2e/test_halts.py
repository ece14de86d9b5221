"""The real `tradingd run` on a replay with a tiny `account.daily_loss_limit`: the first losing trade halts
the account, loudly. One `account_halted` event and one alert (`tradingd ctl alerts`), the pairs' effective
state HALTED (daily_loss_limit) in `tradingd ctl --json status` and in every decision line, the trading day
the replayed candles' date (not the wall clock's), and `tradingd ctl resume` exits 1 saying what still
blocks trading and until when."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_harness import (
    PAIRS,
    START_BARS,
    cut_files,
    daemon,
    decisions,
    query,
    replay_simulator,
    write_config,
)
from tests.e2e.daemon_harness import (
    ctl_client as ctl,
)

pytestmark = pytest.mark.timeout(900)


def halted_alerts(url: str) -> list[Any]:
    return query(url, "SELECT kind, message, details FROM alerts WHERE kind = 'account_halted'")


def test_the_daily_loss_limit_halts_loudly_on_market_time_and_resume_says_so(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2600)
    config = write_config(tmp_path)
    tiny = "breaker_max_losses = 1000\ndaily_loss_limit = 0.01"
    config.write_text(config.read_text().replace("breaker_max_losses = 1000", tiny))
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: bool(halted_alerts(postgres_url)), 300, "the account_halted alert")
        at_halt = {pair: decisions(postgres_url, pair) for pair in PAIRS}
        d.wait_until(
            lambda: all(decisions(postgres_url, p) >= at_halt[p] + 5 for p in PAIRS), 120, "decisions while halted"
        )
        # the alert, once, with its reason and figures, in `ctl alerts`
        (alert,) = halted_alerts(postgres_url)
        details = json.loads(alert["details"]) if isinstance(alert["details"], str) else alert["details"]
        assert details["reason"] == "daily_loss_limit"
        assert details["daily_loss_limit"] == "0.01"
        assert float(details["daily_pnl"]) <= -0.01
        replay_day = details["trading_day"]
        assert replay_day.startswith("2025-"), "the trading day follows the replayed candles, not the wall clock"
        assert replay_day != datetime.now(UTC).date().isoformat()
        shown = ctl(d, "alerts", "--limit", "50")
        assert shown.returncode == 0, shown.stderr
        assert "kind: account_halted" in shown.stdout
        assert "daily loss limit of 0.01 USDT" in shown.stdout
        (event,) = d.events("account_halted")
        assert (event["reason"], event["trading_day"]) == ("daily_loss_limit", replay_day)
        # the effective state, in status and in the decision lines
        status = ctl(d, "--json", "status")
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        assert answer["account"]["trading_state"] == "HALTED"
        assert answer["account"]["trading_day"] == replay_day
        for pair in PAIRS:
            view = answer["pairs"][pair]
            assert view["trading_state"] == "HALTED"
            assert view["effective_state"] == "HALTED (daily_loss_limit)"
            assert [(b["cause"], b["scope"]) for b in view["blocked_by"]] == [("daily_loss_limit", "account")]
            assert view["risk"]["trading_state"] == "ACTIVE", "the pair itself is not paused"
        risk = ctl(d, "--json", "risk")
        assert risk.returncode == 0, risk.stderr
        limits = json.loads(risk.stdout)["limits"]  # the limit set the kernel applies, as configured
        assert (limits["max_orders_per_interval"], limits["max_order_notional"]) == (2, "6000")
        assert set(limits) >= {"name", "max_position_notional", "max_order_notional", "max_leverage", "stop_loss_pct"}
        halted_at = int(datetime.fromisoformat(alert_time(postgres_url)).timestamp() * 1000)
        late = [line for line in d.events("decision") if line["candle_open_ms"] > halted_at + 60_000]
        assert late
        assert all(line["trading_state"] == "HALTED" for line in late)
        assert all(line["blocked_by"] == ["daily_loss_limit"] for line in late)
        placed = {order for line in late for order in line["orders"]}
        if placed:  # closing a position stays possible; nothing that adds exposure is sent
            rows = query(
                postgres_url,
                "SELECT reduce_only FROM trade_executions WHERE client_order_id = ANY($1::text[])",
                sorted(placed),
            )
            assert [row[0] for row in rows] == [True] * len(placed)
        denied = (
            "SELECT count(*) FROM trade_decisions WHERE risk_reason = 'daily_loss_limit' AND trading_state = 'HALTED'"
        )
        d.wait_until(lambda: query(postgres_url, denied)[0][0] > 0, 180, "an order denied by the daily loss limit")
        # resume lifts what it can, says what still blocks, and the client exits 1
        resumed = ctl(d, "resume")
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert "still blocked" in resumed.stdout
        assert "daily_loss_limit" in resumed.stdout
        next_day = f"{date.fromisoformat(replay_day) + timedelta(days=1)} 00:00 UTC"
        assert next_day in resumed.stdout
        assert "still blocked" in resumed.stderr
        as_json = ctl(d, "--json", "resume")
        assert as_json.returncode == 1
        body = json.loads(as_json.stdout)
        assert body["blocked"] is True
        assert body["pairs"] == dict.fromkeys(sorted(PAIRS), "HALTED")
        assert body["blocked_by"] == {pair: ["daily_loss_limit"] for pair in sorted(PAIRS)}
        # still one halt, however many candles were denied
        assert len(halted_alerts(postgres_url)) == 1
        assert len(d.events("account_halted")) == 1
        assert d.terminate() == 0


def alert_time(url: str) -> str:
    """The market time at which the account halted (from the alert's details)."""
    rows = query(url, "SELECT details->>'market_time' FROM alerts WHERE kind = 'account_halted'")
    return str(rows[0][0])


def test_a_silent_source_halts_the_pair_loudly_and_resume_says_so(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    """The replayed files end a little after the start: the stream goes quiet, each pair is paused
    automatically with one `pair_halted` alert, its effective state says why, and `resume` exits 1.
    Half a minute of stream at 60x: about as long as the daemon takes to start, so the silence comes
    soon after it trades (on a loaded machine it may come first; a pair never heard from halts alike)."""
    files = cut_files(shared_candles, tmp_path, START_BARS + 30)
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("heartbeat_sec = 5.0", "heartbeat_sec = 5.0\nstale_after_sec = 5.0"))
    stale = "SELECT pair, message, details FROM alerts WHERE kind = 'pair_halted' ORDER BY pair"
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: len(query(postgres_url, stale)) == len(PAIRS), 400, "a pair_halted alert per pair")
        rows = query(postgres_url, stale)
        assert [row["pair"] for row in rows] == sorted(PAIRS)
        for row in rows:
            details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
            assert details["reason"] == "source_stale"
            assert details["stale_after_sec"] == "5"
            assert "no market data for" in row["message"]
        answer = json.loads(ctl(d, "--json", "status").stdout)
        for pair in PAIRS:
            view = answer["pairs"][pair]
            assert view["effective_state"] == "HALTED (source_stale)"
            assert [(b["cause"], b["scope"], b["origin"]) for b in view["blocked_by"]] == [
                ("source_stale", "pair", "automatic")
            ]
        resumed = ctl(d, "resume")
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr
        assert all(f"{pair}: source_stale: no market data" in resumed.stdout for pair in PAIRS)
        assert len(query(postgres_url, stale)) == len(PAIRS), "one alert per transition, not per health check"
        assert len(d.events("pair_halted")) == len(PAIRS)
        assert d.terminate() == 0
