"""`tradingd run`: the daemon, in the foreground, for systemd (Type=notify).

Start-up: validate (done by the CLI), refuse what this build cannot do safely, open and migrate the
database, find the active run and refuse it when it no longer matches the configuration (unless
`--resume-as-is`), start the replay venue when asked (a resumed run's replay continues after its last
decision), check the policy, intervals and allowed pairs and read the pairs' contracts from the venue
(a venue that cannot be reached fails in seconds, exit 69), and only then write a new run (when none
was active), activate the configured risk limits, start Ray, start the supervisor, open the control
socket, then READY=1. The main loop sends WATCHDOG=1, runs the supervisor's reconcile
pass and logs a heartbeat. SIGTERM (or `shutdown`): STOPPING=1, every pair HALTED, in-flight decisions
recorded, actors stopped in reverse order, exit 0; a second signal exits at once (EXIT_FORCED).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from config import Settings
from daemon import exit_codes
from daemon.db_commands import open_migrated_database
from daemon.market_commands import refuse_test_data
from daemon.run_setup import RunSetupError, check_start, resolve_run, start_replay_venue, start_run
from daemon.run_state import DaemonState
from daemon.systemd import Notifier
from observability import get_logger
from observability.forwarding import LogSink
from storage.ops import OpsStore

log = get_logger("tradingd.daemon")
EXIT_FORCED = 130


async def run_daemon(settings: Settings, config_path: Path | None, *, resume_as_is: bool = False) -> int:
    notifier = Notifier.from_environment()
    started = time.monotonic()
    if settings.exchange.mode == "live":
        print(
            "tradingd: exchange.mode = live: this build trades on paper only (live order execution is not "
            "available yet); set exchange.mode = paper",
            file=sys.stderr,
        )
        return exit_codes.CONFIG
    if (refused := refuse_test_data(settings)) is not None:
        return refused
    notifier.status("opening the database")
    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    venue = None
    sink: LogSink | None = None
    control = None
    try:
        # Nothing is written before every check passed: a start that fails leaves no run behind.
        notifier.status("preparing the run")
        command = "tradingd" if config_path is None else f"tradingd --config {config_path}"
        active = await resolve_run(settings, database, resume_as_is=resume_as_is, command=command)
        if settings.market_data.source == "replay":
            notifier.status("starting the replay venue")
            venue, settings = await start_replay_venue(settings, config_path, active, database)
        notifier.status("checking the pairs at the venue")
        checked = await check_start(settings, database, active, settings.run.policy, settings.market_data.pairs)
        if active is None:
            run = await start_run(settings, database, checked)
        else:
            run = active
            log.info("run_resumed", run_id=str(run.id), policy=run.policy, pairs=list(run.pairs))
        data_dir = settings.storage.resolved_data_dir()
        socket_path = settings.control.resolved_socket_path(data_dir)
        socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sink = LogSink(socket_path.parent / "log.sock", sys.stdout)
        await sink.start()
        state = DaemonState(settings, database, str(sink.path), started)
        notifier.status("starting Ray")
        from daemon.ray_runtime import start_ray, stop_ray

        await asyncio.to_thread(start_ray, settings)
        _install_signals(state, notifier)
        notifier.status(f"starting {len(run.pairs)} pairs")
        supervisor = await state.trade(run, checked.rules)
        from daemon.commands import open_control

        control = await open_control(state, socket_path)
        ready_sec = time.monotonic() - started
        await OpsStore(database.pool).record_metric("time_to_ready_sec", ready_sec)
        running = [slot.pair for slot in supervisor.slots.values() if slot.state == "running"]
        notifier.ready(f"trading {len(running)}/{len(run.pairs)} pairs ({run.policy}, run {run.id})")
        log.info(
            "daemon_ready",
            run_id=str(run.id),
            policy=run.policy,
            pairs=running,
            socket=str(socket_path),
            seconds=round(ready_sec, 3),
        )
        await _main_loop(state, notifier)
        notifier.stopping("halting pairs, recording in-flight decisions")
        log.info("daemon_stopping")
        clean = True
        if state.supervisor is not None:
            clean = await state.supervisor.stop(settings.daemon.shutdown_deadline_sec)
        await control.stop()
        control = None
        await asyncio.to_thread(stop_ray)
        log.info("daemon_stopped", clean=clean)
        return exit_codes.OK
    except RunSetupError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return error.exit_code
    finally:
        if control is not None:
            await control.stop()
        if sink is not None:
            await sink.stop()
        if venue is not None:
            await venue.stop()
        await database.close()


async def _main_loop(state: DaemonState, notifier: Notifier) -> None:
    settings = state.settings.daemon
    watchdog = notifier.watchdog_interval_sec
    tick = min(settings.health_interval_sec, watchdog if watchdog else settings.health_interval_sec)
    next_health = next_heartbeat = time.monotonic()
    while not state.stop.is_set():
        notifier.watchdog()
        now = time.monotonic()
        if now >= next_health:
            next_health = now + settings.health_interval_sec
            if state.supervisor is not None:
                await state.supervisor.reconcile_once()
        if now >= next_heartbeat:
            next_heartbeat = now + settings.heartbeat_sec
            slots = state.supervisor.slots.values() if state.supervisor is not None else []
            states = {slot.pair: slot.state for slot in slots}
            log.info("heartbeat", run_id=state.run_id, pairs=states, uptime_sec=round(now - state.started_monotonic))
            notifier.status(f"run {state.run_id}: " + ", ".join(f"{p} {s}" for p, s in states.items()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stop.wait(), tick)


def _install_signals(state: DaemonState, notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if state.stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            os._exit(EXIT_FORCED)
        log.info("signal_received", signal=signal.Signals(signum).name)
        notifier.stopping("stopping")
        state.stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
