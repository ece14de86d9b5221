"""Ray workers' log lines reach the daemon's output whole, one datagram per line; a worker whose daemon
is gone writes to its own stderr instead of losing the line or blocking."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from actors.shell import WorkerEnv
from observability import configure_logging, get_logger
from observability.forwarding import DatagramLines, LogSink


async def test_lines_arrive_whole_and_in_order() -> None:
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    output = io.StringIO()
    sink = LogSink(directory / "log.sock", output)
    await sink.start()
    assert oct((directory / "log.sock").stat().st_mode & 0o777) == "0o600"
    stream = DatagramLines(directory / "log.sock")
    stream.write('{"event": "one"}\n{"event": ')
    stream.write('"two"}\n')
    async with asyncio.timeout(60):  # a generous deadline for the datagrams to arrive, on a loaded machine
        while output.getvalue().count("\n") < 2:
            await asyncio.sleep(0.01)
    await sink.stop()
    stream.close()
    assert output.getvalue().splitlines() == ['{"event": "one"}', '{"event": "two"}']
    assert not (directory / "log.sock").exists()


def test_a_line_with_no_daemon_to_take_it_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    stream = DatagramLines(Path(tempfile.mkdtemp(dir="/tmp")) / "absent.sock")
    stream.write('{"event": "lost?"}\n')
    stream.close()
    assert capsys.readouterr().err == '{"event": "lost?"}\n'


class TerminalBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


async def forwarded(env: WorkerEnv, sink_output: io.StringIO) -> str:
    """One worker line as the daemon's sink writes it."""
    assert env.log_socket is not None
    sink = LogSink(Path(env.log_socket), sink_output)
    await sink.start()
    try:
        env.configure_logging()
        get_logger("tradingd.actor").info("actor_ready", role="feed", token_required=True)
        async with asyncio.timeout(60):  # a generous deadline for the datagram to arrive, on a loaded machine
            while not sink_output.getvalue().endswith("\n"):
                await asyncio.sleep(0.01)
    finally:
        await sink.stop()
        for handler in logging.getLogger().handlers:  # the worker's DatagramLines, which a worker keeps
            stream = getattr(handler, "stream", None)
            if isinstance(stream, DatagramLines):
                stream.close()
    return sink_output.getvalue()


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    logging.captureWarnings(False)
    configure_logging("info", "json", stream=io.StringIO())  # back to the default format for other tests
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


@pytest.mark.usefixtures("reset_logging")
async def test_worker_lines_take_the_daemons_format_on_a_terminal_and_off_it() -> None:
    socket_path = str(Path(tempfile.mkdtemp(dir="/tmp")) / "log.sock")

    configure_logging("info", "auto", stream=TerminalBuffer())  # the daemon on a terminal: console lines
    on_terminal = WorkerEnv("postgresql://x@localhost/db", socket_path, "info", ())
    assert on_terminal.log_format == "console"
    line = await forwarded(on_terminal, io.StringIO())
    assert "actor_ready" in line
    assert "token_required=True" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)

    configure_logging("info", "auto", stream=io.StringIO())  # under systemd (not a terminal): JSON lines
    off_terminal = WorkerEnv("postgresql://x@localhost/db", socket_path, "info", ())
    assert off_terminal.log_format == "json"
    event = json.loads(await forwarded(off_terminal, io.StringIO()))
    assert (event["event"], event["role"], event["token_required"]) == ("actor_ready", "feed", True)


RAY_PROBE = """
import logging, sys
import ray
from observability import configure_logging
configure_logging("info", "json", stream=sys.stdout)
logging.getLogger("ray._private.worker").warning(
    "SIGTERM handler is not set because current thread is not the main thread."
)
logging.getLogger("ray").info("Started a local Ray instance.")
logging.getLogger("ray._common.deprecation").warning("`num_sgd_iter` has been deprecated. Use `num_epochs`.")
logging.getLogger("ray._private.worker").warning("a warning that matters")
logging.getLogger("ray.rllib").error("an error that matters")
"""


def test_rays_logger_joins_our_stream_without_its_noise() -> None:
    """Imported, Ray gives its logger a plain-text handler on stderr; ours takes it over."""
    done = subprocess.run(
        [sys.executable, "-c", RAY_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["logger"], e["level"], e["event"]) for e in events] == [
        ("ray._private.worker", "warning", "a warning that matters"),
        ("ray.rllib", "error", "an error that matters"),
    ]
    assert "SIGTERM" not in done.stderr
    assert "deprecated" not in done.stderr
