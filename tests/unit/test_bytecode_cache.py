"""The test session's bytecode cache (tests/conftest.py): where the environment forbids writing bytecode
(`PYTHONDONTWRITEBYTECODE`, as this project's machines set), a process a test starts compiles a module
once for the session, into a temporary prefix, never next to the source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_a_child_process_caches_its_bytecode_in_the_sessions_prefix_only(tmp_path: Path) -> None:
    prefix = os.environ.get("PYTHONPYCACHEPREFIX")
    if prefix is None:
        assert not os.environ.get("PYTHONDONTWRITEBYTECODE"), "the session forbids bytecode and gives no prefix"
        pytest.skip("the environment allows bytecode beside the source: Python's own caches apply")
    assert not os.environ.get("PYTHONDONTWRITEBYTECODE"), "children would still compile every import"
    module = tmp_path / "cached_module_probe.py"
    module.write_text("VALUE = 42\n")
    done = subprocess.run(
        [sys.executable, "-c", "import cached_module_probe; print(cached_module_probe.VALUE)"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "42"
    cached = list(Path(prefix).joinpath(*tmp_path.parts[1:]).glob("cached_module_probe.*.pyc"))
    assert len(cached) == 1, sorted(Path(prefix).rglob("cached_module_probe*"))
    assert not (tmp_path / "__pycache__").exists()
