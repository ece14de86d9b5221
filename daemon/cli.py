"""The `tradingd` command line.

Configuration is loaded and validated once, before any command runs; an invalid or unsafe one
exits with EX_CONFIG (78) and a message naming the setting at fault. One-shot commands print their
results on stdout and log on stderr, so their output can be piped.

Start-up stays cheap: this module and the `add_*_commands` parser builders import no heavy library
(pandas, TA-Lib, Ray, torch, nautilus_trader, matplotlib, nor asyncpg, aiohttp, numpy); each
`run_*` function imports what its command needs, after checking its arguments. `--help` costs the
interpreter and argparse, `ctl` the configuration and the socket client (no logging set-up: it only
prints). tests/unit/test_cli_imports.py holds every command to this; benchmarks/cli_startup.py times it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from daemon import exit_codes
from daemon.cli_agents import add_agent_commands, run_agent_command
from daemon.cli_candles import add_candle_commands, run_candle_command
from daemon.cli_ctl import add_ctl_commands, run_ctl
from daemon.cli_datasets import add_dataset_commands, run_dataset_command
from daemon.cli_db import run_db_command
from daemon.cli_evaluation import add_evaluation_commands, run_evaluation_command
from daemon.cli_market import add_market_commands, run_backfill, run_ingest, run_retry_queue, run_simulator
from daemon.cli_runs import add_run_commands, run_run_command
from daemon.cli_secrets import add_secrets_commands

if TYPE_CHECKING:
    from config import Settings

SIGNALS_FIRST = frozenset({"run", "ingest"})
"""Commands that catch SIGTERM and SIGINT from the first instant and stop cleanly (`daemon.signals`)."""
QUIET_COMMANDS = frozenset({"config", "ctl", "secrets"})
"""Commands that print and never log: they skip the logging set-up (structlog costs 0.3 s to import)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradingd", description="RL trading daemon for BingX perpetual swaps")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file (default: $TRADINGD_CONFIG, else built-in defaults plus the environment)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("version", help="print the tradingd version")

    config_parser = commands.add_parser("config", help="inspect the configuration")
    config_commands = config_parser.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = config_commands.add_parser("check", help="validate and print the effective config, secrets redacted")
    check.add_argument("file", nargs="?", type=Path, help="config file to check (overrides --config)")

    db_parser = commands.add_parser("db", help="database schema and data hygiene")
    db_commands = db_parser.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    db_commands.add_parser("migrate", help="apply pending migrations (idempotent)")
    status = db_commands.add_parser("status", help="show mode and migrations; exits 1 when some are pending")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    export = db_commands.add_parser("export", help="export a table as JSON lines")
    export.add_argument("--table", required=True)
    export.add_argument("--out", required=True, metavar="FILE")
    importer = db_commands.add_parser("import", help="import JSON lines into a table, all or nothing")
    importer.add_argument("--table", required=True)
    importer.add_argument("file", metavar="FILE")
    importer.add_argument("--replace", action="store_true", help="delete the table's rows first (same transaction)")
    backup = db_commands.add_parser("backup", help="every table from one snapshot, with a manifest (while running)")
    backup.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new directory")
    restore = db_commands.add_parser("restore", help="load a backup into a fresh, migrated database, all or nothing")
    restore.add_argument("directory", type=Path, metavar="DIR")
    reset = db_commands.add_parser("reset", help="delete every row of a table")
    reset.add_argument("--table", required=True)
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_market_commands(commands)
    add_candle_commands(commands)
    add_dataset_commands(commands)
    add_agent_commands(commands)
    add_evaluation_commands(commands)
    run_parser = commands.add_parser(
        "run",
        help="run the daemon in the foreground (systemd Type=notify): paper-trade the configured pairs, "
        "with the control socket open",
    )
    run_parser.add_argument(
        "--resume-as-is",
        action="store_true",
        help="resume the active run as it was started even where the configuration now differs",
    )
    commands.add_parser(
        "liveness",
        help="judge the daemon from outside (its heartbeat file) and alert through alerts.* on a change; "
        "exits 1 unless it is alive or stopped cleanly (for a systemd timer)",
    )
    add_run_commands(commands)
    add_ctl_commands(commands)
    add_secrets_commands(commands)
    _accept_global_options(parser)
    return parser


def _accept_global_options(parser: argparse.ArgumentParser) -> None:
    """`--config` after the command too (`tradingd ctl status --config FILE`): every subcommand's parser
    accepts it, with no default of its own (so it never hides one given before the command); given
    twice, the later one wins."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                if not any("--config" in a.option_strings for a in sub._actions):
                    sub.add_argument(
                        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help="as `tradingd --config`"
                    )
                _accept_global_options(sub)


def main(argv: Sequence[str] | None = None) -> int:
    from daemon.signals import STOP

    STOP.install()  # `daemon.entry` did already, for the executable
    try:
        args = build_parser().parse_args(argv)
    except BaseException:  # --help, or a usage error
        STOP.release()
        raise
    if args.command in SIGNALS_FIRST:
        STOP.exit_until_bound()  # nothing has started until the command's event loop runs
    else:
        STOP.release()  # the default behaviour (a signal that came meanwhile takes effect now)
    if args.command == "version":
        from importlib.metadata import version

        print(f"tradingd {version('tradingd')}")
        return exit_codes.OK
    from config import ConfigError, load_settings

    config_path = args.file if args.command == "config" and args.file is not None else args.config
    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.CONFIG
    if args.command not in QUIET_COMMANDS:
        _configure_logging(settings, sys.stderr)
    import asyncio

    try:
        if args.command == "config":
            return _config_check(settings)
        if args.command == "backfill":
            return asyncio.run(run_backfill(settings, args))
        if args.command == "sim":
            return asyncio.run(run_simulator(args))
        if args.command == "ingest":
            return asyncio.run(run_ingest(settings, STOP))
        if args.command == "retry-queue":
            return asyncio.run(run_retry_queue(settings, args))
        if args.command == "candles":
            return asyncio.run(run_candle_command(settings, args))
        if args.command == "dataset":
            return asyncio.run(run_dataset_command(settings, args))
        if args.command in ("agent", "train"):
            return asyncio.run(run_agent_command(settings, args))
        if args.command in ("evaluate", "promote", "rollback", "report"):
            return asyncio.run(run_evaluation_command(settings, args))
        if args.command == "run":
            from daemon.cli_run import run_daemon

            _configure_logging(settings, sys.stdout)
            return asyncio.run(run_daemon(settings, config_path, resume_as_is=args.resume_as_is, stop=STOP))
        if args.command == "liveness":
            from daemon.liveness import run_liveness

            return asyncio.run(run_liveness(settings))
        if args.command == "runs":
            return run_run_command(settings, args)
        if args.command == "ctl":
            return run_ctl(settings, args)
        if args.command == "secrets":
            from daemon.cli_secrets import run_secrets

            return run_secrets(settings, args)
        return asyncio.run(run_db_command(settings, args))
    except KeyboardInterrupt:
        return exit_codes.FAILURE
    except BrokenPipeError:
        # The reader went away (`tradingd db status | head -1`): not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_codes.FAILURE
    except Exception:
        # Through the logger, not Python's default hook, so the traceback passes the secret redactor.
        from observability import get_logger

        if args.command in QUIET_COMMANDS:
            _configure_logging(settings, sys.stderr)
        get_logger("tradingd.cli").exception("command_failed", command=args.command)
        return exit_codes.FAILURE


def _configure_logging(settings: Settings, stream: TextIO) -> None:
    from observability import configure_logging

    configure_logging(
        settings.logging.level,
        settings.logging.format,
        secrets=settings.secret_values(),
        stream=stream,
    )


def _config_check(settings: Settings) -> int:
    import json

    from config import redacted_settings

    print(json.dumps(redacted_settings(settings), indent=2))
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
