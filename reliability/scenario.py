"""What a scenario is given and what it gives back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Plan:
    """How much of each scenario to run (`--short` is the form CI runs)."""

    trials: int = 100
    outage_sec: float = 60.0
    outage_modes: tuple[str, ...] = ("stopped", "paused")
    fuzz_inputs: int = 10_000
    soak_hours: float = 24.0
    soak_speed: int = 240
    seed: int = 16


SHORT = Plan(trials=1, outage_sec=20.0, outage_modes=("paused",), fuzz_inputs=1_000, soak_hours=0.5, soak_speed=240)
SHORT_SCENARIOS = ("fuzz", "kill9", "storms")
"""What `--short` runs (CI), minutes long: the outage has its own e2e test (tests/e2e/test_database_outage.py)
and the soak is long by nature; `--short --only outage soak` runs their short forms."""


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class Context:
    plan: Plan
    work: Path
    shared_candles: Path


Scenario = Callable[[Context], Result]


def timed(name: str, scenario: Callable[[Context, Result], None], context: Context) -> Result:
    """Run one scenario; an exception it raises is a failure of it (the suite goes on)."""
    result = Result(name)
    began = time.monotonic()
    try:
        scenario(context, result)
    except Exception as error:  # a scenario that broke is reported, never hides the others
        result.failures.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:500])
    result.seconds = round(time.monotonic() - began, 1)
    return result
