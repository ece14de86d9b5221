"""Running `tradingd` one-shot commands as processes, for the e2e tests."""

from __future__ import annotations

import json
import shutil
import subprocess

TRADINGD = shutil.which("tradingd")


def tradingd(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    assert TRADINGD is not None
    return subprocess.run([TRADINGD, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def build_eth_dataset(env: dict[str, str], from_ms: int, to_ms: int) -> dict[str, object]:
    """`tradingd dataset build` of ETH-USDT 1m v1 over [from_ms, to_ms): the printed dataset record."""
    built = tradingd(
        env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--feature-set", "v1",
        "--from", str(from_ms), "--to", str(to_ms),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    record: dict[str, object] = json.loads(built.stdout)
    return record
