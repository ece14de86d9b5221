"""Logging (and later metrics) shared by the daemon, the actors in their Ray workers, and the CLI."""

from observability.logs import (
    active_format,
    adopt_library_loggers,
    configure_logging,
    get_logger,
    log_context,
    register_secrets,
)

__all__ = [
    "active_format",
    "adopt_library_loggers",
    "configure_logging",
    "get_logger",
    "log_context",
    "register_secrets",
]
