"""The scenarios that drive the real daemon (`tradingd run` against `tradingd sim` and a PostgreSQL of
their own): `kill -9` at random moments, database outages, venue storms, an accelerated soak, and a
secrets sweep."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import psutil

from reliability.invariants import MINUTE, decision_failures, newest_decided_all, sweep_secrets
from reliability.scenario import Context, Result
from tests.e2e.daemon_harness import (
    PAIRS,
    START_BARS,
    Daemon,
    ctl_client,
    cut_files,
    daemon,
    decisions,
    query,
    sim_faults,
    simulator_process,
    venue_clock_ms,
    write_config,
)
from tests.e2e.stoppable_postgres import stoppable_postgres


def _directory(context: Context, name: str) -> Path:
    path = context.work / name
    path.mkdir(parents=True, exist_ok=False)
    (path / "pg").mkdir()
    return path


def _trade_on(d: Daemon, url: str, urls: dict[str, str], minutes: int, timeout: float = 300) -> None:
    """Wait until both pairs have decided `minutes` replayed minutes past the venue's clock now."""
    target = venue_clock_ms(urls) + minutes * MINUTE
    d.wait_until(lambda: newest_decided_all(url) >= target, timeout, f"decisions {minutes} minutes on")


def _decided_past(d: Daemon, url: str, target_ms: int, what: str) -> None:
    d.wait_until(lambda: newest_decided_all(url) >= target_ms, 300, what)


def _restarts(d: Daemon) -> dict[str, int]:
    """Each pair's restarts, through the real `ctl` client (the control token may be a marker)."""
    answer = ctl_client(d, "status", "--json")
    if answer.returncode != 0:
        raise AssertionError(f"ctl status exited {answer.returncode}: {answer.stderr}")
    return {pair: int(view["restarts"]) for pair, view in json.loads(answer.stdout)["pairs"].items()}


def _check(result: Result, url: str) -> None:
    failures, counts = decision_failures(url)
    result.failures.extend(failures)
    result.figures["decisions"] = counts
    result.figures["client order ids"] = int(query(url, "SELECT count(*) FROM trade_executions")[0][0])


def kill9(context: Context, result: Result) -> None:
    """`trials` kills of the daemon and everything under it, each at a random moment from 0 to 40 s after
    its start (during start-up, migration, warm-up or trading); then a clean run to the end."""
    plan, rng = context.plan, random.Random(context.plan.seed)
    work = _directory(context, "kill9")
    files = cut_files(context.shared_candles, work, START_BARS + plan.trials * 25 + 900)
    moments: list[float] = []
    orphans = 0
    with (
        stoppable_postgres(work / "pg") as pg,
        simulator_process(files, "30") as (urls, _),
        daemon(write_config(work), urls, pg.url, work) as d,
    ):
        for _ in range(plan.trials):
            d.start()
            moment = rng.uniform(0, 40)
            until = time.monotonic() + moment
            while time.monotonic() < until:  # the kill's moment: chosen at random, not waited for
                d.check_alive("a kill")
                time.sleep(0.05)
            tree = d.tree()
            d.kill_everything()
            _, alive = psutil.wait_procs(tree, timeout=30)
            orphans += len(alive)
            moments.append(round(moment, 1))
        d.start()
        d.wait_ready()
        _trade_on(d, pg.url, urls, 5)
        exit_code = d.terminate()
        _check(result, pg.url)
    result.figures.update(
        {
            "trials": plan.trials,
            "kill moments (s after start)": f"{min(moments, default=0)}..{max(moments, default=0)}",
            "orphaned processes": orphans,
            "final exit code": exit_code,
        }
    )
    if orphans:
        result.failures.append(f"{orphans} processes outlived kill -9 of their tree")
    if exit_code != 0:
        result.failures.append(f"the final SIGTERM exited {exit_code}")


def outage(context: Context, result: Result) -> None:
    """The database away for `outage_sec` while both pairs trade, stopped (refused) and paused (frozen,
    connections hanging): the daemon stays up, both pairs trade again by themselves, nothing lost or
    doubled."""
    for mode in context.plan.outage_modes:
        work = _directory(context, f"outage-{mode}")
        files = cut_files(context.shared_candles, work, START_BARS + 1500)
        with (
            stoppable_postgres(work / "pg") as pg,
            simulator_process(files, "60") as (urls, _),
            daemon(write_config(work), urls, pg.url, work) as d,
        ):
            d.start()
            d.wait_ready()
            d.wait_until(lambda: all(decisions(pg.url, p) >= 5 for p in PAIRS), 180, "decisions")
            began = time.monotonic()
            pg.stop() if mode == "stopped" else pg.pause()
            answered = 0
            while time.monotonic() - began < context.plan.outage_sec:  # the outage's length: an input
                d.check_alive(f"the {mode} outage")
                answered += 1 if ctl_client(d, "status").returncode == 0 else 0
                time.sleep(2)
            pg.start() if mode == "stopped" else pg.resume()
            back = time.monotonic()
            _trade_on(d, pg.url, urls, 5, timeout=600)
            recovered = round(time.monotonic() - back, 1)
            states = {p: v["state"] for p, v in d.ctl("status")["pairs"].items()}
            exit_code = d.terminate()
            failures, counts = decision_failures(pg.url)
        result.failures.extend(f"{mode}: {failure}" for failure in failures)
        if set(states.values()) != {"running"}:
            result.failures.append(f"{mode}: pairs after the outage: {states}")
        if exit_code != 0:
            result.failures.append(f"{mode}: SIGTERM exited {exit_code}")
        result.figures[mode] = {
            "outage (s)": context.plan.outage_sec,
            "status answered during it": answered,
            "trading again after (s)": recovered,
            "decisions": counts,
        }


def _garbage_frames() -> dict[str, list[str]]:
    """Frames that once escaped the stream client (issue 16), and others: text and binary (base64)."""
    text = [
        "not json",
        "{",
        '{"id": [1, 2], "code": 0}',
        json.dumps({"dataType": "BTC-USDT@kline_1m", "data": [{"T": 10**30, "o": "1", "h": "1", "l": "1", "c": "1"}]}),
        json.dumps({"dataType": "BTC-USDT@kline_1m", "data": [{"T": 1, "c": 10**400}]}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"code": "109429", "msg": {"nested": True}}),
    ]
    binary = [gzip.compress(b"\xff\xfe\xfd"), b"\x1f\x8b\x08\x00garbage", gzip.compress(b"[" * 50_000), os.urandom(64)]
    return {"frames": text, "gzip_frames": [base64.b64encode(frame).decode() for frame in binary]}


def storms(context: Context, result: Result) -> None:
    """The venue misbehaving while both pairs trade: every stream dropped (three times), the streams
    stalled 20 s, REST bursts of 429, 503 and 504, and malformed frames. No pair may restart, and every
    candle is decided. The run's secrets are marker values, and afterwards every file it left and every
    table are searched for them (`_sweep`)."""
    work = _directory(context, "storms")
    files = cut_files(context.shared_candles, work, START_BARS + 1500)
    storms_run: list[str] = []
    with (
        stoppable_postgres(work / "pg") as pg,
        simulator_process(files, "60", log=work / "sim.log", faults=True) as (urls, _),
        daemon(write_config(work, extra=ALERTS_CONFIG), urls, _with_password(pg.url), work, extra_env=MARKERS) as d,
    ):
        d.start()
        d.wait_ready()
        d.wait_until(lambda: all(decisions(pg.url, p) >= 5 for p in PAIRS), 180, "decisions")
        before = _restarts(d)
        for name, faults in (
            ("drops", {"drop": True}),
            ("drops", {"drop": True}),
            ("drops", {"drop": True}),
            ("REST 429 x 12 (and a drop: the catch-up meets them)", {"http_errors": [429] * 12, "drop": True}),
            ("REST 503 x 20, 504 x 6 (and a drop)", {"http_errors": [503] * 20 + [504] * 6, "drop": True}),
            ("malformed frames", _garbage_frames()),
        ):
            target = int(sim_faults(urls)["clock_ms"]) + 3 * MINUTE  # not the REST clock: it meets the burst
            sim_faults(urls, **faults)
            storms_run.append(name)
            d.wait_until(lambda: int(sim_faults(urls)["http_errors"]) == 0, 600, f"the feed through {name}")
            _decided_past(d, pg.url, target, f"decisions after {name}")
        sim_faults(urls, stall=True)
        stall_began = time.monotonic()
        while time.monotonic() - stall_began < 20:  # the stall's length: an input
            d.check_alive("the stall")
            time.sleep(1)
        sim_faults(urls, stall=False)
        storms_run.append("streams stalled 20 s (20 replayed minutes: a hole healed over REST)")
        target = int(sim_faults(urls)["clock_ms"]) + 5 * MINUTE
        _decided_past(d, pg.url, target, "decisions after the stall")
        after = _restarts(d)
        _operator_commands(d, work, result)
        exit_code = d.terminate()
        _check(result, pg.url)
        _sweep(result, work, pg.url)
    result.figures.update({"storms": storms_run, "restarts": after, "final exit code": exit_code})
    if after != before:
        result.failures.append(f"pairs restarted during the storms: {before} -> {after}")
    if exit_code != 0:
        result.failures.append(f"SIGTERM exited {exit_code}")


def _tree_rss_mb(d: Daemon) -> float:
    return sum(_rss_by_process(d).values())


def _rss_by_process(d: Daemon) -> dict[str, float]:
    """RSS (MB) of the daemon's tree by process kind (`tradingd`, `ray::FeedActor`, `raylet`, ...), summed
    over the processes of a kind (one per pair for the actors)."""
    kinds: dict[str, float] = {}
    for process in d.tree():
        try:
            name = process.name()
            if name.startswith("python"):  # Ray's helpers: named by their script
                script = next((part for part in process.cmdline()[1:] if part.endswith(".py")), name)
                name = Path(script).name
            kinds[name] = kinds.get(name, 0.0) + process.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return kinds


def _growth_by_process(first: dict[str, float], last: dict[str, float], hours: float) -> dict[str, float]:
    """MB per replayed hour of each process kind, the largest first (those that grew by 1 MB or more)."""
    grown = {name: (last[name] - first.get(name, 0.0)) / hours for name in last if hours > 0}
    return {name: round(rate, 2) for name, rate in sorted(grown.items(), key=lambda kv: -kv[1]) if rate * hours >= 1}


def soak(context: Context, result: Result) -> None:
    """`soak_hours` of 1m candles replayed at `soak_speed` times real time, the daemon's whole process
    tree's RSS sampled every 2 s: the growth per replayed hour (least squares), after a warm-up of the
    first tenth."""
    plan = context.plan
    work = _directory(context, "soak")
    minutes = int(plan.soak_hours * 60)
    files = cut_files(context.shared_candles, work, START_BARS + minutes + 600)
    samples: list[tuple[float, float]] = []
    by_process: list[tuple[float, dict[str, float]]] = []  # after the warm-up, and at the end
    with (
        stoppable_postgres(work / "pg") as pg,
        simulator_process(files, str(plan.soak_speed)) as (urls, _),
        daemon(write_config(work), urls, pg.url, work) as d,
    ):
        d.start()
        d.wait_ready()
        start = venue_clock_ms(urls)
        target = start + minutes * MINUTE
        began = time.monotonic()
        while newest_decided_all(pg.url) < target:
            d.check_alive("the soak")
            if time.monotonic() - began > 6 * 3600:
                raise AssertionError("the soak did not finish in 6 h")
            hours = (venue_clock_ms(urls) - start) / 3_600_000
            samples.append((hours, _tree_rss_mb(d)))
            if not by_process and hours >= plan.soak_hours / 10:
                by_process.append((hours, _rss_by_process(d)))
            time.sleep(2)
        by_process.append(((venue_clock_ms(urls) - start) / 3_600_000, _rss_by_process(d)))
        wall = time.monotonic() - began
        restarts = _restarts(d)
        exit_code = d.terminate()
        _check(result, pg.url)
    kept = samples[len(samples) // 10 :]
    slope = _slope(kept)
    result.figures.update(
        {
            "replayed hours": plan.soak_hours,
            "speed": plan.soak_speed,
            "wall (s)": round(wall),
            "RSS after warm-up (MB)": round(kept[0][1]) if kept else None,
            "RSS at the end (MB)": round(kept[-1][1]) if kept else None,
            "RSS growth (MB per replayed hour)": None if slope is None else round(slope, 2),
            "growth by process (MB per replayed hour, after the warm-up)": (
                _growth_by_process(by_process[0][1], by_process[-1][1], by_process[-1][0] - by_process[0][0])
                if len(by_process) > 1
                else None
            ),
            "samples": len(samples),
            "restarts": restarts,
        }
    )
    if any(restarts.values()):
        result.failures.append(f"pairs restarted during the soak: {restarts}")
    if exit_code != 0:
        result.failures.append(f"SIGTERM exited {exit_code}")


def _slope(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return None if spread == 0 else sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


HOOK_MARKER = "hookmarker4e7a1c9d2b"
MARKERS = {
    "API_TOKEN": "ctlmarker7f3a9c1e5b",
    "BINGX_API_KEY": "keymarker2d8e6b4a90",
    "BINGX_SECRET_KEY": "secretmarker5c1f7e3d",
    # Alert channels that refuse every send (port 9 on loopback): each failure is logged and recorded.
    "TRADINGD_ALERT_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/{HOOK_MARKER}",
    "TRADINGD_ALERT_TELEGRAM_BOT_TOKEN": "424242:tgmarker8c3f5a1e7d",
    "TRADINGD_ALERT_TELEGRAM_CHAT_ID": "1",
    "TRADINGD_ALERT_MIN_SEVERITY": "info",
}
ALERTS_CONFIG = '[alerts]\ntelegram_api_url = "http://127.0.0.1:9"\n'
"""The storms' daemon delivers (and fails to deliver) every alert, so its errors are swept too."""
DB_MARKER = "pgmarker9b2d4f6a8c"
"""The database password in TIMESCALE_URL (the test server trusts local connections: it is never checked,
but travels everywhere the URL does)."""


def _with_password(url: str) -> str:
    return url.replace("postgres:@", f"postgres:{DB_MARKER}@", 1)


def _operator_commands(d: Daemon, work: Path, result: Result) -> None:
    """What an operator runs, through the real client, with the secrets set: so they are swept too."""
    for command in (("status",), ("pause", "BTC-USDT"), ("resume", "BTC-USDT"), ("alerts",), ("risk",)):
        answer = ctl_client(d, *command)
        if answer.returncode not in (0, 1):
            result.failures.append(f"ctl {' '.join(command)} exited {answer.returncode}: {answer.stderr}")
    judged = tradingd_command(d, "liveness")
    if judged.returncode != 0 or '"verdict": "alive"' not in judged.stdout:
        result.failures.append(f"liveness exited {judged.returncode}: {judged.stdout[-300:]} {judged.stderr[-300:]}")
    backed = tradingd_command(d, "db", "backup", "--out", str(work / "backup"))
    if backed.returncode != 0:
        result.failures.append(f"db backup exited {backed.returncode}: {backed.stderr[-300:]}")


def _sweep(result: Result, work: Path, url: str) -> None:
    """Every file under `work` (logs, the data directory, the backup, the database's own files) and every
    table, searched for the secrets' marker values."""
    markers = [value for value in MARKERS.values() if "marker" in value]  # not the chat id or the severity
    swept = sweep_secrets(url, [work], [*markers, DB_MARKER, HOOK_MARKER])
    result.figures["secrets sweep"] = {"files": swept.files, "tables": swept.tables, "found": swept.found}
    if swept.in_files:
        result.failures.append(f"a secret in {len(swept.in_files)} files: {swept.in_files[:5]}")
    if swept.in_tables:
        result.failures.append(f"a secret in tables: {swept.in_tables}")


def tradingd_command(d: Daemon, *argv: str) -> Any:
    """A one-shot `tradingd` command with the daemon's environment (its database, its secrets)."""
    import subprocess

    from tests.e2e.daemon_harness import TRADINGD

    assert TRADINGD is not None
    command = [TRADINGD, "--config", str(d.config), *argv]
    return subprocess.run(command, env=d.env, capture_output=True, text=True, timeout=300, check=False)
