"""One log stream for the whole daemon: Ray workers send their rendered log lines to the daemon over a
unix datagram socket, and the daemon writes them to its own output (stdout, hence journald).

Ray would otherwise keep worker output in its session files, or print it on the driver prefixed with
`(ActorName pid=...)`, which is no longer JSON. A line that cannot be sent (the daemon is gone) goes
to the worker's stderr, which Ray keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from pathlib import Path
from typing import TextIO

MAX_DATAGRAM = 60_000
"""Lines longer than this are cut (a datagram must fit the socket's buffer)."""


class DatagramLines:
    """A write-only text stream that sends each complete line as one datagram."""

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.settimeout(1.0)
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._send(line)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self._socket.close()

    def _send(self, line: str) -> None:
        data = line.encode("utf-8", "replace")[:MAX_DATAGRAM]
        try:
            self._socket.sendto(data, self._path)
        except OSError:
            sys.stderr.write(line + "\n")


class LogSink:
    """The daemon's end: receives worker lines and writes them, whole, to `output`."""

    def __init__(self, path: Path, output: TextIO) -> None:
        self.path = path
        self._output = output
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        output = self._output

        class _Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                output.write(data.decode("utf-8", "replace") + "\n")
                output.flush()

        transport, _ = await loop.create_datagram_endpoint(_Protocol, sock=sock)
        self._transport = transport

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
