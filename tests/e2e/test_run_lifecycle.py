"""The run lifecycle with the real `tradingd` processes:

- a start that fails its checks leaves no run behind; an active run that no longer matches the
  configuration is refused, saying how they differ and what to do (`tradingd runs stop`, offline, or
  `tradingd run --resume-as-is`);
- a venue that cannot be reached fails the start at once (69), naming the host and the offline route;
- `runs stop` is refused while the run holds a position; `--keep` hands it to the next run, which
  adopts it; `--flatten` closes it first; offline, `tradingd runs stop` follows the same rule (and
  refuses `--flatten`, which needs the daemon);
- a replay stopped and started again continues after its last decision: no candle skipped, none twice,
  and no wait for the replay clock to catch up;
- a paper run pays funding: the feed stores the venue's rate of the funding time its candles pass, and
  each position held through it pays quantity x close x rate, on its trade and in `ctl status`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from daemon.control_client import call
from tests.e2e.cli_helpers import tradingd
from tests.e2e.daemon_harness import PAIRS, TOKEN, Daemon, cut_files, daemon, query, replay_simulator, write_config

pytestmark = pytest.mark.timeout(900)


def cli_env(tmp_path: Path, urls: dict[str, str], database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADINGD_", "BINGX_", "TIMESCALE_", "NOTIFY"))}
    env.update(
        {
            "TRADINGD_DATA_DIR": str(tmp_path / "data"),
            "TRADINGD_CONTROL_SOCKET": f"/tmp/td-{os.getpid()}-{time.monotonic_ns()}.sock",
            "BINGX_REST_URL": urls["rest_url"],
            "BINGX_WS_URL": urls["ws_url"],
            "TIMESCALE_URL": database_url,
        }
    )
    return env


def insert_run(url: str, pairs: list[str], policy: str) -> str:
    rows = query(
        url,
        "INSERT INTO agent_runs (baseline_policy, status, pairs, interval, feature_set, decision_threshold, settings) "
        "VALUES ($1, 'running', $2, '1m', 'v2', 1, '{\"origin\": \"config\"}'::jsonb) RETURNING id::text",
        policy,
        pairs,
    )
    return str(rows[0][0])


def test_a_failed_start_leaves_no_run_and_a_run_that_differs_is_refused(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 1400)
    config = str(write_config(tmp_path))
    with replay_simulator(files) as urls:
        env = cli_env(tmp_path, urls, postgres_url)
        failed = tradingd({**env, "TRADINGD_PAIRS": "FOO-USDT"}, "--config", config, "run", timeout=120)
        assert failed.returncode == 78, failed.stderr
        assert "FOO-USDT is not a contract the venue lists" in failed.stderr
        assert query(postgres_url, "SELECT count(*) FROM agent_runs")[0][0] == 0  # nothing left to resume
        # an active run the configuration no longer describes (as an older build left one)
        run_id = insert_run(postgres_url, ["FOO-USDT"], "ema_cross")
        refused = tradingd(env, "--config", config, "run", timeout=120)
        assert refused.returncode == 78, refused.stderr
        assert f"the active run {run_id}" in refused.stderr
        assert "pairs: the run trades FOO-USDT; market_data.pairs is BTC-USDT, ETH-USDT" in refused.stderr
        assert "policy: the run trades baseline:ema_cross; run.policy is baseline:momentum" in refused.stderr
        assert f"runs stop {run_id}" in refused.stderr
        assert "run --resume-as-is" in refused.stderr
        # resumed as it is, it fails on its own terms, still before anything runs
        as_is = tradingd(env, "--config", config, "run", "--resume-as-is", timeout=120)
        assert as_is.returncode == 78, as_is.stderr
        assert "FOO-USDT is not a contract the venue lists" in as_is.stderr
        listed = tradingd(env, "--config", config, "runs", "list", "--json", timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)["runs"]] == [(run_id, "running")]
        stopped = tradingd(env, "--config", config, "runs", "stop", run_id, "--reason", "wrong pair", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["stopped"] == run_id
        again = tradingd(env, "--config", config, "runs", "stop", run_id, timeout=60)
        assert again.returncode == 0
        assert json.loads(again.stdout)["stopped"] is None  # idempotent
        audit = query(postgres_url, "SELECT actor, target, params FROM ops_audit_events WHERE command = 'run_stopped'")
        assert [(row["actor"], row["target"], json.loads(row["params"])["reason"]) for row in audit] == [
            ("cli", run_id, "wrong pair")
        ]
        assert tuple(query(postgres_url, "SELECT status, stop_reason FROM agent_runs")[0]) == ("stopped", "wrong pair")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("rest_url", ["closed-port", "http://venue.tradingd-test.invalid"])
def test_an_unreachable_venue_fails_fast_naming_the_host_and_the_offline_route(
    tmp_path: Path, postgres_url: str, rest_url: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}" if rest_url == "closed-port" else rest_url
    env = cli_env(tmp_path, {"rest_url": url, "ws_url": "ws://127.0.0.1:9/ws"}, postgres_url)
    started = time.monotonic()
    done = tradingd(env, "run", timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 69, done.stderr
    assert f"cannot reach the venue at {url} (" in done.stderr
    assert "to trade offline, run `tradingd --config config/replay.toml run`" in done.stderr
    # Bounded by the 5 s reachability check (tests/unit/daemon/test_run_setup.py times it); this bound only
    # says no long retry series and no Ray start-up came first: the CLI's own start on a loaded machine is in it.
    assert elapsed < 90, f"{elapsed:.1f} s to fail"
    assert "ray" not in done.stdout.lower()
    assert query(postgres_url, "SELECT count(*) FROM agent_runs")[0][0] == 0


# ---------------------------------------------------------------------------------------------- stopping


def start_a_run(d: Daemon) -> dict[str, Any]:
    """`ctl runs start`, waiting as long as five pairs of actors may take to start on a busy machine."""
    return call(d.socket_path, TOKEN, "runs", timeout_sec=300.0, action="start")


def positions(d: Daemon) -> dict[str, Decimal]:
    pairs = d.ctl("status")["pairs"]
    return {pair: Decimal(view.get("position", {}).get("position", "0")) for pair, view in pairs.items()}


def wait_for_a_position(d: Daemon) -> None:
    d.wait_until(lambda: any(positions(d).values()), 240, "an open position")


def run_fills(url: str, run_id: str) -> dict[str, Decimal]:
    rows = query(
        url,
        "SELECT pair, sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END) FROM trade_executions "
        "WHERE run_id = $1::uuid GROUP BY pair",
        run_id,
    )
    return {row[0]: Decimal(row[1]) for row in rows}


def test_runs_stop_refuses_open_positions_keeps_them_for_the_next_run_or_flattens_them(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 4000)
    with replay_simulator(files) as urls, daemon(write_config(tmp_path), urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        first = d.ctl("status")["run"]["id"]
        wait_for_a_position(d)
        # refused while it holds a position, naming it; the run trades on
        refused = d.ctl("runs", action="stop")
        assert (refused["ok"], refused["code"]) == (False, "open_positions")
        held = {pair for pair, quantity in positions(d).items() if quantity}
        assert any(pair in str(refused["error"]) for pair in held)
        assert "--flatten" in str(refused["error"])
        assert "--keep" in str(refused["error"])
        assert d.ctl("status")["run"]["id"] == first
        # --keep: stopped, and the next run on the pair adopts what it held
        kept = d.ctl("runs", action="stop", keep=True, reason="e2e keep")
        assert kept["ok"] is True, kept
        assert kept["stopped"] == first
        kept_positions = {
            pair: Decimal(view["position"]) for pair, view in kept["positions"].items() if view["outcome"] == "kept"
        }
        assert kept_positions
        assert all(kept_positions.values())
        started = start_a_run(d)
        assert started["ok"] is True, started
        second = started["started"]["id"]
        # it adopted them when its execution actors started (it trades them on from there: no exact position now)
        adopted = query(
            postgres_url, "SELECT target, params FROM ops_audit_events WHERE command = 'position_adopted' ORDER BY id"
        )
        assert {row["target"]: Decimal(json.loads(row["params"])["position"]) for row in adopted} == kept_positions
        assert all(json.loads(row["params"])["run_id"] == second for row in adopted)
        assert {e["pair"] for e in d.events("position_adopted")} == set(kept_positions)
        # the kept trades and their orders moved to the run that manages them now
        kept_trades = [t for pair in kept_positions for t in kept["positions"][pair]["open_trades"]]
        moved = query(postgres_url, "SELECT DISTINCT run_id::text FROM trades WHERE id = ANY($1::uuid[])", kept_trades)
        assert [row[0] for row in moved] == [second]
        assert all(not quantity for quantity in run_fills(postgres_url, first).values())
        # --flatten: the positions are closed reduce-only first, and the run stops once flat
        wait_for_a_position(d)
        flattened = d.ctl("runs", action="stop", flatten=True, reason="e2e flatten", wait_sec=120)
        assert flattened["ok"] is True, flattened
        assert flattened["stopped"] == second
        outcomes = {view["outcome"] for view in flattened["positions"].values()}
        assert "flattened" in outcomes
        assert "kept" not in outcomes
        assert all(quantity == 0 for quantity in run_fills(postgres_url, second).values())
        working = query(
            postgres_url,
            "SELECT count(*) FROM trade_executions WHERE run_id = $1::uuid AND state NOT IN "
            "('filled', 'cancelled', 'rejected', 'expired')",
            second,
        )
        assert working[0][0] == 0
        # Closed by the flatten's reduce-only order, or by the decision the risk guard had in hand when the
        # pause came (it reaches execution first, and the flatten then has nothing left to close).
        closes = query(
            postgres_url,
            "SELECT close_reason FROM trades WHERE run_id = $1::uuid AND status = 'closed'",
            second,
        )
        assert closes
        operator_orders = query(
            postgres_url,
            "SELECT state FROM trade_executions WHERE run_id = $1::uuid AND decision_trace_id LIKE 'operator.%'",
            second,
        )
        assert all(row[0] == "filled" for row in operator_orders)  # none cancelled or refused on the way
        assert query(postgres_url, "SELECT count(*) FROM trades WHERE status IN ('open', 'closing')")[0][0] == 0
        events = query(
            postgres_url, "SELECT target, params FROM ops_audit_events WHERE command = 'run_stopped' ORDER BY id"
        )
        assert [(row["target"], json.loads(row["params"])["reason"]) for row in events] == [
            (first, "e2e keep"),
            (second, "e2e flatten"),
        ]
        assert {e["run_id"] for e in d.events("run_stopped")} == {first, second}
        alerts = d.ctl("alerts")["alerts"]
        assert sum(1 for alert in alerts if alert["kind"] == "run_stopped") == 2

        # offline: the daemon stopped with a run holding a position
        third = start_a_run(d)["started"]["id"]
        wait_for_a_position(d)
        assert d.terminate() == 0
        env, config = d.env, str(d.config)
        held_offline = {pair for pair, quantity in run_fills(postgres_url, third).items() if quantity}
        assert held_offline
        offline = tradingd(env, "--config", config, "runs", "stop", third, timeout=60)
        assert offline.returncode == 1, offline.stderr
        assert any(pair in offline.stderr for pair in held_offline)
        assert "--keep" in offline.stderr
        no_venue = tradingd(env, "--config", config, "runs", "stop", third, "--flatten", timeout=60)
        assert no_venue.returncode == 69
        assert "the daemon must be running" in no_venue.stderr
        listed = json.loads(tradingd(env, "--config", config, "runs", "list", "--json", timeout=60).stdout)
        holdings = next(r for r in listed["runs"] if r["id"] == third)["holdings"]
        assert {h["pair"] for h in holdings if Decimal(h["position"])} == held_offline
        kept_offline = tradingd(env, "--config", config, "runs", "stop", third, "--keep", timeout=60)
        assert kept_offline.returncode == 0, kept_offline.stderr
        handovers = json.loads(tradingd(env, "--config", config, "runs", "list", "--json", timeout=60).stdout)
        assert {h["pair"] for h in handovers["handovers"]} == held_offline
        # the next start (a new run from the configuration) adopts them
        d.messages.clear()  # wait for this process's READY=1
        d.start()
        d.wait_ready()
        fourth = d.ctl("status")["run"]["id"]
        assert fourth not in (first, second, third)
        assert {pair for pair, quantity in run_fills(postgres_url, fourth).items() if quantity} >= held_offline
        busy = tradingd(env, "--config", config, "runs", "stop", fourth, timeout=60)
        assert busy.returncode == 1
        assert "the daemon is running" in busy.stderr
        assert d.terminate() == 0


# ---------------------------------------------------------------------------------------------- replay


def replay_config(directory: Path, files: dict[str, Path], speed: int, start_bars: int = 1200) -> Path:
    path = directory / "replay.toml"
    candles = [f"{pair}:1m:{file}" for pair, file in files.items()]
    path.write_text(
        f"""
env = "development"
[market_data]
source = "replay"
pairs = {json.dumps(list(PAIRS))}
intervals = ["1m"]
[replay]
candles = {json.dumps(candles)}
speed = {speed}
start_bars = {start_bars}
[run]
policy = "momentum"
[account]
breaker_max_losses = 1000
[daemon]
health_interval_sec = 1.0
heartbeat_sec = 5.0
[logging]
format = "json"
"""
    )
    return path


@contextlib.contextmanager
def replay_daemon(config: Path, postgres_url: str, tmp_path: Path) -> Iterator[Daemon]:
    """The daemon on a replay config, started and ready: its venue is the replay's own, not a URL."""
    urls = {"rest_url": "http://127.0.0.1:9", "ws_url": "ws://127.0.0.1:9"}  # replaced by the replay venue
    with daemon(config, urls, postgres_url, tmp_path) as d:
        for key in ("BINGX_REST_URL", "BINGX_WS_URL"):
            d.env.pop(key)
        d.start()
        d.wait_ready()
        yield d


def decided(url: str) -> dict[str, list[int]]:
    rows = query(
        url,
        "SELECT pair, (extract(epoch FROM candle_open_time) * 1000)::bigint FROM trade_decisions "
        "ORDER BY pair, candle_open_time",
    )
    found: dict[str, list[int]] = {pair: [] for pair in PAIRS}
    for row in rows:
        found[row[0]].append(int(row[1]))
    return found


def test_a_restarted_replay_continues_after_its_last_decision(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 3000)
    speed = 120
    config = replay_config(tmp_path, files, speed)
    with replay_daemon(config, postgres_url, tmp_path) as d:
        # far enough that a replay restarting at start_bars would replay what the run decided already
        d.wait_until(lambda: all(len(times) >= 20 for times in decided(postgres_url).values()), 300, "decisions")
        assert d.terminate() == 0
        before = decided(postgres_url)
        last = min(times[-1] for times in before.values())
        d.messages.clear()  # wait for this process's READY=1
        d.start()
        d.wait_ready()
        d.wait_until(
            lambda: all(times[-1] >= last + 5 * 60_000 for times in decided(postgres_url).values()),
            300,
            "decisions after the restart",
        )
        assert d.terminate() == 0
    starts: list[dict[str, Any]] = d.events("replay_venue_started")
    assert len(starts) == 2
    assert starts[1]["start_ms"] == last + 60_000  # the clock resumed just after the last decided candle
    assert starts[1]["resumed_after_ms"] == last
    assert len(query(postgres_url, "SELECT id FROM agent_runs")) == 1
    for pair, times in decided(postgres_url).items():
        assert times == list(range(times[0], times[-1] + 60_000, 60_000)), f"{pair}: a candle skipped or repeated"
        assert len(times) > len(before[pair])


FIRST_FUNDING_BARS = 1467
"""The files start 2025-05-04 15:33 UTC: 2025-05-05 16:00 UTC is 1,467 candles in."""
FIRST_FUNDING_MS = 1_746_460_800_000


def test_a_paper_replay_pays_funding_at_the_funding_time(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    # The replay clock runs while the daemon starts (2 candles a second): it starts 90 candles before the
    # funding time, and the test follows the first funding time at least 5 candles after the first
    # decision (on a machine slow to start, the next one, 8 hours of candles later).
    files = cut_files(shared_candles, tmp_path, FIRST_FUNDING_BARS + 480 + 60)
    config = replay_config(tmp_path, files, 120, start_bars=FIRST_FUNDING_BARS - 90)
    with replay_daemon(config, postgres_url, tmp_path) as d:
        d.wait_until(lambda: all(decided(postgres_url).values()), 300, "a first decision of each pair")
        first = max(times[0] for times in decided(postgres_url).values())
        funding_ms = next(t for t in (FIRST_FUNDING_MS, FIRST_FUNDING_MS + 28_800_000) if t >= first + 300_000)
        d.wait_until(
            lambda: all(times[-1] >= funding_ms + 60_000 for times in decided(postgres_url).values()),
            600,
            "decisions past the funding time",
        )
        status = d.ctl("status")
        assert d.terminate() == 0
    rates = query(postgres_url, "SELECT pair, rate, source FROM funding_rates WHERE funding_time = to_timestamp($1)",
                  funding_ms / 1000)  # fmt: skip
    assert sorted((r["pair"], r["rate"], r["source"]) for r in rates) == [
        (pair, Decimal("0.0001"), "venue") for pair in sorted(PAIRS)
    ]  # the simulator's rate, as its funding history gives it
    payments = query(postgres_url, "SELECT * FROM funding_payments ORDER BY pair")
    assert payments, "no pair held a position through the funding time"
    assert funding_ms in {int(row["funding_time"].timestamp() * 1000) for row in payments}
    by_trade: dict[Any, Decimal] = {}
    for row in payments:
        pair, time_ms = row["pair"], int(row["funding_time"].timestamp() * 1000)
        close = Decimal(repr(query(
            postgres_url,
            "SELECT close FROM candles WHERE pair = $1 AND interval = '1m' AND open_time = to_timestamp($2)",
            pair,
            (time_ms - 60_000) / 1000,
        )[0][0]))  # fmt: skip
        assert row["mark"] == close  # the close of the candle ending at the funding time
        # the position held through that candle: every fill of an order decided before it
        held = query(
            postgres_url,
            "SELECT coalesce(sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END), 0) "
            "FROM trade_executions e JOIN trade_decisions d ON d.trace_id = e.decision_trace_id "
            "WHERE e.pair = $1 AND d.candle_open_time < to_timestamp($2)",
            pair,
            (time_ms - 60_000) / 1000,
        )[0][0]
        assert row["quantity"] == held
        assert row["payment"] == (row["quantity"] * close * Decimal("0.0001")).quantize(Decimal("0.00000001"))
        by_trade[row["trade_id"]] = by_trade.get(row["trade_id"], Decimal(0)) + row["payment"]
    for trade_id, paid in by_trade.items():
        assert query(postgres_url, "SELECT funding FROM trades WHERE id = $1", trade_id)[0][0] == paid
    for pair in PAIRS:
        paid = sum((row["payment"] for row in payments if row["pair"] == pair), Decimal(0))
        assert Decimal(status["pairs"][pair]["position"]["funding"]) == paid
    # `report run` lists each trade's funding, and its net PnL after it.
    run_id = query(postgres_url, "SELECT id FROM agent_runs")[0][0]
    drawn = tradingd(d.env, "--config", str(config), "report", "run", str(run_id), "--out", str(tmp_path / "report"))
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    with (tmp_path / "report" / "trades.csv").open(newline="") as handle:
        listed = list(csv.DictReader(handle))
    for pair in PAIRS:
        lines = [line for line in listed if line["pair"] == pair]
        stored = query(postgres_url, "SELECT funding, realized_pnl, status FROM trades WHERE pair = $1", pair)
        assert len(lines) == len(stored)
        assert sum(Decimal(line["funding"]) for line in lines) == sum(row["funding"] for row in stored)
        closed = [line for line in lines if line["status"] == "closed"]
        assert sum(Decimal(line["net_pnl"]) for line in closed) == sum(
            row["realized_pnl"] for row in stored if row["status"] == "closed"
        )
        for line in closed:
            assert Decimal(line["pnl"]) - Decimal(line["fees"]) - Decimal(line["funding"]) == Decimal(line["net_pnl"])
    assert any(Decimal(line["funding"]) != 0 for line in listed)
