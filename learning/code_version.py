"""Which code produced an artifact: the package version, and the git commit when run from a checkout."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


@cache
def code_version() -> str:
    try:
        package = version("tradingd")
    except PackageNotFoundError:
        package = "unknown"
    if not (_ROOT / ".git").exists():
        return package
    try:
        commit = subprocess.run(
            ["git", "-C", str(_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+g{commit}" if commit else package
