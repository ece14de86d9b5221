"""Pauses applied while the database was unreachable, on disk until they are stored.

The supervisor applies a pause (HALTED, REDUCING) at once even when `operator_desired_states` cannot be
written, and stores it when the database answers. Until then the wish lived only in memory: a daemon that
crashed meanwhile came back trading a pair the operator had paused. This file keeps it across a crash:
written (atomically, 0600, fsynced) whenever the kept pauses change, removed when none is left, and read
at start-up, where an entry newer than the database's row for its scope wins and is stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from observability import get_logger
from storage.desired_state import DesiredState

log = get_logger("tradingd.supervisor")
UNSAVED_DESIRED_FILE = "desired_state.unsaved.json"
"""In the data directory."""
Unsaved = dict[str, tuple[DesiredState, str]]
"""scope -> (desired state, who asked)"""


class UnsavedDesiredFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, run_id: uuid.UUID, unsaved: Unsaved) -> None:
        """The kept pauses now (none: the file goes). Never raises: a disk that fails is logged, and the
        pause holds in memory as before."""
        try:
            if not unsaved:
                self.path.unlink(missing_ok=True)
                return
            body = {
                "run_id": str(run_id),
                "scopes": {scope: {**_state_json(state), "by": by} for scope, (state, by) in unsaved.items()},
            }
            temporary = self.path.with_name(self.path.name + ".tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(body, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as error:
            log.error(
                "unsaved_desired_state_not_written", path=str(self.path), error=f"{type(error).__name__}: {error}"
            )

    def read(self, run_id: uuid.UUID) -> Unsaved:
        """The pauses a previous process kept for this run (another run's are ignored); an unreadable
        file is logged and ignored (the database's rows stand)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            log.error("unsaved_desired_state_unreadable", path=str(self.path), error=type(error).__name__)
            return {}
        try:
            body = json.loads(text)
            if body.get("run_id") != str(run_id):
                return {}
            return {str(scope): _state_of(entry) for scope, entry in dict(body["scopes"]).items()}
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
            kept = self.path.with_name(self.path.name + ".unreadable")
            log.error("unsaved_desired_state_unreadable", path=str(kept), error=type(error).__name__)
            with contextlib.suppress(OSError):  # set aside for the operator, not read again
                os.replace(self.path, kept)
            return {}


def newer_than_stored(kept: Unsaved, stored: dict[str, DesiredState]) -> Unsaved:
    """The kept entries the database does not already hold something newer for."""
    newer: Unsaved = {}
    for scope, (state, by) in kept.items():
        row = stored.get(scope)
        if (
            row is None
            or row.updated_at is None
            or (state.updated_at is not None and state.updated_at > row.updated_at)
        ):
            newer[scope] = (state, by)
    return newer


def _state_json(state: DesiredState) -> dict[str, Any]:
    return {
        "trading_state": state.trading_state,
        "reason": state.reason,
        "at": None if state.updated_at is None else state.updated_at.isoformat(),
    }


def _state_of(entry: Any) -> tuple[DesiredState, str]:
    at = entry.get("at")
    state = DesiredState(
        entry["trading_state"], entry.get("reason"), None if at is None else datetime.fromisoformat(at), entry["by"]
    )
    return state, str(entry["by"])
