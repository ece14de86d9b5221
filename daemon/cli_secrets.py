"""`tradingd secrets rotate`: the original system's `rotate-secrets.sh`, for the running daemon.

The new key pair is read from a credentials file (`--credentials-file`, mode 0600, the format of
`exchange.credentials_file`) or from standard input (asked without echo on a terminal; otherwise the
API key on the first line and the secret on the second), never from the command line, where any user
could read it in the process list. It travels to the daemon over the control socket (mode 0600, and the
`API_TOKEN` when one is set), which checks it against the venue and swaps it in
(`daemon.secrets_rotation`). Exit codes: 0 rotated, 1 refused (the reason is printed), 65 the file or
input is not a key pair, 69 no daemon."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import exit_codes

if TYPE_CHECKING:
    from config import Settings


def add_secrets_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secrets = commands.add_parser("secrets", help="the account's BingX API keys")
    sub = secrets.add_subparsers(dest="secrets_command", required=True, metavar="COMMAND")
    rotate = sub.add_parser(
        "rotate",
        help="check a new BingX key pair with a signed read and swap it into the running daemon, without a restart",
    )
    rotate.add_argument(
        "--credentials-file",
        type=Path,
        metavar="FILE",
        help="a TOML file of api_key and secret_key, mode 0600 (default: read the pair from standard input)",
    )
    rotate.add_argument("--json", action="store_true", help="print the daemon's answer as JSON")
    rotate.add_argument("--timeout", type=float, default=60.0, metavar="SEC", help="how long to wait for an answer")


def read_new_pair(args: argparse.Namespace) -> tuple[str, str]:
    """The new pair from the file or standard input; `ValueError` naming what is wrong (never a key)."""
    from config.credentials import read_credentials
    from config.errors import ConfigError

    if args.credentials_file is not None:
        try:
            found = read_credentials(args.credentials_file)
        except ConfigError as error:
            raise ValueError(str(error).replace("exchange.credentials_file", "--credentials-file")) from None
        return found["api_key"], found["secret_key"]
    if sys.stdin.isatty():
        return getpass.getpass("new BingX API key: ").strip(), getpass.getpass("new BingX secret key: ").strip()
    lines = [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError(
            f"standard input holds {len(lines)} non-empty line(s): give the API key on the first and the secret on "
            "the second (or --credentials-file FILE)"
        )
    return lines[0], lines[1]


def run_secrets(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.control_client import ControlClientError, call
    from observability import register_secrets

    try:
        api_key, secret_key = read_new_pair(args)
    except (ValueError, OSError) as error:
        print(f"tradingd: secrets rotate: {error}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    register_secrets((api_key, secret_key))
    path = settings.control.resolved_socket_path(settings.storage.resolved_data_dir())
    token = settings.control.api_token
    try:
        answer = call(
            path,
            None if token is None else token.get_secret_value(),
            "secrets-rotate",
            timeout_sec=args.timeout,
            api_key=api_key,
            secret_key=secret_key,
        )
    except (ControlClientError, TimeoutError, OSError) as error:
        said = str(error) or f"the daemon did not answer within {args.timeout:g} s"
        print(f"tradingd: secrets rotate: {said}", file=sys.stderr)
        return exit_codes.UNAVAILABLE
    if args.json:
        print(json.dumps(answer, indent=2))
    if not answer.get("ok"):
        if not args.json:
            print(f"tradingd: secrets rotate refused ({answer.get('code')}): {answer.get('error')}", file=sys.stderr)
        return exit_codes.FAILURE
    if not args.json:
        print(render_rotation(answer))
    if answer.get("not_swapped"):
        print(
            "tradingd: secrets rotate: some live pairs still sign with the old keys (see not_swapped): keep the old "
            "keys on the venue until `ctl status` shows them restarted",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    return exit_codes.OK


def render_rotation(answer: Mapping[str, Any]) -> str:
    lines = [f"rotated: the daemon signs with key {answer['key']} from now on (account {answer.get('account') or '?'})"]
    lines.append(f"the keys replaced: {answer['old_keys']}")
    swapped = answer.get("swapped") or []
    lines.append(f"live pairs swapped: {', '.join(swapped) if swapped else 'none running'}")
    for pair, why in (answer.get("not_swapped") or {}).items():
        lines.append(f"{pair}: not swapped ({why})")
    lines.append(f"the new pair is {answer['persisted']}")
    lines.append("revoke the old keys on the venue once you no longer need them")
    return "\n".join(lines)
