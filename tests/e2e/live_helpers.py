"""What the live e2e tests share: a promoted agent, the live configuration, the switch of a paper run to
live through `ctl runs live`, and the database and the simulator's account read side by side."""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from pathlib import Path

from exchange.bingx.rest import BingXRest, Credentials
from exchange.bingx.trading import BingXTrading
from tests.e2e.cli_helpers import TINY_AGENT, tradingd
from tests.e2e.daemon_harness import PAIRS, Daemon, query

KEY, SECRET = "live-e2e-key-0001", "live-e2e-secret-0001-abcdefghijkl"
HISTORY_BARS = 3000


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return tradingd(d.env, "ctl", *args, "--config", str(d.config), timeout=180)


def promoted_agent(d: Daemon, tmp_path: Path, first_ms: int) -> str:
    """`dataset build`, `agent create`, `train`, `evaluate` (walk-forward) and `promote` of an ETH agent."""
    built = tradingd(
        d.env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--feature-set", "v1",
        "--from", str(first_ms + 100 * 60_000), "--to", str(first_ms + 2_900 * 60_000),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    dataset = str(json.loads(built.stdout)["id"])
    (tmp_path / "agent.toml").write_text(TINY_AGENT.format(name="live", margin=-1_000_000.0))
    assert tradingd(d.env, "agent", "create", str(tmp_path / "agent.toml")).returncode == 0
    trained = tradingd(d.env, "train", "--agent", "live", "--dataset", dataset)
    assert trained.returncode == 0, trained.stderr[-3000:]
    version = str(json.loads(trained.stdout)["id"])
    folds = ["--folds", "3", "--purge-bars", "6", "--embargo-bars", "4", "--min-train-bars", "1000"]
    evaluated = tradingd(d.env, "evaluate", "--agent-version", version, "--dataset", dataset, *folds)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    promoted = tradingd(d.env, "promote", version)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    return version


def live_config(tmp_path: Path, version: str) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(
        f"""
[exchange]
mode = "live"

[market_data]
source = "bingx"
pairs = {json.dumps(list(PAIRS))}
intervals = ["1m"]

[run]
policy = "agent:{version}"

[trading]
live_min_paper_decisions = 4
live_min_paper_days = 0

[account]
breaker_max_losses = 100000
daily_loss_limit = 100000

[daemon]
health_interval_sec = 1.0
restart_backoff_sec = 0.5

[logging]
format = "json"
"""
    )
    return path


def live_fills(url: str, pair: str) -> int:
    rows = query(url, "SELECT count(*) FROM trade_executions WHERE mode = 'live' AND pair = $1 AND filled_quantity > 0",
                 pair)  # fmt: skip
    return int(rows[0][0])


def open_positions(url: str, run_id: str) -> dict[str, Decimal]:
    rows = query(
        url,
        "SELECT pair, sum(CASE side WHEN 'BUY' THEN filled_quantity ELSE -filled_quantity END) FROM trade_executions "
        "WHERE run_id = $1::uuid GROUP BY pair",
        run_id,
    )
    return {row[0]: row[1] for row in rows if row[1] != 0}


def venue_account(urls: dict[str, str], key: str = KEY, secret: str = SECRET) -> dict[str, dict[str, object]]:
    """Per pair, the simulator's account as the venue reports it: position, orders with fills and fees, and
    the protective stops open."""

    async def read() -> dict[str, dict[str, object]]:
        async with BingXRest(urls["rest_url"], Credentials(key, secret)) as rest:
            venue = BingXTrading(rest)
            found: dict[str, dict[str, object]] = {}
            for pair in PAIRS:
                orders = await venue.all_orders(pair, limit=1000)
                found[pair] = {
                    "position": sum((p.quantity for p in await venue.positions(pair)), Decimal(0)),
                    "orders": {str(o.order_id): (o.executed_quantity, -o.commission) for o in orders},
                    "stops": [o for o in await venue.open_orders(pair) if o.type == "STOP_MARKET"],
                    "raw": [
                        (
                            o.order_id,
                            o.client_order_id,
                            o.type,
                            o.side,
                            o.status,
                            o.quantity,
                            o.executed_quantity,
                            o.commission,
                        )
                        for o in orders
                    ],
                }
            return found

    return asyncio.run(read())


def go_live(d: Daemon, url: str, run_id: str) -> None:
    """Pause, close every paper trade, then `ctl runs live` (refused while a paper position is open)."""
    # Paused, its paper trades closed: then it may go live (a paper position has no venue counterpart).
    assert ctl(d, "pause", "--reason", "going_live").returncode == 0
    if open_positions(url, run_id):  # the agent trades often: it usually holds one here
        held = ctl(d, "runs", "live", run_id)
        if held.returncode == 0:  # flat between the read and the command (a plan decided before the pause)
            assert "switched: live" in held.stdout, held.stdout
            assert not open_positions(url, run_id)
            return
        assert held.returncode == 1, held.stdout + held.stderr
        assert "on paper: close it first" in held.stderr

    def closed_on_paper() -> bool:
        """Close every trade that holds a position (one still opening may fill after the pause: it is
        closed on a later round; `close-trade` twice sends one order)."""
        if not open_positions(url, run_id):
            return True
        for trade in json.loads(ctl(d, "status", "--json").stdout)["open_trades"]:
            if trade["entry_price"] is not None:
                ctl(d, "close-trade", trade["id"])
        return False

    answers: list[subprocess.CompletedProcess[str]] = []

    def switched() -> bool:
        if not closed_on_paper():
            return False
        answers.append(ctl(d, "runs", "live", run_id))
        if answers[-1].returncode == 0:
            return True
        assert "on paper: close it first" in answers[-1].stderr, answers[-1].stderr  # filled meanwhile
        return False

    d.wait_until(switched, 300, "flat on paper, then switched", every=3)
    assert "switched: live" in answers[-1].stdout
    assert query(url, "SELECT mode FROM agent_runs WHERE id = $1::uuid", run_id)[0][0] == "live"
    changes = query(url, "SELECT settings->'mode_changes' FROM agent_runs WHERE id = $1::uuid", run_id)
    assert [change["mode"] for change in json.loads(changes[0][0])] == ["live"]


def settled(url: str) -> bool:
    """No market order working (every answer and fill recorded)."""
    working = query(
        url,
        "SELECT count(*) FROM trade_executions WHERE mode = 'live' AND order_type = 'MARKET' "
        "AND state IN ('intent', 'submitted', 'accepted', 'partially_filled', 'unknown')",
    )
    return int(working[0][0]) == 0


def dump(url: str, pair: str, venue: dict[str, object]) -> str:
    """Every live row of the pair and every order the venue has on it, for a failure's message."""
    rows = query(
        url,
        "SELECT client_order_id, exchange_order_id, order_type, side, quantity, filled_quantity, fee, state, "
        "reduce_only FROM trade_executions WHERE mode = 'live' AND pair = $1 ORDER BY created_at",
        pair,
    )
    ours = "\n".join(str(tuple(row)) for row in rows)
    theirs = "\n".join(str(order) for order in venue.get("raw", []))  # type: ignore[attr-defined]
    return f"\nthe database's rows:\n{ours}\nthe venue's orders:\n{theirs}"


def differences(url: str, ours: dict[str, object], theirs: object) -> str:
    """What differs between the database's orders and the venue's (by venue order id), with the history of
    each differing row."""
    assert isinstance(theirs, dict)
    only_ours = {k: ours[k] for k in ours.keys() - theirs.keys()}
    only_theirs = {k: theirs[k] for k in theirs.keys() - ours.keys()}
    unequal = {k: (ours[k], theirs[k]) for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]}
    rows = query(
        url,
        "SELECT x.client_order_id, x.order_type, x.side, x.quantity, x.state, x.exchange_order_id, "
        "array_agg(e.to_state || ':' || coalesce(e.reason, '') || ':' || e.evidence::text ORDER BY e.id) AS steps "
        "FROM trade_executions x JOIN trade_state_events e ON e.execution_id = x.id "
        "WHERE x.exchange_order_id = ANY($1::text[]) GROUP BY x.id",
        [*only_ours, *unequal],
    )
    history = [dict(row) for row in rows]
    return f"only in the database {only_ours}; only on the venue {only_theirs}; (database, venue) {unequal}; {history}"


def disagreement(url: str, venue: dict[str, dict[str, object]]) -> str | None:
    """How the database differs from the venue's account (positions, every order with its fills and fees
    both ways, exactly one stop of the position's size for each open position, no client order id twice);
    None when it does not."""
    for pair in PAIRS:
        position, orders = database_account(url, pair)
        if position != venue[pair]["position"]:
            return f"{pair}: position {position} here, {venue[pair]['position']} on the venue" + dump(
                url, pair, venue[pair]
            )
        if orders != venue[pair]["orders"]:
            return f"{pair}: orders, fills or fees differ: {differences(url, orders, venue[pair]['orders'])}" + dump(
                url, pair, venue[pair]
            )
        stops = venue[pair]["stops"]
        assert isinstance(stops, list)
        if [s.quantity for s in stops] != ([abs(position)] if position != 0 else []):
            return f"{pair}: stops {[s.quantity for s in stops]} on the venue for a position of {position}"
    duplicated = query(url, "SELECT client_order_id FROM trade_executions GROUP BY client_order_id HAVING count(*) > 1")
    return f"client order ids recorded twice: {duplicated}" if duplicated else None


def agrees_with_the_venue(
    d: Daemon, url: str, urls: dict[str, str], what: str, key: str = KEY, secret: str = SECRET
) -> dict[str, dict[str, object]]:
    """Once paused: waits until no market order is working and the database equals the venue's account (a
    decision planned before the pause may still send its orders, a moved stop is two for a moment); the
    venue's account then. Past the deadline, fails with the last difference seen."""
    said: list[str] = []
    seen: list[dict[str, dict[str, object]]] = []

    def agreed() -> bool:
        if not settled(url):
            said.append("a market order is still working")
            return False
        seen.append(venue_account(urls, key, secret))
        difference = disagreement(url, seen[-1])
        said.append(difference or "")
        return difference is None

    try:
        d.wait_until(agreed, 180, f"{what}: the database equal to the venue")
    except AssertionError as failed:
        raise AssertionError(f"{what}: {said[-1] if said else 'never compared'}") from failed
    return seen[-1]


def database_account(url: str, pair: str) -> tuple[Decimal, dict[str, tuple[Decimal, Decimal]]]:
    rows = query(
        url,
        "SELECT exchange_order_id, side, filled_quantity, fee FROM trade_executions WHERE mode = 'live' AND pair = $1 "
        "AND exchange_order_id IS NOT NULL",
        pair,
    )
    position = sum((r[2] if r[1] == "BUY" else -r[2] for r in rows), Decimal(0))
    return position, {str(r[0]): (r[2], r[3]) for r in rows}
