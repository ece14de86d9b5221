"""Directories the daemon creates are its owner's alone (0700), whatever the umask; existing ones are left."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.private_dirs import make_private_dirs


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0o002)  # the most permissive umask in common use: would give 0775
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_level_created_is_0700_and_an_existing_parent_is_left_as_it_is(tmp_path: Path, open_umask: None) -> None:
    os.chmod(tmp_path, 0o755)  # noqa: S103 (a shared parent, as a home directory is)
    target = tmp_path / "share" / "tradingd" / "postgres"
    make_private_dirs(target)
    assert [mode(p) for p in (target, target.parent, target.parent.parent)] == [0o700] * 3
    assert mode(tmp_path) == 0o755, "not ours: left alone"
    os.chmod(target, 0o750)  # noqa: S103 (an operator opening it to a group)
    make_private_dirs(target)  # it exists now: an operator's later choice stands
    assert mode(target) == 0o750


def test_a_file_in_the_way_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        make_private_dirs(tmp_path / "file" / "data")
