"""The control socket's wire protocol: one JSON object per line each way. Pure: no I/O.

A request is `{"cmd": "pause", "pair": "BTC-USDT", "token": "...", "id": 7}`; `cmd` names the command,
`token` authenticates it when the daemon has an `API_TOKEN`, `id` (optional) is echoed in the answer, and
every other key is an argument of the command. An answer is `{"ok": true, "id": 7, ...fields}` or
`{"ok": false, "error": "readable message", "code": "stable_code", "id": 7}`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, NoReturn

MAX_LINE_BYTES: Final = 64 * 1024
"""The longest request line accepted, without its newline. Commands are small; this bounds the memory a
client can make the daemon buffer."""

RESERVED_KEYS: Final = frozenset({"cmd", "token", "id"})
"""Request keys that are not command arguments."""

BAD_JSON: Final = "bad_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_CMD: Final = "missing_cmd"
UNKNOWN_COMMAND: Final = "unknown_command"
LINE_TOO_LONG: Final = "line_too_long"
UNAUTHORIZED: Final = "unauthorized"
BAD_ARGS: Final = "bad_args"
INTERNAL: Final = "internal"

RequestId = str | int
"""A request id as the client sent it (echoed with the same JSON type, so a client can match it)."""


@dataclass(frozen=True)
class ControlRequest:
    """A well-formed, authorised request for a known command. `args` is read-only."""

    cmd: str
    args: Mapping[str, object]
    request_id: RequestId | None


class ProtocolError(Exception):
    """A request line the transport refuses before any command runs. `code` is stable (clients and tests
    match on it); the message is for people and never contains the token."""

    def __init__(self, code: str, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class CommandError(Exception):
    """Raised by a command handler to refuse a command (e.g. an unknown pair); it becomes an error answer
    with this `code` and `message`, and is audited as "rejected"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_request(line: bytes, token: str | None, known_commands: Collection[str]) -> ControlRequest:
    """Parse one request line (a trailing newline is allowed), raising `ProtocolError` if it is not a
    well-formed, authorised request for one of `known_commands`.

    The token is checked before the command name, so a client without it learns nothing about the
    commands; it is compared in constant time and never appears in an error.
    """
    body = line.removesuffix(b"\n").removesuffix(b"\r")
    if len(body) > MAX_LINE_BYTES:
        raise ProtocolError(LINE_TOO_LONG, f"request line longer than {MAX_LINE_BYTES} bytes")
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ProtocolError(BAD_JSON, "request nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer with too many digits
        raise ProtocolError(BAD_JSON, f"request is not UTF-8 JSON: {_first_line(exc)}") from None
    if not isinstance(value, dict):
        raise ProtocolError(NOT_AN_OBJECT, f"request must be a JSON object, not {_json_type(value)}")

    raw_id = value.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, str | int)):
        raise ProtocolError(BAD_ARGS, f'"id" must be a string or an integer, not {_json_type(raw_id)}')
    if (unstorable := _unstorable(raw_id)) is not None:
        raise ProtocolError(BAD_ARGS, f'"id": {unstorable}')  # answered without it: it cannot be written back
    request_id: RequestId | None = raw_id
    if (unstorable := _unstorable(value)) is not None:
        # PostgreSQL text and jsonb cannot hold these: such a command could run without its audit row.
        raise ProtocolError(BAD_ARGS, unstorable, request_id)

    if token is not None and not _token_matches(value.get("token"), token):
        raise ProtocolError(UNAUTHORIZED, 'missing or wrong "token"', request_id)

    cmd = value.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError(MISSING_CMD, '"cmd" must be a non-empty string', request_id)
    if cmd not in known_commands:
        known = ", ".join(sorted(known_commands))
        raise ProtocolError(UNKNOWN_COMMAND, f"unknown command {_clip(cmd)!r} (known: {known})", request_id)

    args = {key: item for key, item in value.items() if key not in RESERVED_KEYS}
    return ControlRequest(cmd=cmd, args=MappingProxyType(args), request_id=request_id)


def encode_response(payload: Mapping[str, object]) -> bytes:
    """One answer line: compact JSON and a newline. Datetimes, Decimals and other non-JSON values are
    written as their `str`; a NaN or infinite float raises `ValueError` (JSON has no such number)."""
    text = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return text.encode("utf-8") + b"\n"


def ok(request: ControlRequest, /, **fields: object) -> dict[str, object]:
    """A success answer to `request` carrying `fields` (which may not be named "ok" or "id")."""
    clash = sorted({"ok", "id"} & fields.keys())
    if clash:
        raise ValueError(f"a command's answer may not set {', '.join(clash)}")
    return {"ok": True, "id": request.request_id, **fields}


def error(code: str, message: str, request_id: RequestId | None = None) -> dict[str, object]:
    return {"ok": False, "error": message, "code": code, "id": request_id}


def _token_matches(given: object, expected: str) -> bool:
    # compare_digest on str accepts ASCII only; compare the UTF-8 bytes so any token works.
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _unstorable(value: object) -> str | None:
    """Why some key or string anywhere in a parsed request cannot be stored as text (None if all can):
    it holds U+0000, or a lone surrogate (a `\\ud800` escape), which is not UTF-8."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a string in the request holds a NUL character (U+0000)"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string in the request holds a lone surrogate (not UTF-8)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _json_type(value: object) -> str:
    match value:
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
        case None:
            return "null"
        case _:
            return type(value).__name__


def _first_line(exc: Exception) -> str:
    return _clip(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 200)


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
