"""The disaster-recovery runbook (docs/runbooks/disaster-recovery.md), step by step through the real
commands: `db backup` of the database while the daemon trades, a fresh database, `db migrate`, `db
restore`, and `run` resuming the same run from where the backup left it (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.invariants import decision_failures
from tests.e2e.cli_helpers import tradingd
from tests.e2e.daemon_harness import (
    PAIRS,
    cut_files,
    daemon,
    decisions,
    newest_decided,
    query,
    replay_simulator,
    write_config,
)

pytestmark = pytest.mark.timeout(900)
MINUTE = 60_000


def test_a_backup_restored_into_a_fresh_database_resumes_the_run(
    tmp_path: Path, shared_candles: Path, postgres_url: str, another_postgres_url: str
) -> None:
    files = cut_files(shared_candles, tmp_path, 2000)
    backup_dir = tmp_path / "backup"
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    with replay_simulator(files) as urls:
        with daemon(write_config(tmp_path), urls, postgres_url, tmp_path / "before") as d:
            d.start()
            d.wait_ready()
            d.wait_until(lambda: all(decisions(postgres_url, p) >= 8 for p in PAIRS), 180, "decisions")
            backed = tradingd(d.env, "--config", str(d.config), "db", "backup", "--out", str(backup_dir))
            assert backed.returncode == 0, backed.stderr
            assert "(one snapshot)" in backed.stdout
            assert d.terminate() == 0
        run_id = query(postgres_url, "SELECT id FROM agent_runs")[0][0]
        at_backup = {p: decisions_in(backup_dir, p) for p in PAIRS}
        assert all(count >= 8 for count in at_backup.values())

        fresh = {**d.env, "TIMESCALE_URL": another_postgres_url}
        migrated = tradingd(fresh, "db", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        restored = tradingd(fresh, "--config", str(d.config), "db", "restore", str(backup_dir))
        assert restored.returncode == 0, restored.stderr
        assert query(another_postgres_url, "SELECT id FROM agent_runs")[0][0] == run_id
        again = tradingd(fresh, "--config", str(d.config), "db", "restore", str(backup_dir))
        assert again.returncode == 1
        assert "a restore goes into a fresh database" in again.stderr

        with daemon(write_config(tmp_path), urls, another_postgres_url, tmp_path / "after") as resumed:
            resumed.start()
            resumed.wait_ready()
            newest = {p: newest_decided(another_postgres_url, p) for p in PAIRS}
            resumed.wait_until(
                lambda: all(newest_decided(another_postgres_url, p) >= newest[p] + 5 * MINUTE for p in PAIRS),
                180,
                "decisions after the restore",
            )
            assert resumed.events("run_resumed")[0]["run_id"] == str(run_id)
            assert resumed.terminate() == 0
    assert len(query(another_postgres_url, "SELECT id FROM agent_runs")) == 1
    failures, counts = decision_failures(another_postgres_url)  # each candle once, none skipped, no id twice
    assert not failures, failures
    assert all(counts[pair] > at_backup[pair] for pair in PAIRS)


def decisions_in(backup: Path, pair: str) -> int:
    text = (backup / "trade_decisions.jsonl").read_text()
    return sum(1 for line in text.splitlines() if f'"pair": "{pair}"' in line)
