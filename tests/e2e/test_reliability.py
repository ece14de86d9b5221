"""The reliability suite's short form, as CI runs it: `python -m reliability --short` (issue 16). It
fuzzes every boundary, kills the daemon at a random moment, storms the venue with the secrets set to
markers and sweeps every file and table for them; any duplicate, lost row, crash or secret fails it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(1500)
REPO = Path(__file__).resolve().parents[2]


def test_the_short_reliability_suite_passes(tmp_path: Path, shared_candles: Path) -> None:
    report = tmp_path / "reliability.md"
    done = subprocess.run(
        [sys.executable, "-m", "reliability", "--short", "--out", str(report), "--work", str(tmp_path / "work"),
         "--shared", str(shared_candles)],
        cwd=REPO, capture_output=True, text=True, timeout=1400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    text = report.read_text()
    assert "FAILED" not in text
    assert '"found": 0' in text, "the secrets sweep ran and found nothing"
    for scenario in ("fuzz", "kill9", "storms"):
        assert f"| {scenario} | passed |" in text
