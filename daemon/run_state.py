"""The daemon's live state: its settings, database, the active run and the supervisor trading it.
Runs start and stop here (at start-up, and by the `runs` command)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from config import Settings
from daemon.control_protocol import CommandError
from daemon.run_setup import build_plans, start_run
from daemon.supervisor import Supervisor
from storage.database import Database
from storage.ops import OpsStore
from storage.trading import Run, RunStore


@dataclass
class DaemonState:
    settings: Settings
    database: Database
    log_socket: str
    started_monotonic: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    run: Run | None = None
    supervisor: Supervisor | None = None

    @property
    def run_id(self) -> str:
        return "" if self.run is None else str(self.run.id)

    def require_supervisor(self) -> Supervisor:
        if self.supervisor is None:
            raise CommandError("no_run", "no run is active: start one with `runs start`")
        return self.supervisor

    async def trade(self, run: Run) -> Supervisor:
        """Start the supervisor for `run` (resumed or new) and mark the run running."""
        plans, env, account_policy = await build_plans(self.settings, self.database, run, self.log_socket)
        ops = OpsStore(self.database.pool)

        async def alert(severity: str, kind: str, message: str, pair: str | None) -> None:
            await ops.raise_alert(severity, kind, message, pair=pair, run_id=run.id)  # type: ignore[arg-type]

        supervisor = Supervisor(env, account_policy, plans, self.settings.daemon, alert)
        self.run, self.supervisor = run, supervisor
        await supervisor.start()
        runs = RunStore(self.database.pool)
        await runs.set_status(run.id, "running")
        self.run = await runs.get(run.id) or run
        return supervisor

    async def start_run(self, policy: str, pairs: tuple[str, ...]) -> Run:
        run = await start_run(self.settings, self.database, policy, pairs)
        await self.trade(run)
        return run

    async def stop_run(self, reason: str) -> str | None:
        supervisor, run = self.supervisor, self.run
        if supervisor is None or run is None:
            return None
        await supervisor.stop(self.settings.daemon.shutdown_deadline_sec)
        await RunStore(self.database.pool).set_status(run.id, "stopped", reason)
        self.supervisor = self.run = None
        return str(run.id)

    def run_view(self) -> dict[str, Any] | None:
        return None if self.run is None else self.run_row(self.run)

    @staticmethod
    def run_row(run: Run) -> dict[str, Any]:
        return {
            "id": str(run.id),
            "policy": run.policy,
            "mode": run.mode,
            "status": run.status,
            "pairs": list(run.pairs),
            "interval": run.interval,
            "feature_set": run.feature_set,
            "started_at": run.started_at.isoformat(),
            "stopped_at": None if run.stopped_at is None else run.stopped_at.isoformat(),
            "stop_reason": run.stop_reason,
        }
