"""The pauses kept through a database outage, on disk: read back for their own run only, newest wins,
and a damaged file is set aside (logged), never a crash at start-up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from daemon.unsaved_desired import UnsavedDesiredFile, newer_than_stored
from storage.desired_state import ACCOUNT, DesiredState

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def test_written_read_back_for_its_run_and_removed_when_empty(tmp_path: Path) -> None:
    run = uuid.uuid4()
    file = UnsavedDesiredFile(tmp_path / "desired_state.unsaved.json")
    kept = {
        "BTC-USDT": (DesiredState("HALTED", "operator_pause", NOW, "control-socket"), "control-socket"),
        ACCOUNT: (DesiredState("REDUCING", "operator_reduce", NOW, "control-socket"), "control-socket"),
    }
    file.write(run, kept)
    assert file.path.stat().st_mode & 0o777 == 0o600
    assert file.read(run) == kept
    assert file.read(uuid.uuid4()) == {}, "another run's pauses are not this run's"
    file.write(run, {})
    assert not file.path.exists()
    assert file.read(run) == {}


def test_a_row_stored_after_the_kept_pause_wins() -> None:
    kept = {
        "BTC-USDT": (DesiredState("HALTED", "operator_pause", NOW, "a"), "a"),
        "ETH-USDT": (DesiredState("HALTED", "operator_pause", NOW, "a"), "a"),
        "SOL-USDT": (DesiredState("HALTED", "operator_pause", NOW, "a"), "a"),
    }
    stored = {
        "BTC-USDT": DesiredState("ACTIVE", None, NOW + timedelta(seconds=5), "b"),  # resumed after it: stands
        "ETH-USDT": DesiredState("ACTIVE", None, NOW - timedelta(seconds=5), "b"),  # before it: the pause wins
    }
    assert sorted(newer_than_stored(kept, stored)) == ["ETH-USDT", "SOL-USDT"]


def test_a_damaged_file_is_set_aside_and_logged(tmp_path: Path) -> None:
    run = uuid.uuid4()
    path = tmp_path / "desired_state.unsaved.json"
    wrong_state = b'{"run_id": "%s", "scopes": {"BTC-USDT": {"trading_state": "PAUSED"}}}' % str(run).encode()
    for body in (b"{not json", wrong_state, b"\xff\xfe", b"[" * 100_000):
        path.write_bytes(body)
        with capture_logs() as logs:
            assert UnsavedDesiredFile(path).read(run) == {}
        assert [entry["event"] for entry in logs] == ["unsaved_desired_state_unreadable"], body[:20]
