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


def configure_logging(
    level: str = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger. Safe to call again (e.g. once config is loaded).

    `secrets` are the plain values to scrub from every event; they add to those already registered.
    """
    output = stream if stream is not None else sys.stdout
    register_secrets(secrets)
    use_json = fmt == "json" or (fmt == "auto" and not _is_terminal(output))
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
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    logging.captureWarnings(True)


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
