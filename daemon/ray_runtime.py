"""Starting and stopping Ray for the daemon: a local Ray sized for the machine (or a cluster address),
no dashboard unless asked, worker output kept out of the daemon's log stream (workers send their log
lines through the log socket instead, in the daemon's format), and Ray's own logger routed through ours:
one format, and its start-up narration and deprecation notices filtered out (`observability.logs`)."""

from __future__ import annotations

import contextlib
import os

import psutil
import ray

from config import Settings
from observability import adopt_library_loggers, get_logger

log = get_logger("tradingd.daemon")


NODE_START_ATTEMPTS = 3
NODE_TIMED_OUT = "timed out during startup"
"""Ray gives a new local node a fixed 30 s to register with its GCS (`ray/_private/node.py`); on a loaded
2-core machine the raylet can take longer. That failure leaves nothing running once `_stop_children` has
run, so it is retried (a few times, then raised)."""


def start_ray(settings: Settings) -> None:
    """Start (or join) Ray for this process: the daemon, and `train`/`evaluate` before RLlib starts its
    own, so they join `ray.address` when one is configured."""
    if ray.is_initialized():
        return
    adopt_library_loggers()  # Ray gave its logger a stderr handler of its own when it was imported
    options = settings.ray
    for attempt in range(1, NODE_START_ATTEMPTS + 1):
        try:
            if options.address:
                ray.init(address=options.address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(
                    num_cpus=options.num_cpus or os.cpu_count() or 1,
                    include_dashboard=options.include_dashboard,
                    log_to_driver=False,
                    configure_logging=False,
                )
            break
        except BaseException as error:
            # A local Ray that failed part-way (its node timing out on a loaded machine) leaves what it had
            # started (gcs_server, raylet, its agents) with no handle to stop it: those are this process's
            # children, the only ones it has while Ray starts (the embedded PostgreSQL is detached).
            if not options.address:
                _stop_children()
            retry = not options.address and NODE_TIMED_OUT in str(error) and attempt < NODE_START_ATTEMPTS
            if not retry:
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()
            log.warning("ray_start_retried", attempt=attempt, of=NODE_START_ATTEMPTS, error=str(error))
    log.info("ray_started", address=options.address or "local", resources=ray.cluster_resources())


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


def _stop_children(grace_sec: float = 5.0) -> None:
    children = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.name() != "postgres":  # never the database, should it ever be a child
                children.append(child)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace_sec)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    if children:
        log.warning("ray_start_failed", stopped=[child.pid for child in children])
