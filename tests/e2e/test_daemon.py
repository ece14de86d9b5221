"""The real `tradingd run` process: two pairs replayed from real candles through `tradingd sim`.

- decisions and paper trades appear; `pause`/`resume` on the control socket stop and restart new orders
  for one pair only; `status` tells the truth; the socket refuses bad requests; SIGTERM exits 0 after
  final checkpoints; the notify messages arrive in order;
- `kill -9` of the daemon and everything under it, then a restart: every candle decided exactly once,
  no client order id twice;
- an actor killed from outside is restarted; a pair whose actor keeps dying is FAULTED while the other
  pair trades on; a risk limit denies with its reason recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reliability.invariants import decision_failures
from tests.e2e.daemon_harness import (
    PAIRS,
    TOKEN,
    cut_files,
    daemon,
    decisions,
    newest_decided,
    query,
    replay_simulator,
    venue_clock_ms,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.timeout(900)
TRADINGD = shutil.which("tradingd")


def raw_request(path: Path, payload: bytes) -> list[dict[str, object]]:
    """Send raw bytes on a fresh connection; every answer line until the daemon closes or goes quiet."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(path))
        client.settimeout(10)
        client.sendall(payload)
        data = b""
        while payload.count(b"\n") > data.count(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_two_pairs_trade_pause_resume_status_and_stop(tmp_path: Path, shared_candles: Path, postgres_url: str) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    with replay_simulator(files) as urls, daemon(write_config(tmp_path), urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 8 for p in PAIRS), 120, "decisions for both pairs")
        d.wait_until(
            lambda: query(postgres_url, "SELECT count(*) FROM trade_executions WHERE state = 'filled'")[0][0] > 0,
            120,
            "a paper fill",
        )
        # status tells the truth
        status = d.ctl("status")
        assert status["ok"] is True
        run_id = query(postgres_url, "SELECT id FROM agent_runs")[0][0]
        assert status["run"]["id"] == str(run_id)
        for pair in PAIRS:
            view = status["pairs"][pair]
            assert (view["state"], view["trading_state"]) == ("running", "ACTIVE")
            assert all(actor["alive"] for actor in view["actors"].values())
            assert view["last_candle_open_ms"] <= newest_decided(postgres_url, pair) + 60_000
        # pause one pair: its new decisions are HALTED, the other pair's are not
        paused = d.ctl("pause", pair="BTC-USDT")
        assert paused["pairs"] == {"BTC-USDT": "HALTED"}
        assert d.ctl("pause", pair="BTC-USDT")["pairs"] == {"BTC-USDT": "HALTED"}  # idempotent
        at_pause = newest_decided(postgres_url, "BTC-USDT")
        d.wait_until(lambda: newest_decided(postgres_url, "BTC-USDT") >= at_pause + 6 * 60_000, 60, "BTC decisions")
        after = query(
            postgres_url,
            "SELECT trading_state, order_count, risk_reason FROM trade_decisions "
            "WHERE pair = 'BTC-USDT' AND candle_open_time > to_timestamp($1 / 1000.0)",
            at_pause + 60_000,
        )
        assert after
        assert all(row["trading_state"] == "HALTED" and row["order_count"] == 0 for row in after)
        assert {row["risk_reason"] for row in after} <= {None, "trading_halted"}
        # paused, BTC's position stands still: status must show what its fills add up to
        filled = query(
            postgres_url,
            "SELECT coalesce(sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END), 0) "
            "FROM trade_executions WHERE pair = 'BTC-USDT'",
        )[0][0]
        btc = d.ctl("status")["pairs"]["BTC-USDT"]
        assert float(btc["position"]["position"]) == float(filled)
        assert btc["trading_state"] == "HALTED"
        assert btc["risk"]["reason"] == "operator_pause"
        eth = query(
            postgres_url,
            "SELECT DISTINCT trading_state FROM trade_decisions WHERE pair = 'ETH-USDT' "
            "AND candle_open_time > to_timestamp($1 / 1000.0)",
            at_pause + 60_000,
        )
        assert [row[0] for row in eth] == ["ACTIVE"]
        assert d.ctl("resume", pair="BTC-USDT")["pairs"] == {"BTC-USDT": "ACTIVE"}
        at_resume = newest_decided(postgres_url, "BTC-USDT")
        d.wait_until(lambda: newest_decided(postgres_url, "BTC-USDT") >= at_resume + 3 * 60_000, 60, "resumed")
        resumed = query(
            postgres_url,
            "SELECT DISTINCT trading_state FROM trade_decisions WHERE pair = 'BTC-USDT' "
            "AND candle_open_time > to_timestamp($1 / 1000.0)",
            at_resume + 60_000,
        )
        assert [row[0] for row in resumed] == ["ACTIVE"]
        audit = query(postgres_url, "SELECT command, outcome FROM ops_audit_events ORDER BY id")
        assert [tuple(row) for row in audit if row[0] in ("pause", "resume")] == [
            ("pause", "accepted"),
            ("pause", "accepted"),
            ("resume", "accepted"),
        ]
        # the socket refuses what it must, and keeps serving
        path = d.socket_path
        assert raw_request(path, b'{"cmd": "status"}\n')[0]["code"] == "unauthorized"
        assert raw_request(path, b'{"cmd": "status", "token": "wrong"}\n')[0]["code"] == "unauthorized"
        bad = raw_request(path, b'{"cmd": "status", "token": "' + TOKEN.encode() + b'"\n')
        assert bad[0]["code"] == "bad_json"
        unknown = raw_request(path, json.dumps({"cmd": "launch", "token": TOKEN}).encode() + b"\n")
        assert unknown[0]["code"] == "unknown_command"
        oversized = raw_request(path, b"x" * (70 * 1024) + b"\n")
        assert oversized[0]["code"] == "line_too_long"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as first:
            first.connect(str(path))  # one client holds a connection open while a second is served
            assert d.ctl("status")["ok"] is True
        assert not any("e2e-token" in line for line in d.log_path.read_text().splitlines())
        # SIGTERM: exit 0, final checkpoints, notify messages in order
        assert d.terminate() == 0
        messages = d.notifications()
        ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
        stopping = next(i for i, m in enumerate(messages) if "STOPPING=1" in m)
        assert 0 < ready < stopping
        assert any("WATCHDOG=1" in m for m in messages[ready:stopping])
        assert all("READY=1" not in m for m in messages[stopping:])
        assert any(m.startswith("STATUS=") for m in messages[:ready])
        for pair in PAIRS:
            checkpoint = query(
                postgres_url,
                "SELECT sequence FROM actor_checkpoints WHERE actor_key = $1",
                f"execution:{run_id}:{pair}",
            )[0][0]
            last = query(postgres_url, "SELECT max(sequence) FROM trade_decisions WHERE pair = $1", pair)[0][0]
            assert checkpoint == last
        assert d.events("daemon_stopped")[-1]["clean"] is True
        # the run's tape: each pair's candles with its trades, as HTML and PNG
        assert TRADINGD is not None
        out = tmp_path / "run-report"
        drawn = subprocess.run(
            [TRADINGD, "--config", str(d.config), "report", "run", str(run_id), "--out", str(out)],
            env=d.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert drawn.returncode == 0, drawn.stderr[-2000:]
        summary = json.loads(drawn.stdout)
        trades = query(postgres_url, "SELECT pair, count(*) FROM trades GROUP BY pair")
        assert {pair: figures["trades"] for pair, figures in summary["pairs"].items()} == {
            pair: next((row[1] for row in trades if row[0] == pair), 0) for pair in PAIRS
        }
        assert {path.name for path in out.iterdir()} == {
            "index.html",
            "trades.csv",
            *(f"tape-{pair}.png" for pair in PAIRS),
        }
        run_page = (out / "index.html").read_text()
        assert run_page.count("data:image/png;base64,") == len(PAIRS)
        assert all(f'data-tape="tape-{pair}"' in run_page for pair in PAIRS), "an interactive tape per pair"
        listed = (out / "trades.csv").read_text().splitlines()
        assert listed[0].startswith("pair,fold,status,side,quantity,entry_time,exit_time,")
        assert len(listed) - 1 == sum(row[1] for row in trades)
        for pair, figures in summary["pairs"].items():
            if figures["decided_from_ms"] is not None:
                assert figures["buy_and_hold"]["initial_equity"] > 0, pair
            assert sum(reason["count"] for reason in figures["exit_reasons"].values()) == figures["closed"], pair


def test_kill_9_and_restart_decide_every_candle_exactly_once(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    with replay_simulator(files) as urls, daemon(write_config(tmp_path), urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 10 for p in PAIRS), 120, "decisions")
        d.kill_everything()
        killed_at = {pair: newest_decided(postgres_url, pair) for pair in PAIRS}
        # the venue moves on while the daemon is down: five replayed minutes
        down_at = venue_clock_ms(urls)
        wait_for(lambda: venue_clock_ms(urls) >= down_at + 5 * 60_000, 120, "the venue's clock 5 minutes on")
        d.start()
        d.wait_ready()
        d.wait_until(
            lambda: all(newest_decided(postgres_url, p) >= killed_at[p] + 15 * 60_000 for p in PAIRS),
            120,
            "decisions after the restart",
        )
        assert d.terminate() == 0
    assert len(query(postgres_url, "SELECT id FROM agent_runs")) == 1  # the run was resumed
    failures, _ = decision_failures(postgres_url)  # each candle once, none skipped, no client order id twice
    assert not failures, failures
    assert all(newest_decided(postgres_url, pair) > killed_at[pair] + 10 * 60_000 for pair in PAIRS)
    assert query(postgres_url, "SELECT client_order_id FROM trade_executions"), "it traded"


def test_a_killed_actor_is_restarted_and_a_pair_that_keeps_dying_is_faulted(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2200)
    extra = """
[risk]
max_order_notional = 100
max_position_notional = 100000
"""
    config = write_config(tmp_path, extra=extra)
    config.write_text(config.read_text().replace("heartbeat_sec = 5.0", "heartbeat_sec = 5.0\nmax_restarts = 2"))
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(postgres_url, p) >= 5 for p in PAIRS), 120, "decisions")
        # the risk limit: every order that would open a position is denied, with the reason recorded
        d.wait_until(
            lambda: (
                query(postgres_url, "SELECT count(*) FROM trade_decisions WHERE risk_reason = 'max_order_notional'")[0][
                    0
                ]
                > 0
            ),
            60,
            "a max_order_notional denial",
        )
        assert query(postgres_url, "SELECT count(*) FROM trade_executions")[0][0] == 0
        # one actor killed from outside: the pair is restarted and decides on
        old = d.ctl("status")["pairs"]["BTC-USDT"]["actors"]["execution"]["pid"]
        os.kill(old, signal.SIGKILL)
        d.wait_until(
            lambda: (
                d.ctl("status")["pairs"]["BTC-USDT"]["actors"]["execution"]["pid"] not in (None, old)
                and d.ctl("status")["pairs"]["BTC-USDT"]["state"] == "running"
            ),
            90,
            "the restarted BTC actors",
        )
        before = newest_decided(postgres_url, "BTC-USDT")
        d.wait_until(lambda: newest_decided(postgres_url, "BTC-USDT") > before + 60_000, 60, "BTC deciding again")

        # a pair whose feed keeps dying: FAULTED, the other pair trades on
        def btc() -> dict[str, Any]:
            view: dict[str, Any] = d.ctl("status")["pairs"]["BTC-USDT"]
            return view

        killed: int | None = None
        for _ in range(10):
            # A pair part-way through a restart already shows some new pids: kill only a running pair's
            # feed, and one that was not killed before.
            d.wait_until(
                lambda killed=killed: (
                    (view := btc())["state"] == "FAULTED"
                    or (view["state"] == "running" and view["actors"]["feed"]["pid"] not in (None, killed))
                ),
                90,
                "the pair running again with a new feed, or FAULTED",
            )
            view = btc()
            if view["state"] == "FAULTED":
                break
            killed = view["actors"]["feed"]["pid"]
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
        status = d.ctl("status")
        assert status["pairs"]["BTC-USDT"]["state"] == "FAULTED"
        assert status["pairs"]["ETH-USDT"]["state"] == "running"
        eth = newest_decided(postgres_url, "ETH-USDT")
        d.wait_until(lambda: newest_decided(postgres_url, "ETH-USDT") >= eth + 3 * 60_000, 60, "ETH trading on")
        alerts = d.ctl("alerts")["alerts"]
        assert any(a["kind"] == "pair_faulted" and a["pair"] == "BTC-USDT" for a in alerts)
        # runs: stop this one, start another for one pair with another policy
        first_run = d.ctl("status")["run"]["id"]
        assert d.ctl("runs", action="start")["code"] == "run_active"
        assert d.ctl("runs", action="stop", reason="e2e")["stopped"] == first_run
        assert d.ctl("status")["pairs"] == {}
        started = d.ctl("runs", action="start", policy="ema_cross", pairs=["ETH-USDT"])["started"]
        assert (started["policy"], started["pairs"]) == ("baseline:ema_cross", ["ETH-USDT"])
        d.wait_until(
            lambda: (
                query(postgres_url, "SELECT count(*) FROM trade_decisions WHERE run_id = $1::uuid", started["id"])[0][0]
                >= 3
            ),
            120,
            "decisions of the new run",
        )
        listed = d.ctl("runs")["runs"]
        assert [(r["id"], r["status"]) for r in listed] == [(started["id"], "running"), (first_run, "stopped")]
        assert d.terminate() == 0


def test_a_pair_outside_the_allowed_instruments_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.daemon_harness import TRADINGD

    assert TRADINGD is not None
    config = write_config(tmp_path, extra='\n[risk]\nallowed_instruments = ["BTC-USDT"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_"))}
    env["TRADINGD_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [TRADINGD, "--config", str(config), "run"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 78
    assert "ETH-USDT" in done.stderr
    assert "allowed_instruments" in done.stderr
