"""An operator closes and cancels a trade through the real `tradingd ctl` client, against the real daemon
trading a replay: `ctl status` lists the open trade with its id, `ctl close-trade ID` sends a
reduce-only market order, `ctl cancel-trade ID` cancels it, a second close fills at the next candle's
open, the trade is recorded closed by the operator and the pair is flat. Unknown and malformed ids are
refused with exit 1.

The replay simulator is stopped (SIGSTOP) while the close order is working, so that no candle can fill
it before `cancel-trade` arrives; it is continued (SIGCONT) for the second close to fill.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.e2e.cli_helpers import tradingd
from tests.e2e.daemon_harness import (
    Daemon,
    cut_files,
    daemon,
    decisions,
    newest_decided,
    query,
    resumed_or_automatically_blocked,
    simulator_process,
    write_config,
)

pytestmark = pytest.mark.timeout(900)


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """The real client process; `--config` after the subcommand, as an operator may type it."""
    return tradingd(d.env, "ctl", *args, "--config", str(d.config), timeout=120)


def status(d: Daemon) -> dict[str, Any]:
    done = ctl(d, "status", "--json")
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def open_filled_trade(url: str) -> asyncpg.Record | None:
    try:
        rows = query(
            url,
            "SELECT id, pair, side, quantity FROM trades WHERE status = 'open' AND entry_price IS NOT NULL "
            "ORDER BY opened_at LIMIT 1",
        )
    except asyncpg.UndefinedTableError:
        return None
    return rows[0] if rows else None


def newest_stored(url: str, pair: str) -> int:
    rows = query(
        url,
        "SELECT (extract(epoch FROM max(open_time)) * 1000)::bigint FROM candles WHERE pair = $1 AND interval = '1m'",
        pair,
    )
    return int(rows[0][0] or 0)


def trade_status(url: str, trade_id: uuid.UUID) -> str:
    return str(query(url, "SELECT status FROM trades WHERE id = $1", trade_id)[0][0])


def catch_an_opening_order(d: Daemon, url: str, simulator: subprocess.Popen[str]) -> asyncpg.Record:
    """A trade whose opening order works (decided, not filled: no entry price; from flat, or the opening leg
    of a flip), the simulator stopped so it stays so: stopped, every stored candle decided, looked at; let
    go for a candle when there is none."""
    pairs = [str(row[0]) for row in query(url, "SELECT DISTINCT pair FROM trades")]
    for _ in range(120):
        simulator.send_signal(signal.SIGSTOP)
        for pair in pairs:
            d.wait_until(
                lambda pair=pair: newest_decided(url, pair) >= newest_stored(url, pair),  # type: ignore[misc]
                60,
                "every stored candle decided",
            )
        rows = query(url, "SELECT id, pair FROM trades WHERE status = 'open' AND entry_price IS NULL")
        if rows:
            return rows[0]
        stored = {pair: newest_stored(url, pair) for pair in pairs}
        simulator.send_signal(signal.SIGCONT)
        d.wait_until(
            lambda at=stored: any(newest_stored(url, p) > at[p] for p in pairs),  # type: ignore[misc]
            60,
            "a next candle",
        )
    raise AssertionError("no opening order was caught working")


def hold_an_open_trade(d: Daemon, url: str) -> asyncpg.Record:
    """An open trade with a filled position whose pair is paused (HALTED: the policy sends no order that
    could close it). The policy may close the trade in the moment before the pause lands; then the pair
    is resumed and the next open trade taken."""
    for _ in range(5):
        seen: list[asyncpg.Record] = []  # the trade the wait saw (it may close before a second look)

        def found(seen: list[asyncpg.Record] = seen) -> bool:
            trade = open_filled_trade(url)
            if trade is not None:
                seen.append(trade)
            return trade is not None

        d.wait_until(found, 300, "an open trade")
        trade = seen[-1]
        paused = ctl(d, "pause", trade["pair"])
        assert paused.returncode == 0, paused.stderr
        pair, at = str(trade["pair"]), newest_decided(url, str(trade["pair"]))
        # An order placed before the pause fills at the next candle's open: look after that one.
        d.wait_until(
            lambda pair=pair, at=at: newest_decided(url, pair) >= at + 2 * 60_000,  # type: ignore[misc]
            120,
            "decisions after the pause",
        )
        if trade_status(url, trade["id"]) == "open":
            return trade
        resumed = ctl(d, "resume", trade["pair"])
        assert resumed_or_automatically_blocked(resumed), resumed.stdout + resumed.stderr
    raise AssertionError("no trade stayed open through a pause")


def test_an_operator_closes_and_cancels_a_trade_through_ctl(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 3000)
    with (
        simulator_process(files) as (urls, simulator),
        daemon(write_config(tmp_path), urls, postgres_url, tmp_path) as d,
    ):
        d.start()
        d.wait_ready()
        trade = hold_an_open_trade(d, postgres_url)
        trade_id, pair = str(trade["id"]), str(trade["pair"])
        base = pair.split("-")[0]

        # `ctl status` lists the trade with the id close-trade needs, and the account's money
        readable = ctl(d, "status")
        assert readable.returncode == 0, readable.stderr
        line = next(row for row in readable.stdout.splitlines() if row.startswith(trade_id))
        assert f" {pair} " in line
        assert f" {trade['side']} " in line
        assert f" {base} " in line
        assert "USDT" in line
        assert "UTC" in line
        assert " equity " in readable.stdout
        assert " balance " in readable.stdout
        answer = status(d)
        assert answer["pairs"][pair]["position"]["open_trade"] == trade_id
        assert {"equity", "balance", "initial_equity"} <= answer["account"].keys()
        listed = next(t for t in answer["open_trades"] if t["id"] == trade_id)
        assert float(listed["quantity"]) == float(trade["quantity"])

        # the clock stopped, a close order stays working until it is cancelled
        simulator.send_signal(signal.SIGSTOP)
        d.wait_until(
            lambda: newest_decided(postgres_url, pair) >= newest_stored(postgres_url, pair),
            60,
            "every stored candle decided",
        )
        closing = ctl(d, "close-trade", trade_id)
        assert closing.returncode == 0, closing.stderr
        assert f"trade {trade_id}: closing with reduce-only market order td-" in closing.stdout
        first_order = closing.stdout.split("market order ")[1].split()[0]
        assert trade_status(postgres_url, trade["id"]) == "closing"
        working = status(d)["pairs"][pair]["position"]
        assert working["working_orders"] == 1
        assert float(working["working"]) == -float(working["position"])  # reduce-only, all of it

        cancelled = ctl(d, "cancel-trade", trade_id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"trade {trade_id}: cancelled 1 working order(s): {first_order}"
        assert trade_status(postgres_url, trade["id"]) == "open"
        order = query(
            postgres_url,
            "SELECT state, reduce_only FROM trade_executions WHERE client_order_id = $1",
            first_order,
        )[0]
        assert (order["state"], order["reduce_only"]) == ("cancelled", True)
        assert status(d)["pairs"][pair]["position"]["working_orders"] == 0

        # a second close fills at the next candle once the clock runs again
        closing = ctl(d, "close-trade", trade_id)
        assert closing.returncode == 0, closing.stderr
        second_order = closing.stdout.split("market order ")[1].split()[0]
        assert second_order != first_order
        simulator.send_signal(signal.SIGCONT)
        d.wait_until(lambda: trade_status(postgres_url, trade["id"]) == "closed", 120, "the trade closed")
        closed = query(
            postgres_url,
            "SELECT close_reason, exit_price, realized_pnl, closed_at FROM trades WHERE id = $1",
            trade["id"],
        )[0]
        assert closed["close_reason"] == "operator"
        assert closed["exit_price"] is not None
        assert closed["realized_pnl"] is not None
        filled = query(
            postgres_url,
            "SELECT state, reduce_only, filled_quantity FROM trade_executions WHERE client_order_id = $1",
            second_order,
        )[0]
        assert (filled["state"], filled["reduce_only"]) == ("filled", True)
        assert float(filled["filled_quantity"]) == float(trade["quantity"])
        net = query(
            postgres_url,
            "SELECT coalesce(sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END), 0) "
            "FROM trade_executions WHERE pair = $1",
            pair,
        )[0][0]
        assert float(net) == 0.0  # flat in the journal
        after = status(d)
        assert float(after["pairs"][pair]["position"]["position"]) == 0.0  # flat in the book
        assert after["pairs"][pair]["position"]["open_trade"] is None
        assert trade_id not in {t["id"] for t in after["open_trades"]}
        flat = next(row for row in ctl(d, "status").stdout.splitlines() if row.startswith(pair))
        assert re.search(rf"\s0(\.0+)? {base}\s", flat), flat

        # asked again: the answer says so, nothing is sent
        again = ctl(d, "close-trade", trade_id)
        assert (again.returncode, again.stdout.strip()) == (0, f"trade {trade_id} is already closed: nothing to close")
        again = ctl(d, "cancel-trade", trade_id)
        assert (again.returncode, again.stdout.strip()) == (0, f"trade {trade_id} is already closed: nothing to cancel")

        # unknown and malformed ids: a clear refusal, exit 1
        unknown = str(uuid.uuid4())
        refused = ctl(d, "close-trade", unknown)
        assert refused.returncode == 1
        assert f"close-trade refused (not_found): no trade {unknown}" in refused.stderr
        refused = ctl(d, "cancel-trade", "not-a-trade")
        assert refused.returncode == 1
        assert "cancel-trade refused (bad_args): trade 'not-a-trade' is not a trade id" in refused.stderr
        assert "Traceback" not in refused.stderr

        # every command audited with the trade as its target
        audit = query(
            postgres_url,
            "SELECT command, outcome, target FROM ops_audit_events "
            "WHERE command IN ('close-trade', 'cancel-trade') ORDER BY id",
        )
        assert [tuple(row) for row in audit] == [
            ("close-trade", "accepted", trade_id),
            ("cancel-trade", "accepted", trade_id),
            ("close-trade", "accepted", trade_id),
            ("close-trade", "accepted", trade_id),
            ("cancel-trade", "accepted", trade_id),
            ("close-trade", "rejected", unknown),
            ("cancel-trade", "rejected", "not-a-trade"),
        ]

        # a trade whose opening order has not filled: close-trade is refused as such (cancel-trade is the
        # way), and the execution actor answers on (a refusal it raised once ended its worker)
        before = {p: view["restarts"] for p, view in status(d)["pairs"].items()}
        opening = catch_an_opening_order(d, postgres_url, simulator)
        refused = ctl(d, "close-trade", str(opening["id"]))
        assert refused.returncode == 1
        assert f"close-trade refused (not_closable): trade {opening['id']} has no position yet" in refused.stderr
        assert "ctl cancel-trade" in refused.stderr
        cancelled = ctl(d, "cancel-trade", str(opening["id"]))
        assert cancelled.returncode == 0, cancelled.stderr
        assert trade_status(postgres_url, opening["id"]) == "cancelled"
        simulator.send_signal(signal.SIGCONT)
        after = status(d)["pairs"]
        assert {p: view["restarts"] for p, view in after.items()} == before, "no actor restarted"
        assert all(view["state"] == "running" for view in after.values())
        assert decisions(postgres_url, pair) > 0
        assert d.terminate() == 0
