"""`tradingd ctl runs live RUN_ID` through the real client against the real daemon trading a paper run: a run
that may not go live is refused with every unmet condition named (exchange.mode, the baseline it trades,
its paper record), nothing is switched, and the run trades on; `runs paper` on a paper run says so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.cli_helpers import tradingd
from tests.e2e.daemon_harness import Daemon, cut_files, daemon, decisions, query, simulator_process, write_config

pytestmark = pytest.mark.timeout(900)


def ctl(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return tradingd(d.env, "ctl", *args, "--config", str(d.config), timeout=120)


def test_a_paper_run_that_may_not_go_live_is_refused_naming_each_condition(
    tmp_path: Path, shared_candles: Path, postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 3000)
    with (
        simulator_process(files) as (urls, _),
        daemon(write_config(tmp_path, extra="[trading]\nlive_min_paper_decisions = 100000\n"), urls,
               postgres_url, tmp_path) as d,
    ):  # fmt: skip
        d.start()
        d.wait_ready()
        run_id = str(query(postgres_url, "SELECT id FROM agent_runs WHERE status = 'running'")[0][0])
        pairs = list(files)
        d.wait_until(lambda: all(decisions(postgres_url, pair) >= 2 for pair in pairs), 300, "decisions")

        refused = ctl(d, "runs", "live", run_id)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        said = refused.stderr
        assert f"run {run_id} cannot switch to live" in said
        assert "exchange.mode is paper: set exchange.mode = live" in said
        assert "the run trades the baseline momentum: only a promoted agent version goes live" in said
        assert "trading.live_min_paper_decisions is 100000" in said
        assert "trading.live_min_paper_days is 1" in said
        assert query(postgres_url, "SELECT mode FROM agent_runs WHERE id = $1::uuid", run_id)[0][0] == "paper"
        audit = query(
            postgres_url,
            "SELECT outcome FROM ops_audit_events WHERE command = 'runs' AND params->>'action' = 'live' ORDER BY id",
        )
        assert [row[0] for row in audit] == ["rejected"]

        wrong = ctl(d, "runs", "live", "not-the-run")
        assert wrong.returncode == 1
        assert f"give the active run's id ({run_id})" in wrong.stderr

        already = ctl(d, "runs", "paper", run_id)
        assert already.returncode == 0, already.stderr
        assert "trades paper already" in already.stdout

        before = {pair: decisions(postgres_url, pair) for pair in pairs}
        d.wait_until(lambda: any(decisions(postgres_url, p) > before[p] for p in pairs), 300, "trading on")
