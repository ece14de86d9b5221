"""A dependency-free client for systemd's notify protocol (sd_notify(3)).

Under `Type=notify` systemd passes the path of a datagram socket in `NOTIFY_SOCKET`; the daemon sends
newline-separated `KEY=VALUE` lines to it: `READY=1` once started, `STATUS=...` for `systemctl status`,
`WATCHDOG=1` at least every `WatchdogSec=` (systemd passes it as `WATCHDOG_USEC`), `STOPPING=1` when
shutting down and `EXTEND_TIMEOUT_USEC=` to ask for more time in a long start-up or shutdown.

Notification is best effort by design: a failed send must never take the daemon down, so no method
raises on a send failure; the first failure of an outage is logged as `notify_failed`. Outside systemd
(no `NOTIFY_SOCKET`) every method is a no-op, so callers need no branches.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Self

import structlog

_log = structlog.get_logger("tradingd.systemd")

# systemd drops a whole notification that contains a NUL byte, or that is PIPE_BUF (4096) bytes or
# longer, so a bad STATUS= would also lose the READY=1 or STOPPING=1 sent with it. Status text is
# therefore kept to one line, without NULs, and well under that size.
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\x00]")
_MAX_STATUS_BYTES = 1024

# A datagram send only blocks when the receiver's queue is full (PID 1 hopelessly behind). Bound the
# wait so a stuck manager cannot stall the event loop for long; the send then fails and is logged.
_SEND_TIMEOUT_SEC = 0.5


def _clean_status(text: str) -> str:
    flat = _LINE_BREAKS.sub(" ", text)
    encoded = flat.encode("utf-8", errors="replace")
    if len(encoded) <= _MAX_STATUS_BYTES:
        return flat
    return encoded[:_MAX_STATUS_BYTES].decode("utf-8", errors="ignore")


def _socket_address(value: str) -> str:
    """`@name` is a socket in the abstract namespace, which the kernel spells with a leading NUL."""
    return "\0" + value[1:] if value.startswith("@") else value


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC when the watchdog applies to this process, as sd_watchdog_enabled(3) decides.

    systemd sets WATCHDOG_PID to the main process; children that inherit the environment (Ray
    workers, the embedded PostgreSQL) must not think the watchdog is theirs.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec


class Notifier:
    """Sends notifications to the service manager over `NOTIFY_SOCKET`; see the module docstring.

    Thread-safe; each method sends one datagram. The socket is opened on the first send and closed by
    `close()` (or leaving a `with` block); after that every method is a no-op.
    """

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        """`socket_path` as in NOTIFY_SOCKET (a path, or `@name` for the abstract namespace), or None
        for a no-op notifier; `watchdog_usec` as in WATCHDOG_USEC, None when the watchdog is off."""
        self._address = _socket_address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._socket: socket.socket | None = None
        self._closed = False
        self._failing = False
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        """A notifier for what systemd passed in the environment: NOTIFY_SOCKET, WATCHDOG_USEC and
        WATCHDOG_PID. Without NOTIFY_SOCKET (not started by systemd) it does nothing."""
        return cls(environ.get("NOTIFY_SOCKET") or None, _watchdog_usec(environ))

    @property
    def enabled(self) -> bool:
        """Whether a notify socket is configured."""
        return self._address is not None

    @property
    def watchdog_interval_sec(self) -> float | None:
        """How often to call `watchdog()`: half the watchdog timeout, as systemd recommends, so one late
        tick does not trip it. None when the watchdog is off."""
        if self._address is None or self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self, status: str | None = None) -> None:
        """Start-up is complete: `READY=1`, with `STATUS=` in the same datagram when given."""
        self._send("READY=1", status)

    def status(self, text: str) -> None:
        """The one-line status shown by `systemctl status`."""
        self._send(None, text)

    def watchdog(self) -> None:
        """Keep-alive: `WATCHDOG=1`, every `watchdog_interval_sec`."""
        self._send("WATCHDOG=1", None)

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun: `STOPPING=1`, with `STATUS=` when given."""
        self._send("STOPPING=1", status)

    def extend_timeout(self, usec: int) -> None:
        """Ask for `usec` more microseconds, from now, before the start or stop timeout fires.

        Raises ValueError for a negative `usec` (a programming error, unlike a send failure).
        """
        if usec < 0:
            raise ValueError(f"extend_timeout needs a non-negative number of microseconds, not {usec}")
        self._send(f"EXTEND_TIMEOUT_USEC={int(usec)}", None)

    def close(self) -> None:
        """Close the socket; later calls do nothing. Idempotent."""
        with self._lock:
            self._closed = True
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, state: str | None, status: str | None) -> None:
        if self._address is None:
            return
        lines = [state] if state else []
        if status is not None:
            lines.append(f"STATUS={_clean_status(status)}")
        message = "\n".join(lines).encode("utf-8")
        with self._lock:
            if self._closed:
                return
            try:
                if not self._address.startswith(("/", "\0")):
                    # As sd_notify(3) does: a relative path would silently name a socket in our cwd.
                    raise OSError(errno.EAFNOSUPPORT, "NOTIFY_SOCKET is neither an absolute path nor @name")
                if self._socket is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    sock.settimeout(_SEND_TIMEOUT_SEC)
                    self._socket = sock
                self._socket.sendto(message, self._address)
            except OSError as error:
                # Warn once per outage (the watchdog would otherwise log every tick); a later success
                # re-arms the warning.
                if not self._failing:
                    self._failing = True
                    _log.warning(
                        "notify_failed",
                        socket=self._address.replace("\0", "@", 1),
                        message=state or "STATUS",
                        error=str(error) or type(error).__name__,
                    )
            else:
                self._failing = False
