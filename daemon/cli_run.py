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

Signals first (`daemon.signals`): SIGTERM and SIGINT are caught from the process's first instant. A stop
during the start-up ends it after the step under way (`startup_stopped`, with the step): a step in a
thread or subprocess (the database's start and migrations, `ray.init`) finishes first, a step that only
waits (the venue's contracts, the actors' start) is cancelled; what was started is stopped, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from config import Settings
from daemon import exit_codes
from daemon.cli_db import open_migrated_database
from daemon.cli_market import refuse_test_data
from daemon.run_setup import RunSetupError, check_start, resolve_run, start_replay_venue, start_run
from daemon.run_state import DaemonState
from daemon.signals import Startup, StartupStopped, StopRequest
from daemon.systemd import Notifier

if TYPE_CHECKING:
    from daemon.metrics_endpoint import MetricsEndpoint
from observability import get_logger
from observability.forwarding import LogSink
from storage.availability import within
from storage.ops import OpsStore
from storage.private_dirs import make_private_dirs

log = get_logger("tradingd.daemon")


ALERT_FLUSH_SEC = 5.0


async def run_daemon(
    settings: Settings, config_path: Path | None, *, resume_as_is: bool = False, stop: StopRequest | None = None
) -> int:
    notifier = Notifier.from_environment()
    started = time.monotonic()
    stop = stop if stop is not None else StopRequest()
    stop.force_on_second = True

    def on_signal(signum: int) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        notifier.stopping("stopping")

    # First: a signal from now on, or one that came earlier, stops the start-up after its step under way.
    stopping = stop.bind(on_signal=on_signal)
    try:
        return await _run_daemon(settings, config_path, resume_as_is, stop, stopping, notifier, started)
    finally:
        stop.unbind()


async def _run_daemon(
    settings: Settings,
    config_path: Path | None,
    resume_as_is: bool,
    stop: StopRequest,
    stopping: asyncio.Event,
    notifier: Notifier,
    started: float,
) -> int:
    if (refused := refuse_test_data(settings)) is not None:
        return refused
    startup = Startup(stop, notifier.status)
    database = None
    venue = None
    sink: LogSink | None = None
    control = None
    metrics: MetricsEndpoint | None = None
    delivery: asyncio.Task[None] | None = None
    ray_started = False
    state: DaemonState | None = None
    stopped_during: str | None = None
    try:
        # Each step below ends before the next begins; a stop requested meanwhile ends the start-up there
        # (StartupStopped), and the `finally` stops what was started, in reverse order.
        database = await startup.finish("opening the database", open_migrated_database(settings))
        if database is None:
            return exit_codes.UNAVAILABLE
        # Nothing is written before every check passed: a start that fails leaves no run behind.
        startup.begin("preparing the run")
        command = "tradingd" if config_path is None else f"tradingd --config {config_path}"
        active = await resolve_run(settings, database, resume_as_is=resume_as_is, command=command)
        if settings.market_data.source == "replay":
            venue, settings = await startup.finish(
                "starting the replay venue", start_replay_venue(settings, config_path, active, database)
            )
        checked = await startup.cancellable(
            "checking the pairs at the venue",
            check_start(settings, database, active, settings.run.policy, settings.market_data.pairs),
        )
        startup.begin("recording the run")
        if active is None:
            run = await start_run(settings, database, checked)
        else:
            run = active
            log.info("run_resumed", run_id=str(run.id), policy=run.policy, pairs=list(run.pairs))
        data_dir = settings.storage.resolved_data_dir()
        socket_path = settings.control.resolved_socket_path(data_dir)
        make_private_dirs(socket_path.parent)
        startup.begin("opening the log socket")
        sink = LogSink(socket_path.parent / "log.sock", sys.stdout)
        await sink.start()
        state = DaemonState(settings, database, str(sink.path), started, stop=stopping)
        from daemon.ray_runtime import start_ray, stop_ray

        ray_started = True  # from here on stopped in the `finally`, however far `ray.init` got
        try:
            await startup.finish("starting Ray", asyncio.to_thread(start_ray, settings))
        finally:
            stop.reassert()  # over the handler Ray's core worker installed
        # Cancelled by a stop: the pairs part-way through their start are killed as after a failed start,
        # and stopping Ray ends the rest (as a crash would: every commit is all or nothing).
        supervisor = await startup.cancellable(f"starting {len(run.pairs)} pairs", state.trade(run, checked.rules))
        from daemon.control_commands import open_control

        startup.begin("opening the control socket")
        control = await open_control(state, socket_path)
        delivery = _start_dispatcher(state)
        if settings.metrics.enabled:
            startup.begin("opening the metrics endpoint")
            metrics = await _open_metrics(state)
        startup.check()
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
        _beat(state, running=True)
        await _main_loop(state, notifier)
        notifier.stopping("halting pairs, recording in-flight decisions")
        log.info("daemon_stopping")
        clean = True
        if state.supervisor is not None:
            clean = await state.supervisor.stop(settings.daemon.shutdown_deadline_sec)
        await control.stop()
        control = None
        await _last_flush(state)
        if metrics is not None:
            await metrics.stop()
            metrics = None
        await asyncio.to_thread(stop_ray)
        ray_started = False
        await _stop_dispatcher(state, delivery)
        delivery = None
        _beat(state, running=False)
        log.info("daemon_stopped", clean=clean)
        return exit_codes.OK
    except StartupStopped as stopped:
        stopped_during = stopped.stage
        log.info("startup_stopped", stage=stopped.stage, signal=stop.signal_name)
        notifier.stopping(f"stopped during start-up ({stopped.stage}): stopping what was started")
        if state is not None and state.supervisor is not None:  # the pairs had started: stop them as usual
            await state.supervisor.stop(settings.daemon.shutdown_deadline_sec)
        return exit_codes.OK
    except RunSetupError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:
        if not stop.requested:
            raise
        # Stopping anyway: the step that failed meanwhile (a slow `ray.init` timing out) is reported, what
        # was started is stopped below, and the stop the operator asked for is what the exit code says.
        stopped_during = startup.stage
        log.warning("startup_failed_while_stopping", stage=startup.stage, error=f"{type(error).__name__}: {error}")
        return exit_codes.OK
    finally:
        if control is not None:
            await control.stop()
        if metrics is not None:
            await metrics.stop()
        if state is not None:
            await _stop_dispatcher(state, delivery)
        if ray_started:
            from daemon.ray_runtime import stop_ray

            await asyncio.to_thread(stop_ray)
        if sink is not None:
            await sink.stop()
        if venue is not None:
            await venue.stop()
        if database is not None:
            await database.close()
        if stopped_during is not None:
            log.info("daemon_stopped", clean=True, during_startup=stopped_during)


async def _open_metrics(state: DaemonState) -> MetricsEndpoint:
    from daemon.metrics_endpoint import MetricsEndpoint

    settings = state.settings.metrics
    endpoint = MetricsEndpoint(state, settings.host, settings.port)
    try:
        await endpoint.start()
    except OSError as error:
        raise RunSetupError(
            f"metrics: cannot listen on {settings.host}:{settings.port}: {error.strerror or error}",
            exit_codes.UNAVAILABLE,
        ) from None
    return endpoint


def _beat(state: DaemonState, running: bool, stalled: bool = False) -> None:
    """The heartbeat file `tradingd liveness` reads (no database involved); a failure is logged once per
    kind, never raised: the daemon trades on without it."""
    from daemon.liveness import write_heartbeat

    slots = state.supervisor.slots.values() if state.supervisor is not None else []
    try:
        write_heartbeat(
            state.settings.storage.resolved_data_dir(),
            state="running" if running else "stopped",
            run_id=state.run_id,
            pairs={slot.pair: slot.state for slot in slots},
            stalled=stalled,
        )
    except OSError as error:
        log.warning("heartbeat_file_failed", error=f"{type(error).__name__}: {error.strerror or error}")


def _start_dispatcher(state: DaemonState) -> asyncio.Task[None] | None:
    """Alert delivery (`alerts.*`), when a channel is configured."""
    from daemon.alert_channels import open_channels
    from daemon.alert_dispatcher import AlertDispatcher

    channels = open_channels(state.settings.alerts)
    if not channels:
        return None
    dispatcher = AlertDispatcher(state.settings.alerts, channels, OpsStore(state.database.pool), lambda: state.alerts)
    log.info("alert_delivery_on", channels=[channel.name for channel in channels])
    state.dispatcher_stop = asyncio.Event()

    async def deliver() -> None:
        from daemon.alert_channels import close_channels

        try:
            await dispatcher.run(state.dispatcher_stop)
        finally:
            await close_channels(channels)

    return asyncio.get_running_loop().create_task(deliver(), name="alert-delivery")


async def _stop_dispatcher(state: DaemonState, task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    state.dispatcher_stop.set()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await asyncio.wait_for(task, state.settings.alerts.send_timeout_sec * 2 + 10)


async def _watchdog(state: DaemonState, notifier: Notifier, withheld: bool) -> bool:
    """WATCHDOG=1, unless the daemon is stalled (every running pair holds a candle it has not decided for
    `daemon.stall_after_sec`): then it is withheld, so systemd restarts the daemon, and an alert says why.
    True while withheld."""
    stalled = state.supervisor.stalled() if state.supervisor is not None else {}
    if not stalled:
        if withheld:
            log.warning("watchdog_resumed")
        notifier.watchdog()
        return False
    if not withheld:
        limit = state.settings.daemon.stall_after_sec
        log.critical("watchdog_withheld", stalled_sec=stalled, stall_after_sec=limit)
        if state.alerts is not None:
            message = (
                f"no pair has decided an arrived candle for {limit:g} s ({', '.join(sorted(stalled))}): "
                "the watchdog is withheld, systemd restarts the daemon"
            )
            run_id = None if state.run is None else state.run.id
            await state.alerts.raise_alert("critical", "daemon_stalled", message, run_id=run_id)
    return True


async def _flush_kept(state: DaemonState) -> None:
    """What a database outage kept (alerts, audit events); bounded, so a frozen database cannot hold up
    the watchdog (an insert cut short is not doubled: each row's uid is written once)."""
    for what, flush in (("alerts", state.alerts.flush if state.alerts else None), ("audit", state.audits.flush)):
        if flush is None:
            continue
        try:
            await within(flush(), ALERT_FLUSH_SEC, f"the kept {what}")
        except TimeoutError:
            pass  # still kept; the flush goes on in the background, or the next one writes them
        except Exception:
            log.exception("kept_flush_failed", what=what)  # the main loop (and the watchdog) must go on


async def _last_flush(state: DaemonState) -> None:
    """At a clean stop: what is still kept is written, or said to be lost (the process's memory holds it)."""
    await _flush_kept(state)
    alerts = 0 if state.alerts is None else len(state.alerts.pending)
    if alerts or state.audits.pending:
        log.error("kept_rows_lost", alerts=alerts, audit_events=len(state.audits.pending))


async def _main_loop(state: DaemonState, notifier: Notifier) -> None:
    settings = state.settings.daemon
    watchdog = notifier.watchdog_interval_sec
    tick = min(settings.health_interval_sec, watchdog if watchdog else settings.health_interval_sec)
    next_health = next_heartbeat = time.monotonic()
    withheld = False
    while not state.stop.is_set():
        withheld = await _watchdog(state, notifier, withheld)
        now = time.monotonic()
        if now >= next_health:
            next_health = now + settings.health_interval_sec
            if state.supervisor is not None:
                await state.supervisor.reconcile_once()
            await _flush_kept(state)
        if now >= next_heartbeat:
            next_heartbeat = now + settings.heartbeat_sec
            _beat(state, running=True, stalled=withheld)
            slots = state.supervisor.slots.values() if state.supervisor is not None else []
            states = {slot.pair: slot.state for slot in slots}
            log.info("heartbeat", run_id=state.run_id, pairs=states, uptime_sec=round(now - state.started_monotonic))
            notifier.status(f"run {state.run_id}: " + ", ".join(f"{p} {s}" for p, s in states.items()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stop.wait(), tick)
