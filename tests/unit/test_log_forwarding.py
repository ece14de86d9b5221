"""Ray workers' log lines reach the daemon's output whole, one datagram per line; a worker whose daemon
is gone writes to its own stderr instead of losing the line or blocking."""

from __future__ import annotations

import asyncio
import io
import tempfile
from pathlib import Path

import pytest

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
    for _ in range(50):
        if output.getvalue().count("\n") == 2:
            break
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
