"""A client of the daemon's control socket (what `tradingd ctl` uses).

One connection, requests sent one at a time, each answer matched to its request by id. The answer is
returned as the daemon wrote it; the caller looks at `ok`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from daemon.control_protocol import LINE_TOO_LONG, RESERVED_KEYS

_MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024  # a status of many pairs is still far below this


class ControlClientError(Exception):
    """The exchange with the daemon went wrong (not a refused command: that is an answer with ok false)."""


class ControlUnavailableError(ControlClientError):
    """The daemon cannot be reached on its control socket, or dropped the connection before answering."""


class ControlClient:
    """`async with ControlClient(path, token) as client: answer = await client.request("pause", pair=...)`.

    `timeout_sec` bounds each `request` (connecting included) and raises `TimeoutError`. After a timeout or
    a dropped connection the connection is closed; the next request opens a new one (a request is never
    re-sent on its own).
    """

    def __init__(self, path: Path, token: str | None, timeout_sec: float = 30.0) -> None:
        self._path = path
        self._token = token
        self._timeout_sec = timeout_sec
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        async with asyncio.timeout(self._timeout_sec):
            await self._connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):  # the daemon may already have hung up
                await writer.wait_closed()

    async def request(self, cmd: str, /, **args: object) -> dict[str, object]:
        """Send one command with `args` and return the daemon's answer."""
        clash = sorted(RESERVED_KEYS & args.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)} cannot be a command argument")
        request_id = f"c{next(self._ids)}"
        message: dict[str, object] = {"cmd": cmd, **args, "id": request_id}
        if self._token is not None:
            message["token"] = self._token
        line = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout_sec):
                    return await self._exchange(line.encode("utf-8") + b"\n", request_id)
            except BaseException:
                await self.close()  # a late answer would otherwise be read as the next request's
                raise

    async def _exchange(self, data: bytes, request_id: str) -> dict[str, object]:
        reader, writer = await self._connect()
        try:
            writer.write(data)
            await writer.drain()
            answer = await reader.readline()
        except ConnectionError as exc:
            raise ControlUnavailableError(f"lost the connection to the daemon on {self._path}: {exc}") from exc
        except ValueError as exc:
            raise ControlClientError(f"the daemon's answer is longer than {_MAX_ANSWER_BYTES} bytes") from exc
        if not answer.endswith(b"\n"):
            raise ControlUnavailableError(f"the daemon on {self._path} closed the connection without answering")
        try:
            payload = json.loads(answer)
        except ValueError as exc:
            raise ControlClientError(f"the daemon's answer is not JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ControlClientError("the daemon's answer is not a JSON object")
        # An error about the line itself (e.g. too long) may come without the id; any other id is a bug.
        if payload.get("id") not in (request_id, None):
            raise ControlClientError(f"the daemon answered request {payload.get('id')!r}, expected {request_id!r}")
        if payload.get("code") == LINE_TOO_LONG:
            await self.close()  # the daemon hangs up after this one
        return payload

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None:
            if not self._reader.at_eof():
                return self._reader, self._writer
            await self.close()  # the daemon hung up since the last answer; nothing was sent yet, so reconnect
        where = f"the daemon's control socket {self._path}"
        try:
            reader, writer = await asyncio.open_unix_connection(str(self._path), limit=_MAX_ANSWER_BYTES)
        except FileNotFoundError:
            raise ControlUnavailableError(f"is the daemon running? socket {self._path} does not exist") from None
        except ConnectionRefusedError:
            raise ControlUnavailableError(
                f"is the daemon running? nothing accepts connections on socket {self._path} (a stale file)"
            ) from None
        except PermissionError:
            raise ControlUnavailableError(f"permission denied on {where}; run as the user the daemon runs as") from None
        except OSError as exc:
            raise ControlUnavailableError(f"cannot connect to {where}: {exc}") from exc
        self._reader, self._writer = reader, writer
        return reader, writer


def call(path: Path, token: str | None, cmd: str, /, timeout_sec: float = 30.0, **args: object) -> dict[str, object]:
    """Send one command and return the answer, from synchronous code (opens and closes its own loop)."""

    async def once() -> dict[str, object]:
        async with ControlClient(path, token, timeout_sec) as client:
            return await client.request(cmd, **args)

    return asyncio.run(once())
