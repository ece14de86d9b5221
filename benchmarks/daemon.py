"""Daemon benchmark: the real `tradingd run` process trading 1, 4 and 16 pairs replayed by `tradingd sim`,
beside a bare 4-actor Ray chain measured in the same run.

    uv run python -m benchmarks.daemon [--quick] [--write]

- the bare chain: 4 async Ray actors (num_cpus=0) shaped like ours (the receiving method only enqueues,
  one worker task per actor awaits the call to the next one); latency from the first actor's receipt to
  the last's, one message at a time, and throughput when sent as fast as the first actor accepts them;
- decision latency (`trade_decisions.latency_ms`, p50/p99) at one candle per second per pair (`--speed 60`);
- sustained decisions/s with the simulator pushing as fast as the daemon reads (`--speed fast`);
- resident memory of the daemon and every process under it (RSS and USS), per pair;
- time from the process start to READY=1, and from `kill -9` of the whole tree to the next decision.

The simulator and the daemon are started by the e2e tests' harness (tests/e2e/daemon_harness.py: candle
files, `tradingd sim`, the config, the notify socket, kill and stop), so run this from the repository root.
Pairs replay the real BTC and ETH files of ../shared/data/candles under other names (B01-USDT, E01-USDT,
...). The simulator advances one simulated second per step and pushes every topic's kline at each step:
60 websocket frames per 1m candle and pair, whatever the speed. Each daemon gets its own database on one
embedded PostgreSQL started here (not under the daemon, so not in its memory). The daemon's CPU is broken
down by process (each actor class, Ray's own processes, the simulator, PostgreSQL) over each window.

`--quick` runs 1 and 4 pairs only (about 7 minutes; everything takes about 19 on 2 cores). `--keep DIR`
keeps the logs and files. `--write` replaces the daemon section of docs/performance.md with this run's
figures (only after a run of every part).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from benchmarks.market_data import percentile
from benchmarks.report import write_section
from exchange.sim.candle_file import load_candle_file
from storage.embedded import EmbeddedPostgres
from tests.e2e.daemon_harness import (
    START_BARS,
    Daemon,
    cut_files,
    daemon,
    decisions_per_pair,
    newest_decided,
    query,
    simulator_process,
    write_config,
)

START, END = "<!-- daemon-bench:start -->", "<!-- daemon-bench:end -->"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "candles"
MINUTE = 60_000
LIVE_ROWS = START_BARS + 1500  # enough for a 16-pair start-up and the live window at 60x
SKIP_PER_PAIR = 10  # the first decisions of each pair (catching up on stored candles) are not counted
CHAIN_ROLES = 4
OTHERS = "others (not ours)"
ACCOUNT_LIMITS = {  # let every pair hold a position
    "breaker_max_losses": 1_000_000,
    "max_gross_exposure": 1_000_000_000,
    "max_net_exposure": 1_000_000_000,
    "daily_loss_limit": 1_000_000_000,
}


# ---------------------------------------------------------------------------------------------- the bare Ray chain


class ChainHop:
    """Shaped like our actors: `on_message` only enqueues; one worker task handles messages in order and
    awaits the call to the next hop. The first hop records its receipt, the last one its arrival."""

    def __init__(self, next_hop: Any, record: bool) -> None:
        self.next_hop = next_hop
        self.record = record
        self.times: dict[int, float] = {}
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    async def on_message(self, message: int) -> None:
        if self.record:
            self.times[message] = time.time()
        if self.next_hop is not None:
            if self.worker is None:
                self.worker = asyncio.get_running_loop().create_task(self._work())
            self.queue.put_nowait(message)

    async def _work(self) -> None:
        while True:
            message = await self.queue.get()
            await self.next_hop.on_message.remote(message)

    def pid(self) -> int:
        return os.getpid()

    def recorded(self) -> dict[int, float]:
        return dict(self.times)

    def count(self) -> int:
        return len(self.times)

    def clear(self) -> None:
        self.times = {}


def ray_chain(latency_messages: int, throughput_messages: int, pause_sec: float = 0.01) -> dict[str, Any]:
    # Read when ray is imported: under `uv run`, Ray would otherwise package the working directory.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray

    hop_class: Any = ray.remote(num_cpus=0)(ChainHop)
    began = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_sec = time.perf_counter() - began
    try:
        last = hop_class.remote(None, True)
        hops = [last]
        for _ in range(CHAIN_ROLES - 2):
            hops.append(hop_class.remote(hops[-1], False))
        first = hop_class.remote(hops[-1], True)
        hops.append(first)

        def arrived(count: int, timeout: float = 120.0) -> None:
            deadline = time.monotonic() + timeout
            while ray.get(last.count.remote()) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError("the chain did not deliver every message")
                time.sleep(0.02)

        for message in range(200):  # warm-up: workers, connections between them
            ray.get(first.on_message.remote(message))
        arrived(200)
        ray.get([first.clear.remote(), last.clear.remote()])

        for message in range(latency_messages):
            ray.get(first.on_message.remote(message))
            time.sleep(pause_sec)
        arrived(latency_messages)
        sent, got = ray.get([first.recorded.remote(), last.recorded.remote()])
        latencies = [got[m] - sent[m] for m in range(latency_messages)]
        ray.get([first.clear.remote(), last.clear.remote()])

        began = time.perf_counter()
        for message in range(throughput_messages):
            ray.get(first.on_message.remote(message))
        accepted_sec = time.perf_counter() - began
        arrived(throughput_messages)
        sent, got = ray.get([first.recorded.remote(), last.recorded.remote()])
        span = max(got.values()) - min(sent.values())
        time.sleep(2)
        idle = CpuWindow({"hops": [ray.get(h.pid.remote()) for h in hops]})
        time.sleep(10)
        idle_percent = idle.finish()["hops"] / len(hops)
    finally:
        ray.shutdown()
    return {
        "init_sec": init_sec,
        "messages": latency_messages,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "throughput_messages": throughput_messages,
        "throughput": throughput_messages / span,
        "accepted": throughput_messages / accepted_sec,
        "version": ray.__version__,
        "idle_actor_percent": idle_percent,
    }


# ---------------------------------------------------------------------------------------------- processes


def pair_names(count: int) -> list[str]:
    """B01-USDT, E01-USDT, B02-USDT, ...: BTC and ETH candles under new names, alternately (as cut_files
    assigns the two files)."""
    return [f"{'BE'[i % 2]}{i // 2 + 1:02d}-USDT" for i in range(count)]


def last_open_ms(files: dict[str, Path]) -> int:
    return min(load_candle_file(path)[-1].open_time_ms for path in set(files.values()))


class Postgres:
    """One embedded PostgreSQL for the whole benchmark; a fresh database per daemon run."""

    def __init__(self, directory: Path) -> None:
        self.server = EmbeddedPostgres(directory)
        self.url = ""

    def start(self) -> None:
        self.url = self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def new_database(self) -> str:
        name = f"tradingd_bench_{uuid.uuid4().hex[:12]}"
        query(self.url, f'CREATE DATABASE "{name}"')
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))

    def pids(self) -> list[int]:
        try:
            postmaster = psutil.Process(int((self.server.pgdata / "postmaster.pid").read_text().split()[0]))
            return [postmaster.pid, *(p.pid for p in postmaster.children(recursive=True))]
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            return []


@dataclass
class Running:
    """One daemon run: its pairs, their candle files, its database, the simulator's pid, the daemon."""

    pairs: list[str]
    files: dict[str, Path]
    database: str
    sim_pid: int
    daemon: Daemon


@contextlib.contextmanager
def running(count: int, speed: str, rows: int | None, postgres: Postgres, work: Path) -> Iterator[Running]:
    """`count` pairs: their candle files, `tradingd sim` at `speed`, a fresh database and the daemon (not
    started), configured like the e2e tests' but with account limits that let every pair hold a position and
    the daemon's default supervision settings (`daemon.start_timeout_sec` gives a cold 16-pair start on 2
    cores the time it needs), and the watchdog of deploy/tradingd.service (WatchdogSec=60)."""
    work.mkdir()
    pairs = pair_names(count)
    files = cut_files(SHARED, work, rows, pairs)
    database = postgres.new_database()
    config = write_config(work, pairs=pairs, account=ACCOUNT_LIMITS, supervision={})
    with (
        simulator_process(files, speed, work / f"sim-{speed}.log") as (urls, sim),
        daemon(
            config, urls, database, work, watchdog_usec=60_000_000, extra_env={"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
        ) as handle,
    ):
        yield Running(pairs, files, database, sim.pid, handle)


def memory(daemon: Daemon) -> dict[str, float]:
    """MiB resident (RSS) and unique (USS) summed over the daemon and every process under it."""
    rss = uss = 0
    processes = daemon.tree()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            info = process.memory_full_info()
            rss += info.rss
            uss += info.uss
    return {"rss_mib": rss / 2**20, "uss_mib": uss / 2**20, "processes": len(processes)}


def problems(daemon: Daemon) -> Counter[str]:
    """error and critical events in the daemon's log, by event name."""
    return Counter(
        f"{r.get('level')}:{r.get('event')}" for r in daemon.log_records() if r.get("level") in ("error", "critical")
    )


def problem_samples(daemon: Daemon) -> dict[str, str]:
    """The first error or critical record of each event name, shortened."""
    samples: dict[str, str] = {}
    for record in daemon.log_records():
        if record.get("level") in ("error", "critical"):
            key = f"{record.get('level')}:{record.get('event')}"
            details = {k: v for k, v in record.items() if k not in ("timestamp", "level", "event", "logger")}
            samples.setdefault(key, json.dumps(details, default=str)[:300])
    return samples


# ---------------------------------------------------------------------------------------------- CPU while running


def cpu_seconds(processes: dict[str, list[int]]) -> dict[str, float]:
    """User + system CPU seconds so far, by group."""
    totals: dict[str, float] = {}
    for group, pids in processes.items():
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = psutil.Process(pid).cpu_times()
                totals[group] = totals.get(group, 0.0) + times.user + times.system
    return totals


def process_groups(daemon: Daemon, postgres: Postgres, sim_pid: int | None) -> dict[str, list[int]]:
    """The daemon's processes by role (its main process, each Ray actor class, Ray's own processes), the
    simulator and the embedded PostgreSQL."""
    groups: dict[str, list[int]] = {}
    tree = daemon.tree()
    for index, process in enumerate(tree):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if index == 0:
                name = "daemon main process"
            else:
                cmdline = process.cmdline()
                title = cmdline[0] if cmdline else process.name()
                if title.startswith("ray::"):
                    name = title.split(".")[0].split()[0]
                else:
                    name = "ray system (raylet, gcs, agents)"
            groups.setdefault(name, []).append(process.pid)
    if sim_pid is not None:
        groups["simulator"] = [sim_pid]
    groups["postgres"] = postgres.pids()
    return groups


def machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuWindow:
    """CPU use by process group over a window, in % of one core; `others` is the rest of the machine."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before = cpu_seconds(groups)
        self.busy = machine_busy()
        self.began = time.monotonic()

    def finish(self) -> dict[str, float]:
        took = time.monotonic() - self.began
        after = cpu_seconds(self.groups)
        used = {k: 100 * (after.get(k, 0.0) - v) / took for k, v in self.before.items()}
        used["whole machine"] = 100 * (machine_busy() - self.busy) / took
        used[OTHERS] = used["whole machine"] - sum(v for k, v in used.items() if k != "whole machine")
        return used


# ---------------------------------------------------------------------------------------------- scenarios


@dataclass
class PairsResult:
    pairs: int
    ready_sec: float = 0.0
    ready_status: str = ""
    own_ready_sec: float = 0.0
    all_deciding_sec: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    live_cpu: dict[str, float] = field(default_factory=dict)
    throughput: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    exits: list[str] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)
    problems: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)


def until_every_pair_decides(run: Running, at_least: int, timeout: float) -> float:
    """Seconds from the daemon's start until every pair has `at_least` decisions."""
    run.daemon.wait_until(
        lambda: all(decisions_per_pair(run.database).get(p, 0) >= at_least for p in run.pairs),
        timeout,
        f"{at_least} decisions of every pair",
        every=0.25,
    )
    return time.monotonic() - run.daemon.started_at


def stop(daemon: Daemon, label: str, result: PairsResult) -> None:
    code, took, left = daemon.terminate_counted()
    clean = [r.get("clean") for r in daemon.events("daemon_stopped")]
    result.exits.append(
        f"{label}: exit {code} after SIGTERM in {took:.1f} s, clean {clean[-1] if clean else None}, "
        f"{left} processes left"
    )
    notes = [] if code == 0 else [f"exit {code}"]
    notes += [] if clean and clean[-1] else ["not clean: the shutdown deadline passed"]
    notes += [f"{left} processes left"] if left else []
    result.stops[label] = f"{took:.1f} s" + (f" ({', '.join(notes)})" if notes else "")
    result.problems.update(problems(daemon))
    for key, sample in problem_samples(daemon).items():
        result.samples.setdefault(key, sample)


def count_decisions(database: str) -> int:
    return int(query(database, "SELECT count(*) FROM trade_decisions")[0][0])


def live_run(count: int, postgres: Postgres, scratch: Path, window_sec: float, result: PairsResult) -> None:
    """`--speed 60`: READY, memory, and the decision latency over `window_sec` once every pair decided
    SKIP_PER_PAIR times."""
    with running(count, "60", LIVE_ROWS, postgres, scratch / f"live-{count}") as run:
        run.daemon.start()
        result.ready_sec, result.ready_status = run.daemon.ready()
        result.all_deciding_sec = until_every_pair_decides(run, 1, 300)
        until_every_pair_decides(run, SKIP_PER_PAIR, 300)
        window = CpuWindow(process_groups(run.daemon, postgres, run.sim_pid))
        time.sleep(window_sec)
        run.daemon.check_alive("the live window")
        result.live_cpu = window.finish()
        result.memory = memory(run.daemon)
        rows = query(
            run.database,
            "SELECT pair, latency_ms, forced_hold_reason, candle_open_time AS t, "
            "row_number() OVER (PARTITION BY pair ORDER BY candle_open_time) AS n FROM trade_decisions",
        )
        counted = [r for r in rows if r["n"] > SKIP_PER_PAIR]
        kept = [float(r["latency_ms"]) for r in counted if r["forced_hold_reason"] != "stale_features"]
        fastest: dict[Any, float] = {}  # per candle, the pair decided first: the others queued behind it
        for r in counted:
            if r["forced_hold_reason"] != "stale_features":
                fastest[r["t"]] = min(fastest.get(r["t"], float("inf")), float(r["latency_ms"]))
        result.latency = {
            "count": len(kept),
            "p50_ms": statistics.median(kept),
            "p99_ms": percentile(kept, 0.99),
            "max_ms": max(kept),
            "stale": len(counted) - len(kept),
            "fastest_p50_ms": statistics.median(fastest.values()),
        }
        stop(run.daemon, "live", result)
        result.own_ready_sec = float(run.daemon.events("daemon_ready")[0]["seconds"])


def fast_run(
    count: int, postgres: Postgres, scratch: Path, skip_sec: float, window_sec: float, result: PairsResult
) -> None:
    """`--speed fast`: decisions/s over `window_sec`, from `skip_sec` after every pair's first decision.
    Whole files: with no client connected the simulator's clock races ahead until the first feed is."""
    with running(count, "fast", None, postgres, scratch / f"fast-{count}") as run:
        end_ms = last_open_ms(run.files)
        run.daemon.start()
        run.daemon.ready()
        until_every_pair_decides(run, 1, 300)
        time.sleep(skip_sec)
        window = CpuWindow(process_groups(run.daemon, postgres, run.sim_pid))
        first = count_decisions(run.database)
        began = time.monotonic()
        time.sleep(window_sec)
        last = count_decisions(run.database)
        took = time.monotonic() - began
        result.cpu = window.finish()
        run.daemon.check_alive("the fast window")
        per_pair = decisions_per_pair(run.database)
        newest = min(newest_decided(run.database, pair) for pair in run.pairs)
        window_rows = query(
            run.database,
            "SELECT latency_ms, forced_hold_reason FROM trade_decisions ORDER BY decided_at DESC LIMIT $1",
            last - first,
        )
        latencies = [float(r["latency_ms"]) for r in window_rows]
        result.throughput = {
            "decisions": last - first,
            "seconds": took,
            "per_sec": (last - first) / took,
            "min_pair": min(per_pair.get(p, 0) for p in run.pairs),
            "max_pair": max(per_pair.get(p, 0) for p in run.pairs),
            "stale_share": sum(1 for r in window_rows if r["forced_hold_reason"] == "stale_features")
            / max(1, len(window_rows)),
            "latency_p50_ms": statistics.median(latencies) if latencies else 0.0,
            "sim_left_min": (end_ms - newest) / MINUTE,
        }
        stop(run.daemon, "fast", result)


def first_decided_after(database: str, wall_time: float) -> float | None:
    """The wall-clock time (epoch seconds) of the first decision recorded after `wall_time`, if any."""
    found = query(
        database,
        "SELECT extract(epoch FROM min(decided_at)) FROM trade_decisions WHERE decided_at > to_timestamp($1)",
        wall_time,
    )[0][0]
    return None if found is None else float(found)


def kill_restart(postgres: Postgres, scratch: Path) -> dict[str, Any]:
    """2 pairs at 60x: kill -9 of the whole tree once decisions flow, an immediate restart; seconds from
    the kill to the first decision recorded after it, and from the restart to READY=1."""
    with running(2, "60", LIVE_ROWS, postgres, scratch / "kill") as run:
        run.daemon.start()
        run.daemon.ready()
        until_every_pair_decides(run, SKIP_PER_PAIR, 180)
        killed_at = run.daemon.kill_everything()
        problems_before = problems(run.daemon)
        run.daemon.start()
        restart_ready, _ = run.daemon.ready()
        run.daemon.wait_until(
            lambda: first_decided_after(run.database, killed_at) is not None,
            180,
            "a decision after the restart",
            every=0.1,
        )
        first_after = first_decided_after(run.database, killed_at)
        assert first_after is not None
        code, took, left = run.daemon.terminate_counted()
        return {
            "kill_to_decision_sec": first_after - killed_at,
            "restart_ready_sec": restart_ready,
            "exit": f"exit {code} after SIGTERM in {took:.1f} s, {left} processes left",
            "problems": problems(run.daemon) - problems_before,
            "problems_before_kill": problems_before,
        }


# ---------------------------------------------------------------------------------------------- report


def markdown(
    chain: dict[str, Any],
    results: dict[int, PairsResult],
    kill: dict[str, Any],
    settings: dict[str, float],
    load: str,
) -> str:
    counts = sorted(results)
    most = counts[-1]

    def row(what: str, cells: list[str]) -> str:
        return f"| {what} | " + " | ".join(cells) + " |"

    lines = [
        START,
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `uv run python -m benchmarks.daemon --write` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, Ray {chain['version']}: "
        "`tradingd run` (baseline policy `momentum`, feature set v2, 1m candles, paper) against `tradingd sim` in "
        f"its own process, embedded PostgreSQL; {load}.",
        "",
        "| what | " + " | ".join(f"{n} pair{'s' if n > 1 else ''}" for n in counts) + " |",
        "| --- | " + " | ".join("---" for _ in counts) + " |",
        row(
            f"decision latency (`trade_decisions.latency_ms`), `--speed 60`, {settings['live_window']:.0f} s "
            f"after each pair's first {SKIP_PER_PAIR} decisions",
            [
                f"p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms (n={x['count']:.0f}; the first pair decided "
                f"per candle: p50 {x['fastest_p50_ms']:.1f} ms)"
                for x in (results[n].latency for n in counts)
            ],
        ),
        row(
            f"sustained decisions/s, all pairs, `--speed fast`, {settings['fast_window']:.0f} s window "
            f"from {settings['fast_skip']:.0f} s after every pair's first decision",
            [
                f"{x['per_sec']:,.1f} ({x['stale_share']:.0%} `stale_features`)"
                for x in (results[n].throughput for n in counts)
            ],
        ),
        row(
            "resident memory of the daemon and every process under it, RSS / USS (end of the 60x window)",
            [
                f"{m['rss_mib']:,.0f} / {m['uss_mib']:,.0f} MiB ({m['processes']:.0f} processes)"
                for m in (results[n].memory for n in counts)
            ],
        ),
        row(
            "process start to READY=1 (fresh database, 60x run)",
            [f"{results[n].ready_sec:.1f} s" for n in counts],
        ),
        row(
            "SIGTERM to exit (exit code 0 unless noted): after the 60x window / after the fast window "
            "(its backlog drained first)",
            [f"{results[n].stops.get('live', '-')} / {results[n].stops.get('fast', '-')}" for n in counts],
        ),
        "",
        "| what | figure | beside it, same run |",
        "| --- | --- | --- |",
        f"| bare 4-actor Ray chain (async actors, each enqueues and a worker awaits the next), first receipt to "
        f"last arrival, {chain['messages']:,} messages one at a time | p50 {chain['p50_ms']:.1f} ms, "
        f"p99 {chain['p99_ms']:.1f} ms | the daemon's decision latency, 1 pair: "
        f"p50 {results[counts[0]].latency['p50_ms']:.1f} ms |",
        f"| the same chain, {chain['throughput_messages']:,} messages sent as fast as the first actor accepts them "
        f"| {chain['throughput']:,.0f} msg/s | the daemon, 1 pair, `--speed fast`: "
        f"{results[counts[0]].throughput['per_sec']:,.0f} decisions/s |",
    ]
    if 1 in results and 16 in results:
        rss = (results[16].memory["rss_mib"] - results[1].memory["rss_mib"]) / 15
        uss = (results[16].memory["uss_mib"] - results[1].memory["uss_mib"]) / 15
        lines.append(
            f"| memory per added pair ((16 pairs - 1 pair) / 15) | RSS {rss:,.0f} MiB, USS {uss:,.0f} MiB "
            "| ../shared/PERFORMANCE.md: an idle Ray actor costs ~65 MiB; a pair has 5 actors |"
        )
    lines += [
        f"| `kill -9` of the whole process tree (2 pairs, 60x), restart at once, to the next decision recorded "
        f"| {kill['kill_to_decision_sec']:.1f} s | READY=1 {kill['restart_ready_sec']:.1f} s after the restart |",
        f"| `ray.init` (local, 2 CPUs) | {chain['init_sec']:.1f} s | |",
        f"| CPU of an idle async Ray actor (the chain's, 10 s after its last message) "
        f"| {chain['idle_actor_percent']:.2f}% of a core "
        f"| {most} pairs run {5 * most + 1} actors: {(5 * most + 1) * chain['idle_actor_percent']:.0f}% of a core "
        "idle |",
        "",
        f"CPU in % of one core, {most} pairs: at 60x, {cpu_line(results[most].live_cpu)}; with `--speed fast`, "
        f"{cpu_line(results[most].cpu)}.",
        END,
    ]
    return "\n".join(lines)


def cpu_line(used: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if round(v) > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="1 and 4 pairs only")
    parser.add_argument("--pairs", default=None, help="comma-separated pair counts (default 1,4,16), or none")
    parser.add_argument("--live-window", type=float, default=60.0, help="seconds of 60x decisions per run")
    parser.add_argument("--fast-skip", type=float, default=10.0)
    parser.add_argument("--fast-window", type=float, default=30.0)
    parser.add_argument("--chain-messages", type=int, default=2000)
    parser.add_argument("--skip-chain", action="store_true")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--modes", default="live,fast", help="which runs per pair count: live, fast or both")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and files in this (new) directory")
    args = parser.parse_args()
    modes = set(args.modes.split(","))
    spec = args.pairs or ("1,4" if args.quick else "1,4,16")
    counts = [] if spec == "none" else [int(n) for n in spec.split(",")]
    if not (SHARED / "BINANCE_BTCUSDT_1m.csv").is_file():
        sys.exit(f"real candles not found at {SHARED}")
    began = time.monotonic()
    loads = [os.getloadavg()[0]]

    chain: dict[str, Any] = {}
    if not args.skip_chain:
        chain = ray_chain(args.chain_messages, 3000)
        print(
            f"bare Ray chain: init {chain['init_sec']:.1f} s, p50 {chain['p50_ms']:.2f} ms, "
            f"p99 {chain['p99_ms']:.2f} ms, "
            f"{chain['throughput']:.0f} msg/s (first actor accepted {chain['accepted']:.0f}/s), "
            f"an idle actor {chain['idle_actor_percent']:.2f}% of a core",
            flush=True,
        )

    results: dict[int, PairsResult] = {}
    kill: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True)
            scratch = args.keep.absolute()
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tradingd-bench-")))
        postgres = Postgres(scratch / "pg")
        postgres.start()
        try:
            for count in counts:
                result = results[count] = PairsResult(count)
                if "live" in modes:
                    live_run(count, postgres, scratch, args.live_window, result)
                    loads.append(os.getloadavg()[0])
                    print(
                        f"{count} pairs, 60x: READY {result.ready_sec:.1f} s ({result.ready_status!r}; its own count "
                        f"{result.own_ready_sec:.1f} s), every pair deciding {result.all_deciding_sec:.1f} s, "
                        f"latency {result.latency}, memory {result.memory}",
                        flush=True,
                    )
                    print(f"  CPU % of one core in the 60x window: {cpu_line(result.live_cpu)}", flush=True)
                if "fast" in modes:
                    fast_run(count, postgres, scratch, args.fast_skip, args.fast_window, result)
                    loads.append(os.getloadavg()[0])
                    print(f"{count} pairs, fast: {result.throughput}", flush=True)
                    print(f"  CPU % of one core in the fast window: {cpu_line(result.cpu)}", flush=True)
                print(f"  {'; '.join(result.exits)}; log errors: {dict(result.problems) or 'none'}", flush=True)
                for key, sample in result.samples.items():
                    print(f"    {key}: {sample}", flush=True)
            if not args.skip_kill:
                kill = kill_restart(postgres, scratch)
                loads.append(os.getloadavg()[0])
                print(f"kill -9 and restart: {kill}", flush=True)
        finally:
            postgres.stop()
    elapsed = time.monotonic() - began
    others = max(
        [0.0, *(w.get(OTHERS, 0.0) for r in results.values() for w in (r.live_cpu, r.cpu))],
    )
    load = (
        f"the whole run took {elapsed / 60:.0f} min; in the measurement windows other processes used at most "
        f"{others:.0f}% of one core (the 1-minute load average peaked at {max(loads):.0f}: the daemon's own Ray "
        "workers starting)"
    )
    print(load)
    if chain and kill and modes == {"live", "fast"}:
        settings = {"live_window": args.live_window, "fast_window": args.fast_window, "fast_skip": args.fast_skip}
        section = markdown(chain, results, kill, settings, load)
        print(section)
        if args.write:
            write_section(START, END, section, heading="Daemon")


if __name__ == "__main__":
    main()
