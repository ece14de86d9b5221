"""The daemon's live state: its settings, database, the active run and the supervisor trading it.
Runs start and stop here (at start-up, and by the `runs` command)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from actors.transport import PairPlan, RayTransport
from config import Settings
from daemon.cli_runs import record_run_stopped
from daemon.control_protocol import CommandError
from daemon.run_setup import ORIGIN_CONTROL, build_plans, check_start, start_run
from daemon.secrets_rotation import write_credentials_file
from daemon.supervisor import Supervisor
from daemon.unsaved_desired import UNSAVED_DESIRED_FILE, UnsavedDesiredFile
from domain.fills import FillRules
from exchange.bingx.rest import Credentials
from observability import get_logger, register_secrets
from observability.alert_outbox import AlertOutbox
from observability.kept_writes import KeptWrites
from pipeline.risk.venue_equity import VenueEquitySource
from storage.availability import database_unreachable
from storage.database import Database
from storage.desired_state import DesiredStateStore
from storage.ops import AuditEvent, OpsStore
from storage.records import Mode
from storage.runs import Run, RunConflictError, RunStore, StoppedRun

log = get_logger("tradingd.daemon")
ROTATE_CALL_SEC = 30.0


@dataclass
class DaemonState:
    settings: Settings
    database: Database
    log_socket: str
    started_monotonic: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    run: Run | None = None
    supervisor: Supervisor | None = None
    alerts: AlertOutbox | None = None
    """The supervisor's alerts: kept through a database outage, written when it is back."""
    dispatcher_stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to stop alert delivery (`daemon.alert_dispatcher`), last in the shutdown."""
    rotation: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One `secrets rotate` at a time."""
    audits: KeptWrites[AuditEvent] = field(init=False)
    """The control socket's audit events: kept through a database outage, written when it is back."""

    def __post_init__(self) -> None:
        self.audits = KeptWrites(
            OpsStore(self.database.pool).write_audit, "audit_event", transient=database_unreachable
        )

    async def rotate_keys(self, new: Credentials) -> dict[str, object]:
        """Sign with the account's new keys from now on (checked already: `daemon.secrets_rotation`): this
        process's redactor and settings (a run started or switched later), the supervisor's pairs, and the
        credentials file when the keys came from one. What was swapped, and where the keys now persist."""
        register_secrets((new.api_key, new.secret_key))
        exchange = self.settings.exchange
        keys = {"api_key": SecretStr(new.api_key), "secret_key": SecretStr(new.secret_key)}
        self.settings = self.settings.model_copy(update={"exchange": exchange.model_copy(update=keys)})
        swapped: list[str] = []
        missed: dict[str, str] = {}
        if self.supervisor is not None:
            swapped, missed = await self.supervisor.rotate_credentials(new.api_key, new.secret_key, ROTATE_CALL_SEC)
        if exchange.credentials_file is None:
            persisted = (
                "not persisted: the keys came from the environment (BINGX_API_KEY, BINGX_SECRET_KEY); set the new "
                "pair there (the service's EnvironmentFile) before the next restart, or it starts with the old one"
            )
        else:
            try:
                write_credentials_file(Path(exchange.credentials_file), new)
            except OSError as error:
                persisted = (
                    f"not persisted: {exchange.credentials_file} could not be rewritten ({error.strerror}); write the "
                    "new pair there before the next restart, or it starts with the old one"
                )
            else:
                persisted = f"written to {exchange.credentials_file} (0600)"
        log.warning("credentials_rotated", pairs=swapped, not_swapped=sorted(missed), persisted=persisted)
        return {"swapped": swapped, "not_swapped": missed, "persisted": persisted}

    @property
    def run_id(self) -> str:
        return "" if self.run is None else str(self.run.id)

    def require_supervisor(self) -> Supervisor:
        if self.supervisor is None:
            raise CommandError("no_run", "no run is active: start one with `runs start`")
        return self.supervisor

    async def trade(self, run: Run, rules: dict[str, FillRules] | None = None) -> Supervisor:
        """Start the supervisor for `run` (resumed or new) and mark the run running."""
        plans, env, account_policy = await build_plans(self.settings, self.database, run, self.log_socket, rules)
        # One outbox for the daemon's life: what a run kept through an outage outlives the run.
        outbox = self.alerts = self.alerts or AlertOutbox(
            OpsStore(self.database.pool).raise_alert, transient=database_unreachable
        )

        async def alert(severity: str, kind: str, message: str, pair: str | None) -> None:
            await outbox.raise_alert(severity, kind, message, pair=pair, run_id=run.id)

        supervisor = Supervisor(
            RayTransport(),
            env,
            account_policy,
            plans,
            self.settings.daemon,
            alert,
            DesiredStateStore(self.database.pool),
            outbox.adopt,
            UnsavedDesiredFile(self.settings.storage.resolved_data_dir() / UNSAVED_DESIRED_FILE),
            account_venue(plans, self.settings.account.venue_equity_interval_sec),
        )
        # The main loop's reconcile pass sees the supervisor only once it has started: a health check of an
        # account guard still starting (slow on a busy machine) would restart it under the start.
        self.run = run
        await supervisor.start()
        self.supervisor = supervisor
        runs = RunStore(self.database.pool)
        await runs.set_status(run.id, "running")
        self.run = await runs.get(run.id) or run
        return supervisor

    async def start_run(self, policy: str, pairs: tuple[str, ...]) -> Run:
        """`ctl runs start`: the start-up checks first; the run is written only when they pass."""
        active = await RunStore(self.database.pool).active()
        if active is not None or self.run is not None:
            raise RunConflictError(f"run {(active or self.run).id} is active; stop it first")  # type: ignore[union-attr]
        checked = await check_start(self.settings, self.database, None, policy, pairs)
        run = await start_run(self.settings, self.database, checked, origin=ORIGIN_CONTROL)
        await self.trade(run, checked.rules)
        return run

    async def stop_run(
        self, reason: str, *, keep: bool = False, flattened: Mapping[str, str] | None = None
    ) -> tuple[StoppedRun, dict[str, Any]] | None:
        """Stop the supervisor, then the run by the rule for its positions (`RunStore.stop`): refused with
        `OpenPositionsError` while it holds any, unless `keep` hands them over. When a fill landed while
        the actors stopped and the stop is refused after all, the run trades on (a new supervisor). Returns
        the stopped run and what happened to each pair (the `run_stopped` event's positions)."""
        supervisor, run = self.supervisor, self.run
        if supervisor is None or run is None:
            return None
        await supervisor.stop(self.settings.daemon.shutdown_deadline_sec)
        self.supervisor = None
        try:
            stopped = await RunStore(self.database.pool).stop(run.id, reason, keep=keep)
        except BaseException:
            log.warning("run_stop_refused_late", run_id=str(run.id))
            await self.trade(run)
            raise
        self.run = None
        positions = await record_run_stopped(
            self.database, stopped, reason, actor="control-socket", flattened=flattened
        )
        return stopped, positions

    async def switch_mode(self, mode: Mode, reason: str) -> Run:
        """`ctl runs live|paper` once its conditions hold (`daemon.live_switch`): the pairs stop, the run's
        mode is recorded, and they start again on the new venue (a live pair reconciles first)."""
        supervisor, run = self.require_supervisor(), self.run
        assert run is not None
        await supervisor.stop(self.settings.daemon.shutdown_deadline_sec)
        self.supervisor = None
        runs = RunStore(self.database.pool)
        await runs.set_mode(run.id, mode, reason)
        switched = await runs.get(run.id)
        assert switched is not None
        log.warning("run_mode_switched", run_id=str(run.id), mode=mode, reason=reason)
        await self.trade(switched)
        return switched

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


def account_venue(plans: list[PairPlan], every_sec: float) -> VenueEquitySource | None:
    """A live run's account guard reads the venue's equity with the pairs' keys; None on paper."""
    live = next((plan.live for plan in plans if plan.live is not None), None)
    if live is None:
        return None
    return VenueEquitySource(live.rest_url, live.credentials, live.recv_window_ms, every_sec, live.signed_share)
