"""`uv run python -m reliability [--short] [--only NAME ...] [--trials N] [--out FILE]`

Runs the scenarios in order and writes their figures to docs/reliability.md (or `--out`); exits 1 when
any scenario failed. The full plan takes hours (100 `kill -9` trials, two 60 s outages, 24 replayed
hours of soak); `--short` is the form CI runs, minutes long. Needs ../shared/data/candles.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from reliability.report import write_report
from reliability.scenario import SHORT, SHORT_SCENARIOS, Context, Plan, Result, timed

REPO = Path(__file__).resolve().parents[1]
NAMES = ("fuzz", "kill9", "outage", "storms", "soak")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short plan (what CI runs)")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="these scenarios only")
    parser.add_argument("--trials", type=int, help="kill -9 trials (default 100; 1 with --short)")
    parser.add_argument("--soak-hours", type=float, help="replayed hours of the soak (default 24)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "candles")
    parser.add_argument("--work", type=Path, help="where the scenarios' files go (default: a temporary directory)")
    args = parser.parse_args(argv)
    if not (args.shared / "BINANCE_BTCUSDT_1m.csv").exists():
        print(f"reliability: the real candles are not in {args.shared} (../shared/data/candles)", file=sys.stderr)
        return 78
    plan = SHORT if args.short else Plan()
    if args.trials is not None:
        plan = dataclasses.replace(plan, trials=args.trials)
    if args.soak_hours is not None:
        plan = dataclasses.replace(plan, soak_hours=args.soak_hours)
    logging.disable(logging.WARNING)  # the boundaries' own warnings about what they refuse
    _quiet_structlog()
    work = args.work or Path(tempfile.mkdtemp(prefix="reliability-"))
    context = Context(plan, work, args.shared)
    from reliability import daemon_scenarios, fuzz

    scenarios = {
        "fuzz": fuzz.fuzz,
        "kill9": daemon_scenarios.kill9,
        "outage": daemon_scenarios.outage,
        "storms": daemon_scenarios.storms,
        "soak": daemon_scenarios.soak,
    }
    results: list[Result] = []
    for name in args.only or (SHORT_SCENARIOS if args.short else NAMES):
        print(f"reliability: {name} ...", flush=True)
        result = timed(name, scenarios[name], context)
        verdict = "passed" if result.passed else "FAILED: " + "; ".join(result.failures)
        print(f"reliability: {name} {verdict} ({result.seconds:.0f} s)", flush=True)
        results.append(result)
    write_report(args.out, plan, results, _describe_machine(), short=args.short)
    print(f"reliability: figures in {args.out}")
    return 0 if all(result.passed for result in results) else 1


def _quiet_structlog() -> None:
    from observability import configure_logging

    configure_logging("critical", "json", stream=open(os.devnull, "w"))  # noqa: SIM115 (for the process)


def _describe_machine() -> dict[str, str]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit.stdout.strip() or "?",
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
    }


if __name__ == "__main__":
    sys.exit(main())
