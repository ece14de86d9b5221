"""`tradingd promote` prints each gate rounded for a person: ratios as percentages, USDT to the cent."""

from __future__ import annotations

from daemon.cli_evaluation import _gate_line, gate_figure
from learning.evaluation.gates import GateResult


def test_figures_are_rounded_by_unit() -> None:
    assert gate_figure(0.553846153846, "ratio") == "55.4%"
    assert gate_figure(1234.56789, "usdt") == "1,234.57 USDT"
    assert gate_figure(-0.004999, "usdt") == "-0.00 USDT"
    assert gate_figure(42.0, "count") == "42"
    assert gate_figure(3.14159265, None) == "3.142"
    assert gate_figure(None, "usdt") == "-"


def test_a_gate_line_rounds_its_value_and_its_threshold() -> None:
    line = _gate_line(GateResult("champion", 812.3456789, ">= 800.123456 (champion steady v1)", True))
    assert line.split() == ["PASS", "champion", "812.35", "USDT", ">=", "800.12", "USDT", "(champion", "steady", "v1)"]
    drawdown = _gate_line(GateResult("max_drawdown", 0.0812345, "<= 0.2", True))
    assert drawdown.split()[2:] == ["8.1%", "<=", "20.0%"]
    walk = _gate_line(GateResult("walk_forward", "walk_forward completed, 3 folds evaluated", "a completed run", True))
    assert "walk_forward completed, 3 folds evaluated  a completed run" in walk
