"""A PostgreSQL server of one test's own that the test can stop and start again (an outage), at the same
address: each start is a process holding the embedded server (`storage.embedded`), and closing its
stdin stops the server (the last handle released)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.e2e.daemon_harness import wait_for

SERVE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from storage.embedded import EmbeddedPostgres\n"
    "server = EmbeddedPostgres(Path(sys.argv[1]))\n"
    "print(server.start(), flush=True)\n"
    "sys.stdin.read()\n"
    "server.stop()\n"
)


class StoppablePostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""
        self._holder: subprocess.Popen[str] | None = None

    def start(self) -> str:
        assert self._holder is None, "already running"
        self._holder = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(self.directory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        url = self._holder.stdout.readline().strip()
        if not url.startswith("postgresql://"):
            raise AssertionError(f"the server did not start (exit {self._holder.wait(timeout=60)})")
        assert self.url in ("", url), "a restarted server answers at the same address"
        self.url = url
        return url

    def stop(self) -> None:
        """Stopped as an operator stops it (pg_ctl stop, fast: open connections are cut)."""
        holder, self._holder = self._holder, None
        assert holder is not None
        assert holder.stdin is not None
        assert holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=120)
        holder.stdout.close()
        pid_file = self.directory / "postgres" / "postmaster.pid"
        wait_for(lambda: not pid_file.exists(), 60, "the server to stop")

    def processes(self) -> list[psutil.Process]:
        """The server's postmaster and every backend under it."""
        pid = int((self.directory / "postgres" / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def pause(self) -> None:
        """Frozen (SIGSTOP): connections stay open and nothing answers, as a hung server or a lost network."""
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):  # a backend that ended meanwhile
                process.suspend()

    def resume(self) -> None:
        for process in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()


@contextlib.contextmanager
def stoppable_postgres(directory: Path) -> Iterator[StoppablePostgres]:
    server = StoppablePostgres(directory)
    server.start()
    try:
        yield server
    finally:
        if server._holder is not None:
            server.stop()
