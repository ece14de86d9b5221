"""Directories only their owner may enter (0700): the data directory (the database cluster, artifacts,
reports, the control and log sockets). Only directories created here get the mode: an existing one
(a home directory, systemd's StateDirectory or RuntimeDirectory) is left as it is."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o700


def make_private_dirs(path: Path) -> None:
    """Create `path` and any missing parents, each 0700 whatever the umask; raises OSError."""
    missing: list[Path] = []
    here = path
    while not here.exists():
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE)
        except FileExistsError:  # created meanwhile by another process: not ours to change
            continue
        os.chmod(directory, PRIVATE)
