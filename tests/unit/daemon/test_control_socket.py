"""The control socket's transport: a real server on a real unix socket, a real (in-memory) handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.control_client import ControlClient, ControlUnavailableError, call
from daemon.control_protocol import (
    MAX_LINE_BYTES,
    CommandError,
    ControlRequest,
    ProtocolError,
    encode_response,
    error,
    ok,
    parse_request,
)
from daemon.control_server import ControlServer, ControlSocketError, ControlSocketInUseError

TOKEN = "tok-3f9a1c77e2"
WRONG_TOKEN = "tok-3f9a1c77e3"
COMMANDS = ("status", "pause", "slow", "boom", "nan")
PAIRS = {"BTC-USDT", "ETH-USDT"}

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Commands:
    """A small real handler: a counter, paused pairs, a command that waits, two that break."""

    def __init__(self) -> None:
        self.calls = 0
        self.paused: set[str] = set()
        self.slow_started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, request: ControlRequest) -> dict[str, object]:
        self.calls += 1
        if request.cmd == "status":
            return {
                "calls": self.calls,
                "paused": sorted(self.paused),
                "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                "equity": Decimal("1234.50"),
            }
        if request.cmd == "pause":
            pair = request.args.get("pair")
            if not isinstance(pair, str) or pair not in PAIRS:
                raise CommandError("unknown_pair", f"no such pair: {pair!r}")
            self.paused.add(pair)
            return {"state": "paused", "pair": pair}
        if request.cmd == "slow":
            self.slow_started.set()
            await self.release.wait()
            return {"done": True}
        if request.cmd == "nan":
            return {"value": float("nan")}
        raise RuntimeError("the handler broke")


class Audit:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, str | None]] = []
        self.fail = False

    async def __call__(self, request: ControlRequest, outcome: str, detail: str | None) -> None:
        if self.fail:
            raise OSError("audit table unreachable")
        self.records.append((request.cmd, outcome, detail))


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory: a unix socket path may have at most 107 bytes, and tmp_path can be longer."""
    directory = Path(tempfile.mkdtemp(prefix="ctl", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def commands() -> Commands:
    return Commands()


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
async def server(sock_dir: Path, commands: Commands, audit: Audit) -> AsyncIterator[ControlServer]:
    control = ControlServer(sock_dir / "control.sock", commands, COMMANDS, token=TOKEN, audit=audit)
    await control.start()
    yield control
    await control.stop()


async def connect(server: ControlServer) -> Conn:
    return await asyncio.open_unix_connection(str(server.path))


async def close(conn: Conn) -> None:
    _reader, writer = conn
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def send(conn: Conn, message: dict[str, object] | bytes) -> dict[str, object]:
    _reader, writer = conn
    writer.write(message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n")
    await writer.drain()
    return await answer(conn)


async def answer(conn: Conn) -> dict[str, object]:
    line = await asyncio.wait_for(conn[0].readline(), 5)
    assert line.endswith(b"\n"), line
    decoded = json.loads(line)
    assert isinstance(decoded, dict)
    return decoded


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def authed(cmd: str, **fields: object) -> dict[str, object]:
    return {"cmd": cmd, "token": TOKEN, **fields}


# --- the protocol, pure ---------------------------------------------------------------------------------


def test_parse_request_splits_the_arguments_from_cmd_token_and_id() -> None:
    line = json.dumps({"cmd": "pause", "pair": "BTC-USDT", "token": TOKEN, "id": 7, "dry": True}).encode() + b"\r\n"
    request = parse_request(line, TOKEN, COMMANDS)
    assert request == ControlRequest("pause", {"pair": "BTC-USDT", "dry": True}, 7)
    with pytest.raises(TypeError):
        request.args["pair"] = "ETH-USDT"  # type: ignore[index]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"{nope", "bad_json"),
        (b"\xff\xfe{}", "bad_json"),
        (b'{"cmd": "status", "x": NaN}', "bad_json"),
        (b"[" * 60_000, "bad_json"),
        (b'["status"]', "not_an_object"),
        (b"{}", "missing_cmd"),
        (b'{"cmd": ""}', "missing_cmd"),
        (b'{"cmd": 3}', "missing_cmd"),
        (b'{"cmd": "launch"}', "unknown_command"),
        (b'{"cmd": "status", "id": true}', "bad_args"),
        (b'{"cmd": "status", "id": [1]}', "bad_args"),
        (b'{"cmd": "pause", "pair": "BTC\\u0000-USDT"}', "bad_args"),  # jsonb cannot hold it: no audit row
        (b'{"cmd": "pause", "x\\u0000": 1}', "bad_args"),
        (b'{"cmd": "pause", "deep": [{"a": ["\\u0000"]}]}', "bad_args"),
        (b'{"cmd": "status", "pad": "' + b"x" * MAX_LINE_BYTES + b'"}', "line_too_long"),
    ],
)
def test_parse_request_refuses_with_a_stable_code(line: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_request(line, None, COMMANDS)
    assert refused.value.code == code


def test_the_token_is_checked_before_the_command_and_never_echoed() -> None:
    for token in (None, WRONG_TOKEN, 12345, "ü" + TOKEN):
        line = json.dumps({"cmd": "launch", "token": token, "id": "a"}).encode()
        with pytest.raises(ProtocolError) as refused:
            parse_request(line, TOKEN, COMMANDS)
        assert (refused.value.code, refused.value.request_id) == ("unauthorized", "a")
        assert TOKEN not in str(refused.value)
        assert WRONG_TOKEN not in str(refused.value)
    assert parse_request(json.dumps({"cmd": "status", "token": "pä55"}).encode(), "pä55", COMMANDS).cmd == "status"


def test_answers_are_compact_json_lines() -> None:
    request = ControlRequest("status", {}, "r1")
    moment = datetime(2025, 1, 2, tzinfo=UTC)
    line = encode_response(ok(request, at=moment, equity=Decimal("1.50")))
    assert line == b'{"ok":true,"id":"r1","at":"2025-01-02 00:00:00+00:00","equity":"1.50"}\n'
    assert encode_response(error("bad_args", "no", 3)) == b'{"ok":false,"error":"no","code":"bad_args","id":3}\n'
    with pytest.raises(ValueError, match="JSON compliant"):
        encode_response({"x": float("inf")})
    with pytest.raises(ValueError, match="ok"):
        ok(request, ok=False)


# --- the server --------------------------------------------------------------------------------------------


async def test_socket_is_owner_only_and_a_created_directory_is_0700(sock_dir: Path, commands: Commands) -> None:
    os.chmod(sock_dir, 0o750)  # noqa: S103 -- any mode but 0700, to see an existing directory keep it
    existing = ControlServer(sock_dir / "a.sock", commands, COMMANDS, token=None)
    created = ControlServer(sock_dir / "run" / "b.sock", commands, COMMANDS, token=None)
    await existing.start()
    await created.start()
    try:
        for control in (existing, created):
            assert stat.S_ISSOCK(os.stat(control.path).st_mode)
            assert mode_of(control.path) == 0o600
        assert mode_of(sock_dir) == 0o750  # an existing directory keeps its mode
        assert mode_of(sock_dir / "run") == 0o700
    finally:
        await existing.stop()
        await created.stop()


async def test_requests_on_one_connection_are_answered_in_order(server: ControlServer, commands: Commands) -> None:
    conn = await connect(server)
    lines = [
        json.dumps(authed("pause", pair="BTC-USDT", id=1)),
        "",  # an empty line is ignored
        json.dumps(authed("status", id="two")),
        json.dumps(authed("pause", pair="DOGE-USDT", id=3)),
    ]
    conn[1].write(("\n".join(lines) + "\n").encode())
    await conn[1].drain()
    answers = [await answer(conn) for _ in range(3)]
    await close(conn)
    assert answers[0] == {"ok": True, "id": 1, "state": "paused", "pair": "BTC-USDT"}
    assert answers[1] == {
        "ok": True,
        "id": "two",
        "calls": 2,
        "paused": ["BTC-USDT"],
        "at": "2025-01-02 03:04:05+00:00",
        "equity": "1234.50",
    }
    assert answers[2] == {"ok": False, "id": 3, "code": "unknown_pair", "error": "no such pair: 'DOGE-USDT'"}
    assert commands.calls == 3


async def test_malformed_requests_get_an_error_and_the_connection_stays_open(server: ControlServer) -> None:
    conn = await connect(server)
    bad_json = await send(conn, b'{"cmd": "status", \n')
    not_object = await send(conn, b"[1, 2]\n")
    no_cmd = await send(conn, {"token": TOKEN, "id": 5})
    unknown = await send(conn, authed("launch", id=6))
    still_fine = await send(conn, authed("status"))
    await close(conn)
    assert (bad_json["ok"], bad_json["code"], bad_json["id"]) == (False, "bad_json", None)
    assert not_object["code"] == "not_an_object"
    assert (no_cmd["code"], no_cmd["id"]) == ("missing_cmd", 5)
    assert (unknown["code"], unknown["id"]) == ("unknown_command", 6)
    assert "'launch'" in str(unknown["error"])
    assert still_fine["ok"] is True


async def test_a_missing_or_wrong_token_is_refused_and_never_logged(server: ControlServer, commands: Commands) -> None:
    with capture_logs() as logs:
        conn = await connect(server)
        missing = await send(conn, {"cmd": "status", "id": 1})
        wrong = await send(conn, {"cmd": "status", "token": WRONG_TOKEN, "id": 2})
        # The right token with another mistake: refused lines are logged, but without the token.
        right_but_bad_json = await send(conn, f'{{"cmd": "status", "token": "{TOKEN}", \n'.encode())
        right_but_unknown = await send(conn, authed("launch"))
        accepted = await send(conn, authed("status"))
        await close(conn)
    assert (missing["code"], missing["id"]) == ("unauthorized", 1)
    assert (wrong["code"], wrong["id"]) == ("unauthorized", 2)
    assert right_but_bad_json["code"] == "bad_json"
    assert right_but_unknown["code"] == "unknown_command"
    assert accepted["ok"] is True
    assert commands.calls == 1
    answers = json.dumps([missing, wrong, right_but_bad_json, right_but_unknown, accepted])
    assert TOKEN not in answers
    assert WRONG_TOKEN not in answers
    assert TOKEN not in repr(logs)
    assert WRONG_TOKEN not in repr(logs)
    refused = [entry for entry in logs if entry["event"] == "control_request_refused"]
    assert [entry["code"] for entry in refused] == ["unauthorized", "unauthorized", "bad_json", "unknown_command"]
    assert all(entry["log_level"] == "warning" and entry["peer_pid"] == os.getpid() for entry in refused)
    assert all(len(str(entry["line"])) <= 200 for entry in refused)


async def test_an_oversized_line_is_refused_and_the_connection_closed(server: ControlServer) -> None:
    conn = await connect(server)
    huge = json.dumps(authed("status", pad="x" * 70 * 1024)).encode() + b"\n"
    with capture_logs() as logs:
        refused = await send(conn, huge)
        try:
            rest = await asyncio.wait_for(conn[0].read(), 5)
        except ConnectionResetError:
            rest = b""  # the server hung up with the rest of the line unread
    await close(conn)
    assert (refused["ok"], refused["code"]) == (False, "line_too_long")
    assert rest == b""
    assert [entry["code"] for entry in logs if entry["event"] == "control_request_refused"] == ["line_too_long"]
    fresh = await connect(server)
    assert (await send(fresh, authed("status")))["ok"] is True
    await close(fresh)


async def test_a_slow_command_for_one_client_does_not_hold_up_another(
    server: ControlServer, commands: Commands
) -> None:
    slow_client = await connect(server)
    slow_client[1].write(json.dumps(authed("slow", id="A")).encode() + b"\n")
    await asyncio.wait_for(commands.slow_started.wait(), 5)
    other = await connect(server)
    status = await send(other, authed("status", id="B"))
    assert status["ok"] is True
    assert server.clients == 2
    commands.release.set()
    assert await answer(slow_client) == {"ok": True, "id": "A", "done": True}
    await close(slow_client)
    await close(other)


async def test_a_failing_handler_gets_an_internal_error_and_the_server_carries_on(server: ControlServer) -> None:
    with capture_logs() as logs:
        conn = await connect(server)
        boom = await send(conn, authed("boom", id=1))
        nan = await send(conn, authed("nan", id=2))
        after = await send(conn, authed("status", id=3))
        await close(conn)
    internal = {"ok": False, "code": "internal", "error": "internal error, see the daemon log"}
    assert boom == {**internal, "id": 1}
    assert nan == {**internal, "id": 2}
    assert after["ok"] is True
    failed = [entry for entry in logs if entry["event"] == "control_command_failed"]
    assert [(entry["cmd"], entry["log_level"]) for entry in failed] == [("boom", "error"), ("nan", "error")]
    assert all(entry.get("exc_info") for entry in failed)
    other = await connect(server)
    assert (await send(other, authed("status")))["ok"] is True
    await close(other)


async def test_audit_records_outcomes_of_commands_but_not_protocol_errors(server: ControlServer, audit: Audit) -> None:
    conn = await connect(server)
    await send(conn, b"not json\n")
    await send(conn, {"cmd": "status"})  # no token
    await send(conn, authed("launch"))
    await send(conn, authed("pause", pair="BTC-USDT"))
    await send(conn, authed("pause", pair="XRP-USDT"))
    nul = await send(conn, authed("pause", pair="BTC\u0000-USDT", id=9))
    await send(conn, authed("boom"))
    await close(conn)
    assert (nul["ok"], nul["code"], nul["id"]) == (False, "bad_args", 9), "refused before it runs, not unaudited"
    assert audit.records == [
        ("pause", "accepted", None),
        ("pause", "rejected", "unknown_pair: no such pair: 'XRP-USDT'"),
        ("boom", "failed", "unexpected error, see the daemon log"),
    ]


async def test_a_failing_audit_is_logged_and_the_answer_still_sent(server: ControlServer, audit: Audit) -> None:
    audit.fail = True
    with capture_logs() as logs:
        conn = await connect(server)
        paused = await send(conn, authed("pause", pair="ETH-USDT"))
        await close(conn)
    assert paused["ok"] is True
    assert [entry["outcome"] for entry in logs if entry["event"] == "control_audit_failed"] == ["accepted"]


async def test_a_stale_socket_file_is_replaced(sock_dir: Path, commands: Commands) -> None:
    path = sock_dir / "control.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))  # what a daemon killed with SIGKILL leaves: a socket file nobody listens on
    dead.close()
    assert path.is_socket()
    control = ControlServer(path, commands, COMMANDS, token=None)
    with capture_logs() as logs:
        await control.start()
    try:
        async with ControlClient(path, None) as client:
            assert (await client.request("status"))["ok"] is True
    finally:
        await control.stop()
    assert "control_socket_stale_removed" in [entry["event"] for entry in logs]
    assert {"event": "control_socket_listening", "path": str(path)}.items() <= logs[-1].items()


async def test_a_live_server_is_never_displaced(server: ControlServer, commands: Commands) -> None:
    second = ControlServer(server.path, commands, COMMANDS, token=None)
    with pytest.raises(ControlSocketInUseError, match="in use"):
        await second.start()
    await second.stop()  # never started: nothing to do, and the first server's file stays
    async with ControlClient(server.path, TOKEN) as client:
        assert (await client.request("status"))["ok"] is True


async def test_something_other_than_a_socket_at_the_path_is_left_alone(sock_dir: Path, commands: Commands) -> None:
    path = sock_dir / "control.sock"
    path.write_text("not a socket")
    with pytest.raises(ControlSocketError, match="not a socket"):
        await ControlServer(path, commands, COMMANDS, token=None).start()
    assert path.read_text() == "not a socket"
    too_long = sock_dir / ("x" * 120) / "control.sock"
    with pytest.raises(ControlSocketError, match="longer than"):
        await ControlServer(too_long, commands, COMMANDS, token=None).start()


async def test_stop_closes_connections_and_removes_the_file(sock_dir: Path, commands: Commands) -> None:
    control = ControlServer(sock_dir / "control.sock", commands, COMMANDS, token=None)
    await control.start()
    idle = await asyncio.open_unix_connection(str(control.path))
    busy = await asyncio.open_unix_connection(str(control.path))
    busy[1].write(b'{"cmd": "slow"}\n')
    await asyncio.wait_for(commands.slow_started.wait(), 5)
    assert control.clients == 2
    await asyncio.wait_for(control.stop(), 5)
    assert not control.path.exists()
    assert control.clients == 0
    for conn in (idle, busy):
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(conn[0].read(), 5) == b""
        await close(conn)


async def test_a_command_running_when_the_server_stops_still_gets_its_answer(
    sock_dir: Path, commands: Commands
) -> None:
    # `ctl shutdown` on a daemon with no run: the main loop stops the server while the answer is being written.
    control = ControlServer(sock_dir / "control.sock", commands, COMMANDS, token=None)
    await control.start()
    busy = await asyncio.open_unix_connection(str(control.path))
    busy[1].write(b'{"cmd": "slow", "id": 1}\n')
    await asyncio.wait_for(commands.slow_started.wait(), 5)
    stopping = asyncio.create_task(control.stop())
    await asyncio.sleep(0)  # let stop() begin: it must wait for the running command, not cancel it
    assert not stopping.done()
    commands.release.set()
    assert await answer(busy) == {"ok": True, "id": 1, "done": True}
    await asyncio.wait_for(stopping, 5)
    assert not control.path.exists()
    await close(busy)


# --- the client ----------------------------------------------------------------------------------------------


async def test_the_client_sends_token_and_id_and_returns_the_answer(server: ControlServer) -> None:
    async with ControlClient(server.path, TOKEN, timeout_sec=5) as client:
        paused = await client.request("pause", pair="BTC-USDT")
        refused = await client.request("pause", pair="NOPE")
        status = await client.request("status")
    assert paused == {"ok": True, "id": "c1", "state": "paused", "pair": "BTC-USDT"}
    assert (refused["ok"], refused["code"]) == (False, "unknown_pair")
    assert status["paused"] == ["BTC-USDT"]
    async with ControlClient(server.path, WRONG_TOKEN) as client:
        assert (await client.request("status"))["code"] == "unauthorized"
    # The sync wrapper runs its own loop, so it runs in a thread while this loop serves.
    answer = await asyncio.to_thread(call, server.path, TOKEN, "pause", timeout_sec=5, pair="ETH-USDT")
    assert answer["ok"] is True


async def test_the_client_times_out_and_reconnects_after_a_hang_up(server: ControlServer, commands: Commands) -> None:
    async with ControlClient(server.path, TOKEN, timeout_sec=0.2) as client:
        with pytest.raises(TimeoutError):
            await client.request("slow")
        commands.release.set()
        assert (await client.request("status"))["ok"] is True  # a new connection: no stale answer read
        too_long = await client.request("status", pad="x" * MAX_LINE_BYTES)
        assert too_long["code"] == "line_too_long"
        assert (await client.request("status"))["ok"] is True


async def test_the_client_says_when_no_daemon_is_running(sock_dir: Path) -> None:
    path = sock_dir / "control.sock"
    with pytest.raises(ControlUnavailableError, match=r"is the daemon running\? socket .*control.sock does not exist"):
        async with ControlClient(path, TOKEN) as client:
            await client.request("status")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    with pytest.raises(ControlUnavailableError, match=r"is the daemon running\?.*stale"):
        await asyncio.to_thread(call, path, TOKEN, "status")
