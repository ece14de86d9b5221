"""The progress reporter: a tqdm bar on a terminal, `progress` log events otherwise, with the right
counts, throttled to tenths of the total, and a final event at done == total."""

from __future__ import annotations

import io
from typing import Any

import pytest
from structlog.testing import capture_logs

from observability.progress import LogTracker, as_step, progress, quiet, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(logs: list[dict[str, Any]]) -> list[tuple[int, int | None, str]]:
    return [(e["done"], e["total"], e["state"]) for e in logs if e["event"] == "progress"]


def test_not_a_terminal_gives_structured_events_ending_at_the_total() -> None:
    stream = io.StringIO()
    with capture_logs() as logs, progress("dataset: features", 20, "row", stream=stream) as tracker:
        for _ in range(20):
            tracker.advance()
    assert stream.getvalue() == ""  # no bar
    seen = events(logs)
    # The first at 0, one per tenth of the total, the last once, at the total.
    assert seen == [(0, 20, "running"), *((n, 20, "running") for n in range(2, 20, 2)), (20, 20, "finished")]
    assert {e["task"] for e in logs} == {"dataset: features"}
    assert {e["unit"] for e in logs} == {"row"}
    assert all(isinstance(e["elapsed"], float) for e in logs)


def test_a_terminal_gets_a_bar_and_no_events() -> None:
    terminal = Terminal()
    with capture_logs() as logs, progress("backfill BTC-USDT 1m", 4, "batch", stream=terminal) as tracker:
        tracker.advance(3)
        tracker.advance()
    assert events(logs) == []
    drawn = terminal.getvalue()
    assert "backfill BTC-USDT 1m" in drawn
    assert "4/4" in drawn


def test_unknown_totals_report_by_time_and_finish_short_of_nothing() -> None:
    clock = Clock()
    with capture_logs() as logs:
        tracker = LogTracker("backfill ETH-USDT 1m", None, "batch", every_sec=10.0, clock=clock)
        tracker.advance()  # too soon for another event
        clock.now += 10.0
        tracker.advance(2)
        clock.now += 1.5
        tracker.close()
    assert events(logs) == [(0, None, "running"), (3, None, "running"), (3, None, "finished")]
    assert [e["elapsed"] for e in logs] == [0.0, 10.0, 11.5]


def test_work_ending_short_of_its_total_or_failing_says_so() -> None:
    with capture_logs() as logs:
        with progress("backfill", 10, "batch") as tracker:
            tracker.advance(4)  # the venue's first candle reached before --max-batches
        with pytest.raises(RuntimeError), progress("fold 1: train agent:x@1", 5, "iteration") as tracker:
            tracker.advance()
            raise RuntimeError("boom")
    assert events(logs) == [(0, 10, "running"), (4, 10, "running"), (4, 10, "finished"), (0, 5, "running"),
                            (1, 5, "running"), (1, 5, "failed")]  # fmt: skip


def test_track_counts_each_item_once_its_loop_body_is_done() -> None:
    with capture_logs() as logs:
        seen = list(track(["BTC-USDT", "ETH-USDT"], "report: pairs", "pair"))
        written = as_step(progress, "evaluate: report", "report", lambda path: f"wrote {path}")("index.html")
    assert seen == ["BTC-USDT", "ETH-USDT"]
    assert written == "wrote index.html"
    assert events(logs) == [(0, 2, "running"), (1, 2, "running"), (2, 2, "finished"), (0, 1, "running"),
                            (1, 1, "finished")]  # fmt: skip


def test_quiet_reports_nothing() -> None:
    with capture_logs() as logs, quiet("anything", 3, "thing") as tracker:
        tracker.advance(3)
    assert logs == []
