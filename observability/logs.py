"""Structured logging: JSON lines for journald and machines, readable lines on a terminal.

Every event passes through the same chain, whether it comes from structlog or from a library's
stdlib logger (asyncpg, ray, websockets): context from contextvars, level, a UTC ISO timestamp,
exceptions rendered to text, and then the redactor, last before rendering, so that no secret
reaches the output even inside an exception message or a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from observability.redaction import Redactor

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_redactor = Redactor()
_active_format: Literal["json", "console"] = "json"

RAY_LOGGER = "ray"
_QUIET_MESSAGES: tuple[tuple[str, str], ...] = (
    # ray.init off the main thread (the daemon starts Ray in a thread, and handles SIGTERM in its own
    # event loop): Ray says it did not install its SIGTERM handler, which is what we want.
    ("ray._private.worker", "SIGTERM handler is not set"),
)


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger. Safe to call again (e.g. once config is loaded).

    `secrets` are the plain values to scrub from every event; they add to those already registered.
    """
    global _active_format
    output = stream if stream is not None else sys.stdout
    register_secrets(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not _is_terminal(output))
    _active_format = "json" if use_json else "console"
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(output), exception_formatter=_plain_exception)
    )
    chain = shared_processors()
    numeric_level = _LEVELS[level]
    structlog.configure(
        processors=[*chain, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *chain],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(LibraryNoise())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    logging.captureWarnings(True)
    adopt_library_loggers()


def active_format() -> Literal["json", "console"]:
    """The format this process renders its log lines in (`auto` resolved), for the Ray workers whose
    lines the daemon forwards to its own stream: one stream, one format."""
    return _active_format


class LibraryNoise(logging.Filter):
    """Keeps libraries' chatter out of our stream without hiding their problems: Ray's INFO lines (its
    start-up narration), RLlib's API deprecation notices (`ray._common.deprecation`, warnings about our
    library's own calls, not about anything an operator can change) and the messages in `_QUIET_MESSAGES`.
    Every other warning and every error of theirs passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name != RAY_LOGGER and not name.startswith(RAY_LOGGER + "."):
            return True
        if record.levelno >= logging.ERROR:
            return True
        if record.levelno < logging.WARNING or name == "ray._common.deprecation":
            return False
        message = record.getMessage()
        return not any(name == logger and text in message for logger, text in _QUIET_MESSAGES)


def adopt_library_loggers() -> None:
    """Route Ray's logger through ours (one format, the redactor, `LibraryNoise`). Importing Ray gives
    its logger a handler of its own, on stderr, and stops it from propagating; call this again after
    `import ray` (the daemon's Ray start-up, a worker's logging set-up, `train`) when Ray arrived later."""
    if "ray" not in sys.modules:
        return  # Ray sets its logger up when it is imported; nothing to adopt yet
    ray_logger = logging.getLogger(RAY_LOGGER)
    for existing in list(ray_logger.handlers):
        ray_logger.removeHandler(existing)
    ray_logger.propagate = True


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        _redact,
    ]


def register_secrets(secrets: Iterable[str]) -> None:
    _redactor.add_secrets(secrets)


@contextmanager
def log_context(
    *,
    pair: str | None = None,
    run_id: str | None = None,
    trace_id: str | None = None,
    actor: str | None = None,
    **extra: Any,
) -> Iterator[None]:
    """Bind context (pair, run_id, trace_id, actor, ...) to every event logged inside the block,
    including in tasks started inside it (contextvars are copied into new asyncio tasks)."""
    values = {"pair": pair, "run_id": run_id, "trace_id": trace_id, "actor": actor, **extra}
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield


def get_logger(name: str | None = None, **initial: Any) -> Any:
    logger = structlog.get_logger(name) if name else structlog.get_logger()
    return logger.bind(**initial) if initial else logger


_LEADING_KEYS = ("timestamp", "level", "event", "logger")


def _redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Scrub secrets, and put the keys an operator scans for first in every line."""
    clean = _redactor.redact_event(event_dict)
    ordered = {key: clean.pop(key) for key in _LEADING_KEYS if key in clean}
    ordered.update(clean)
    return ordered


def _plain_exception(stream: TextIO, exc_info: Any) -> None:
    """The console renderer's exception hook; `format_exc_info` has already rendered (and the
    redactor scrubbed) the text, so this only runs for events that still carry raw exc_info."""
    import traceback

    stream.write(_redactor.redact_text("".join(traceback.format_exception(*exc_info))))


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
