"""Starting and stopping Ray for the daemon: a local Ray sized for the machine (or a cluster address),
no dashboard unless asked, worker output kept out of the daemon's log stream (workers send their log
lines through the log socket instead, in the daemon's format), and Ray's own logger routed through ours:
one format, and its start-up narration and deprecation notices filtered out (`observability.logs`)."""

from __future__ import annotations

import os

import ray

from config import Settings
from observability import adopt_library_loggers, get_logger

log = get_logger("tradingd.daemon")


def start_ray(settings: Settings) -> None:
    if ray.is_initialized():
        return
    adopt_library_loggers()  # Ray gave its logger a stderr handler of its own when it was imported
    options = settings.ray
    if options.address:
        ray.init(address=options.address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=options.num_cpus or os.cpu_count() or 1,
            include_dashboard=options.include_dashboard,
            log_to_driver=False,
            configure_logging=False,
        )
    log.info("ray_started", address=options.address or "local", resources=ray.cluster_resources())


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
