"""The transport of the daemon's unix control socket: accept connections, read request lines, run the
command handler, write one answer line per request, in order.

The command handlers live elsewhere and arrive as one callable; this module owns everything around them:
the socket file (mode 0600 before anyone can connect, a stale file replaced, a live daemon never
displaced), protocol errors, authorisation, auditing, and making sure no handler can take the server down.
Each connection is served by its own task, so a slow command for one client never delays another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from daemon.control_protocol import (
    INTERNAL,
    LINE_TOO_LONG,
    MAX_LINE_BYTES,
    CommandError,
    ControlRequest,
    ProtocolError,
    encode_response,
    error,
    ok,
    parse_request,
)
from observability import get_logger
from storage.private_dirs import make_private_dirs

Handler = Callable[[ControlRequest], Awaitable[Mapping[str, object]]]
"""Runs one command and returns the fields of its success answer; raises `CommandError` to refuse it."""

AuditSink = Callable[[ControlRequest, str, str | None], Awaitable[None]]
"""Records (request, outcome, detail); outcome is "accepted", "rejected" or "failed"."""

ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"
FAILED: Final = "failed"

INTERNAL_ERROR_MESSAGE: Final = "internal error, see the daemon log"
MAX_SOCKET_PATH_BYTES: Final = 107  # sun_path is 108 bytes, with the terminating NUL
_PROBE_TIMEOUT_SEC: Final = 2.0
_ANSWER_GRACE_SEC: Final = 2.0
"""How long `stop()` lets a command already running finish and write its answer (`shutdown` itself, above
all: without it, a daemon with nothing to stop closed the socket before `ctl shutdown` got its answer)."""
_LOGGED_EXCERPT_CHARS: Final = 200
_TOKEN_FIELD = re.compile(r'("token"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\s]*)')

log = get_logger("tradingd.control")


class ControlSocketError(Exception):
    """The control socket cannot be set up at its path."""


class ControlSocketInUseError(ControlSocketError):
    """Another process (most likely a running daemon) answers on the control socket's path."""


@dataclass(frozen=True)
class PeerCredentials:
    """Who is on the other end, from SO_PEERCRED; None where the platform does not say."""

    pid: int | None
    uid: int | None


@dataclass(eq=False)  # hashed by identity, to be kept in a set
class _Connection:
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    """Set while no command is running on this connection (clear from reading a request to its answer)."""


class ControlServer:
    """The control socket's server. `start()` once, `stop()` once; requests are answered in between."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        known_commands: Collection[str],
        *,
        token: str | None,
        audit: AuditSink | None = None,
    ) -> None:
        self._path = path
        self._handler = handler
        self._known_commands = frozenset(known_commands)
        self._token = token
        self._audit = audit
        self._server: asyncio.Server | None = None
        self._socket_identity: tuple[int, int] | None = None
        self._connections: set[_Connection] = set()

    @property
    def path(self) -> Path:
        return self._path

    @property
    def clients(self) -> int:
        """Connections currently open."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and listen. A socket file nobody answers on (left by a daemon that died) is replaced; one a
        live process answers on raises `ControlSocketInUseError`; anything else at the path is left alone
        and raises `ControlSocketError`."""
        if self._server is not None:
            raise RuntimeError("the control server is already started")
        path = self._path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
            raise ControlSocketError(
                f"control socket path {path} is longer than the {MAX_SOCKET_PATH_BYTES} bytes a unix socket "
                "path may have; choose a shorter control.socket_path"
            )
        if not path.parent.exists():
            # Only a directory we create gets our mode; an existing one (systemd's RuntimeDirectory) is left as is.
            make_private_dirs(path.parent)
        await self._remove_stale_socket()
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE_BYTES + 1)
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        log.info("control_socket_listening", path=str(path), token_required=self._token is not None)

    async def stop(self) -> None:
        """Stop listening, let a command already running answer (for up to a few seconds), drop every
        connection (a command still running then is cancelled) and remove the socket file, unless another
        process has replaced it since."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self._connections)
        running = [connection.idle.wait() for connection in connections if not connection.idle.is_set()]
        if running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*running), _ANSWER_GRACE_SEC)
        for connection in connections:
            connection.writer.transport.abort()
            connection.task.cancel()
        await asyncio.gather(*(connection.task for connection in connections), return_exceptions=True)
        await server.wait_closed()
        self._unlink_own_socket()
        log.info("control_socket_closed", path=str(self._path))

    async def _remove_stale_socket(self) -> None:
        path = self._path
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlSocketError(f"{path} exists and is not a socket; refusing to replace it")
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT_SEC):
                _reader, writer = await asyncio.open_unix_connection(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            # Nobody listens: the file is what a daemon that did not stop cleanly left behind.
            path.unlink(missing_ok=True)
            log.info("control_socket_stale_removed", path=str(path))
            return
        except TimeoutError:
            raise ControlSocketInUseError(
                f"{path} is in use: a process accepts connections on it but did not finish connecting"
            ) from None
        except OSError as exc:
            raise ControlSocketError(f"cannot check whether {path} is in use: {exc}") from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise ControlSocketInUseError(f"{path} is in use: another process (a running daemon?) answers on it")

    def _bind(self) -> socket.socket:
        """Bind, restrict the file to its owner, and only then listen (in `start_unix_server`).

        Connecting to a bound socket that is not yet listening is refused, so no client can ever connect
        while the file still has the umask's mode; and unlike narrowing the umask around the bind, this
        does not change the mode of files other threads of the process create meanwhile.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self._path))
            os.chmod(self._path, 0o600)
            sock.setblocking(False)
            info = self._path.stat()
        except BaseException:
            sock.close()
            raise
        self._socket_identity = (info.st_dev, info.st_ino)
        return sock

    def _unlink_own_socket(self) -> None:
        identity, self._socket_identity = self._socket_identity, None
        try:
            info = self._path.lstat()
        except FileNotFoundError:
            return
        if identity == (info.st_dev, info.st_ino):
            self._path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_unix_server runs each connection's callback in its own task
        connection = _Connection(task, writer)
        connection.idle.set()
        self._connections.add(connection)
        peer = peer_credentials(writer)
        clog = log.bind(peer_pid=peer.pid, peer_uid=peer.uid)
        clog.debug("control_client_connected")
        try:
            await self._answer_requests(reader, writer, connection, clog)
        except ConnectionError:
            pass  # the client went away; nothing to tell anyone
        except Exception:
            clog.exception("control_connection_failed")  # a bug here; the server and other clients carry on
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            clog.debug("control_client_disconnected")

    async def _answer_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection, clog: Any
    ) -> None:
        while True:
            try:
                line = await reader.readline()
            except ValueError:
                # The line overran the reader's limit; the rest of it is still in flight, and there is no
                # telling where the next request starts, so answer and hang up.
                clog.warning("control_request_refused", code=LINE_TOO_LONG, limit_bytes=MAX_LINE_BYTES)
                await _send(writer, error(LINE_TOO_LONG, f"request line longer than {MAX_LINE_BYTES} bytes"))
                return
            if not line:
                return  # end of stream
            if not line.strip():
                continue
            try:
                request = parse_request(line, self._token, self._known_commands)
            except ProtocolError as exc:
                fields: dict[str, object] = {"code": exc.code}
                if exc.code != LINE_TOO_LONG:
                    fields["line"] = self._excerpt(line)
                clog.warning("control_request_refused", **fields)
                await _send(writer, error(exc.code, exc.message, exc.request_id))
                if exc.code == LINE_TOO_LONG:
                    return
                continue
            connection.idle.clear()
            try:
                writer.write(await self._run(request, clog))
                await writer.drain()
            finally:
                connection.idle.set()

    async def _run(self, request: ControlRequest, clog: Any) -> bytes:
        """Run one command and encode its answer. Never raises except on cancellation of this connection."""
        rlog = clog.bind(cmd=request.cmd, request_id=request.request_id)
        try:
            fields = await self._handler(request)
        except CommandError as exc:
            rlog.info("control_command_rejected", code=exc.code, reason=exc.message)
            await self._record(request, REJECTED, f"{exc.code}: {exc.message}", rlog)
            return _encode_or_internal(error(exc.code, exc.message, request.request_id), request, rlog)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this connection is being stopped
            return await self._failed(request, rlog)  # the handler itself raised CancelledError
        except Exception:
            return await self._failed(request, rlog)
        rlog.info("control_command_accepted", args=sorted(request.args))
        await self._record(request, ACCEPTED, None, rlog)
        try:
            return encode_response(ok(request, **fields))
        except Exception:
            # The command took effect (and is audited as such); only its answer cannot be written.
            rlog.exception("control_command_failed", stage="encoding the answer")
            return encode_response(error(INTERNAL, INTERNAL_ERROR_MESSAGE, request.request_id))

    async def _failed(self, request: ControlRequest, rlog: Any) -> bytes:
        rlog.exception("control_command_failed")
        await self._record(request, FAILED, "unexpected error, see the daemon log", rlog)
        return encode_response(error(INTERNAL, INTERNAL_ERROR_MESSAGE, request.request_id))

    async def _record(self, request: ControlRequest, outcome: str, detail: str | None, rlog: Any) -> None:
        """Audit one outcome. An audit failure is logged, not answered: the command has already run, and
        telling the operator it failed would be wrong."""
        if self._audit is None:
            return
        try:
            await self._audit(request, outcome, detail)
        except Exception:
            rlog.exception("control_audit_failed", outcome=outcome)

    def _excerpt(self, line: bytes) -> str:
        """The start of a refused line for the log, with any token value masked (a wrong token may be an
        old or mistyped real one, and a right one may come with another mistake)."""
        text = line[: _LOGGED_EXCERPT_CHARS * 4].decode("utf-8", errors="replace").rstrip("\r\n")
        text = _TOKEN_FIELD.sub(r"\1***", text)
        if self._token:
            text = text.replace(self._token, "***")
        return text[:_LOGGED_EXCERPT_CHARS]


def peer_credentials(writer: asyncio.StreamWriter) -> PeerCredentials:
    """The connecting process's pid and uid (SO_PEERCRED, Linux); requests are accepted from any uid that
    could open the 0600 socket, so these are for the logs."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return PeerCredentials(None, None)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
    except (OSError, struct.error):
        return PeerCredentials(None, None)
    return PeerCredentials(pid, uid)


async def _send(writer: asyncio.StreamWriter, payload: Mapping[str, object]) -> None:
    writer.write(encode_response(payload))
    await writer.drain()


def _encode_or_internal(payload: Mapping[str, object], request: ControlRequest, rlog: Any) -> bytes:
    try:
        return encode_response(payload)
    except Exception:
        rlog.exception("control_command_failed", stage="encoding the answer")
        return encode_response(error(INTERNAL, INTERNAL_ERROR_MESSAGE, request.request_id))
