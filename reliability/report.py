"""docs/reliability.md: what ran, on what, and each scenario's figures and verdict."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reliability.scenario import Plan, Result

INTRO = """# Reliability

Written by `uv run python -m reliability` (the full plan; `--short` is the form CI runs through
`tests/e2e/test_reliability.py`). Each scenario drives the real daemon through the e2e harness, or fuzzes
a boundary in process, and fails on any candle decided twice or skipped, any client order id used twice,
any crash, restart or orphaned process it does not expect, or any secret found. See `reliability/` for
what each does.
"""


def write_report(path: Path, plan: Plan, results: list[Result], machine: dict[str, str], *, short: bool) -> None:
    lines = [INTRO, f"## Run of {machine['date']} (commit {machine['commit']}, {machine['machine']})", ""]
    lines.append(
        f"Plan: {'short' if short else 'full'}: " + ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(plan).items())
    )
    lines += ["", "| scenario | verdict | seconds |", "|---|---|---|"]
    lines += [f"| {r.name} | {'passed' if r.passed else 'FAILED'} | {r.seconds:.0f} |" for r in results]
    for result in results:
        lines += ["", f"### {result.name}", ""]
        lines += [f"- {key}: {_show(value)}" for key, value in result.figures.items()]
        lines += [f"- **failure**: {failure}" for failure in result.failures]
    path.write_text("\n".join(lines) + "\n")


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
