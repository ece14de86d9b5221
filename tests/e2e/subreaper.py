"""Run a command, send it SIGTERM a given time after it started, and report every process it left behind.

    python tests/e2e/subreaper.py (--after SEC | --after-event NAME) --log FILE -- COMMAND...

`--after-event` sends the signal as soon as the command's log holds a JSON line of that event.

This process makes itself a child subreaper (prctl(PR_SET_CHILD_SUBREAPER)): a process the command
starts and then loses track of (the embedded PostgreSQL's postmaster, whose parent `pg_ctl` exits; Ray's
raylet and gcs_server and their workers) is re-parented to it instead of to init, so once the command
has exited, whatever is still alive is among this process's descendants. Those get a short deadline to
finish exiting (a worker notices its raylet is gone within moments), then are listed and killed, so a
failing test leaves nothing running either. Prints one JSON object:

    {"returncode": 0, "signalled": true, "exited_after_sec": 3.2, "left": ["raylet 1234 ..."], "linger_sec": 0.0}
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time

import psutil

PR_SET_CHILD_SUBREAPER = 36
LINGER_DEADLINE_SEC = 15.0


def reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] != 0:
            pass


def descendants() -> list[psutil.Process]:
    alive = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.name()} {process.pid} {' '.join(process.cmdline())[:160]}"
    except psutil.NoSuchProcess:
        return f"{process.pid} (gone)"


def main() -> int:
    parser = argparse.ArgumentParser()
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--after", type=float, help="seconds after the start to send SIGTERM")
    when.add_argument("--after-event", metavar="NAME", help="send SIGTERM once the log has this event")
    parser.add_argument("--log", required=True, help="the command's stdout and stderr")
    parser.add_argument("--timeout", type=float, default=180.0, help="for the command to exit after SIGTERM")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with open(args.log, "ab") as log:
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    signalled, signalled_at = False, 0.0
    # The command may end by itself first (a failed start): that is reported, not signalled.
    if args.after is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=args.after)
    else:
        wanted = f'"event": "{args.after_event}"'
        deadline = started + args.timeout
        while child.poll() is None and time.monotonic() < deadline:
            with open(args.log, errors="replace") as text:
                if wanted in text.read():
                    break
            time.sleep(0.05)
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        signalled = True
        signalled_at = time.monotonic()
    try:
        returncode = child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        returncode = child.wait()
    exited = time.monotonic()
    left = descendants()
    while left and time.monotonic() - exited < LINGER_DEADLINE_SEC:
        time.sleep(0.1)
        reap()
        left = descendants()
    linger = time.monotonic() - exited
    report = {
        "returncode": returncode,
        "signalled": signalled,
        "signalled_after_sec": round(signalled_at - started, 3) if signalled else None,
        "exited_after_sec": round(exited - started, 3),
        "left": [describe(process) for process in left],
        "linger_sec": round(linger, 3),
    }
    for process in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(left, timeout=10)
    reap()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
