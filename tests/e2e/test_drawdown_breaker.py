"""The real `tradingd run` on a replay with a tiny `account.breaker_max_drawdown` and `flatten_on_trip`
(issue 17): the first adverse mark of an open position trips the circuit breaker on unrealised PnL,
before any trade closes at a loss; it is logged critical and alerted with the drawdown; the account is
REDUCING; the daemon cancels the pairs' opening orders and closes their positions reduce-only; no new
position opens while the breaker is open; `ctl resume` closes it (no cooldown here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.daemon_harness import PAIRS, cut_files, daemon, decisions, query, replay_simulator, write_config
from tests.e2e.daemon_harness import ctl_client as ctl

pytestmark = pytest.mark.timeout(900)


def status(d: Any) -> dict[str, Any]:
    answer = ctl(d, "--json", "status")
    assert answer.returncode == 0, answer.stderr
    found: dict[str, Any] = json.loads(answer.stdout)
    return found


def test_an_unrealised_drawdown_trips_the_breaker_which_flattens_and_holds_entries(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2600)
    config = write_config(tmp_path)
    tiny = "breaker_max_losses = 1000\nbreaker_max_drawdown = 0.01\nflatten_on_trip = true\nbreaker_cooldown_min = 0"
    config.write_text(config.read_text().replace("breaker_max_losses = 1000", tiny))
    with replay_simulator(files) as urls, daemon(config, urls, postgres_url, tmp_path) as d:
        d.start()
        d.wait_ready()
        d.wait_until(lambda: bool(d.events("circuit_breaker_tripped")), 300, "the breaker tripped")
        (tripped,) = d.events("circuit_breaker_tripped")
        assert "from the equity peak (unrealised PnL included) reached 0.01" in tripped["breaker_reason"]
        assert float(tripped["drawdown"]) >= 0.01
        d.wait_until(lambda: bool(d.events("breaker_acted")), 120, "the pairs told")
        acted = d.events("breaker_acted")[0]
        assert acted["flatten"] is True
        assert sorted(acted["pairs"]) == sorted(PAIRS)
        assert acted["failed"] == {}

        def flat() -> bool:
            answer = status(d)
            return (
                all(float(answer["pairs"][p]["position"]["position"]) == 0 for p in PAIRS) and not answer["open_trades"]
            )

        d.wait_until(flat, 120, "every position closed")
        answer = status(d)
        assert answer["account"]["trading_state"] == "REDUCING"
        assert answer["account"]["breaker_open"] is True
        alerts = query(postgres_url, "SELECT severity, message FROM alerts WHERE kind = 'account_halted'")
        assert [row["severity"] for row in alerts] == ["critical"], alerts
        assert "drawdown" in alerts[0]["message"]
        closes = query(postgres_url, "SELECT count(*) FROM trades WHERE close_reason = 'operator' OR status = 'closed'")
        assert int(closes[0][0]) >= 1

        # no new position while the breaker is open, over several decisions of each pair
        at = {p: decisions(postgres_url, p) for p in PAIRS}
        d.wait_until(lambda: all(decisions(postgres_url, p) >= at[p] + 5 for p in PAIRS), 120, "decisions after")
        assert flat(), "nothing opened while the breaker is open"

        resumed = ctl(d, "resume")
        assert "circuit breaker closed" in resumed.stdout, resumed.stdout + resumed.stderr
