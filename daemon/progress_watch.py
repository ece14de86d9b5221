"""Is the daemon making progress? The watchdog's question beyond "is the main loop turning".

A pair is behind when its feed holds a final candle newer than the newest one its execution actor has
decided; it is stalled when it has been behind for `stall_after_sec` without deciding anything new. The
daemon is stalled when every running pair is (and at least one runs): candles arrive and nothing
decides them. A pair that waits for its data (no new candle arrives) is never behind, so a quiet market
or a venue outage does not stall the daemon; a pair that is not running (restarting, FAULTED) is the
supervisor's business and is left out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass
class _Pair:
    decided_ms: int | None = None
    behind_since: float | None = None
    """Monotonic time since which an arrived candle waits undecided, with no decision since."""


class ProgressWatch:
    def __init__(self, stall_after_sec: float) -> None:
        self.stall_after_sec = stall_after_sec
        self._pairs: dict[str, _Pair] = {}

    def observe(self, pair: str, arrived_ms: int | None, decided_ms: int | None, now: float) -> None:
        """The newest final candle the pair's feed holds, and the newest its execution actor decided."""
        state = self._pairs.setdefault(pair, _Pair())
        progressed = decided_ms != state.decided_ms
        state.decided_ms = decided_ms
        behind = arrived_ms is not None and (decided_ms is None or arrived_ms > decided_ms)
        if not behind:
            state.behind_since = None
        elif state.behind_since is None or progressed:
            state.behind_since = now

    def forget(self, pair: str) -> None:
        """The pair stopped running (its new actors start from scratch)."""
        self._pairs.pop(pair, None)

    def stalled_for(self, pair: str, now: float) -> float | None:
        """Seconds the pair has been behind without deciding, when that reached `stall_after_sec`."""
        state = self._pairs.get(pair)
        if state is None or state.behind_since is None:
            return None
        behind = now - state.behind_since
        return behind if behind >= self.stall_after_sec else None

    def stalled(self, running: Collection[str], now: float) -> dict[str, float]:
        """Every running pair with how long it has been stalled, when all of them are; else empty."""
        if not running:
            return {}
        spans = {pair: self.stalled_for(pair, now) for pair in running}
        if any(span is None for span in spans.values()):
            return {}
        return {pair: round(span, 1) for pair, span in spans.items() if span is not None}
