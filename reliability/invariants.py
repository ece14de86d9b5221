"""What must hold after every scenario, read from the database the daemon wrote."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.daemon_harness import PAIRS, query

MINUTE = 60_000


def decision_failures(url: str, pairs: tuple[str, ...] = PAIRS) -> tuple[list[str], dict[str, int]]:
    """Every candle decided once, none skipped, no client order id twice: the failures, and the decisions
    per pair."""
    failures: list[str] = []
    counts: dict[str, int] = {}
    for pair in pairs:
        times = [
            int(row[0])
            for row in query(
                url,
                "SELECT (extract(epoch FROM candle_open_time) * 1000)::bigint FROM trade_decisions "
                "WHERE pair = $1 ORDER BY 1",
                pair,
            )
        ]
        counts[pair] = len(times)
        if not times:
            failures.append(f"{pair}: no decision")
            continue
        expected = (times[-1] - times[0]) // MINUTE + 1
        if len(times) != expected or len(set(times)) != len(times):
            failures.append(f"{pair}: {len(times)} decisions over {expected} candles (skipped or repeated)")
    twice = query(url, "SELECT client_order_id FROM trade_executions GROUP BY 1 HAVING count(*) > 1")
    if twice:
        failures.append(f"{len(twice)} client order ids used twice")
    return failures, counts


def newest_decided_all(url: str, pairs: tuple[str, ...] = PAIRS) -> int:
    """The newest candle every pair has decided: 0 while any pair has decided none (a pair with no rows
    would otherwise drop out of the minimum, and the others' progress would pass for all of them)."""
    rows = query(
        url,
        "SELECT pair, (extract(epoch FROM max(candle_open_time)) * 1000)::bigint FROM trade_decisions "
        "WHERE pair = ANY($1) GROUP BY pair",
        list(pairs),
    )
    return newest_of_every(pairs, {row[0]: int(row[1]) for row in rows})


def newest_of_every(pairs: tuple[str, ...], newest: dict[str, int]) -> int:
    """The oldest of the pairs' newest decided candles, a pair without one counting as 0."""
    return min((newest.get(pair, 0) for pair in pairs), default=0)


@dataclass
class SecretSweep:
    """Where marker secrets were found: files (relative to the root searched) and tables."""

    files: int = 0
    tables: int = 0
    in_files: list[str] = field(default_factory=list)
    in_tables: list[str] = field(default_factory=list)

    @property
    def found(self) -> int:
        return len(self.in_files) + len(self.in_tables)


def sweep_secrets(url: str, roots: Iterable[Path], markers: Sequence[str]) -> SecretSweep:
    """Every file under `roots` (logs, data directories, backups, the database's own files) and every row of
    every table, searched for the marker values."""
    swept = SecretSweep()
    tables = [row[0] for row in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    swept.tables = len(tables)
    swept.in_tables = [
        table
        for table in tables
        if any(marker in str(row) for row in query(url, f'SELECT * FROM "{table}"') for marker in markers)
    ]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                swept.files += 1
                try:
                    data = path.read_bytes()
                except OSError:  # a socket, or a file removed meanwhile
                    continue
                if any(marker.encode() in data for marker in markers):
                    swept.in_files.append(str(path.relative_to(root)))
    return swept
