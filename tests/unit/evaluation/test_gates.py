"""Promotion gates on scripted figures: each gate's value and threshold, and a candidate worse than the
champion or than the best baseline refused with the failing gate named."""

from __future__ import annotations

from typing import Any

from learning.agent_config import PromotionGates
from learning.evaluation.gates import EvaluationFigures, check_gates

GATES = PromotionGates(
    min_win_rate=0.5, min_net_pnl=100.0, max_drawdown=0.1, min_trade_count=20, min_margin_over_baseline=50.0
)


def figures(
    net: float = 500.0, status: str = "completed", kind: str = "walk_forward", **more: Any
) -> EvaluationFigures:
    metrics = {"net_pnl": net, "win_rate": 0.55, "max_drawdown": 0.05, "trade_count": 40} | more
    baselines = {"hold": {"net_pnl": 0.0}, "momentum": {"net_pnl": 300.0}}
    return EvaluationFigures(kind, status, 4, metrics, baselines)


def failing(results: list[Any]) -> list[str]:
    return [result.name for result in results if not result.passed]


def test_a_good_candidate_passes_every_gate_with_its_figures() -> None:
    results = check_gates(GATES, figures(), None)
    assert failing(results) == []
    by_name = {result.name: result for result in results}
    assert (by_name["win_rate"].value, by_name["win_rate"].threshold) == (0.55, ">= 0.5")
    assert (by_name["max_drawdown"].value, by_name["max_drawdown"].threshold) == (0.05, "<= 0.1")
    margin = by_name["margin_over_baseline"]
    assert (margin.value, margin.threshold) == (200.0, ">= 50.0")
    assert "best baseline momentum" in margin.detail
    assert by_name["champion"].detail == "no champion for this pair"


def test_each_threshold_refuses_by_name() -> None:
    assert failing(check_gates(GATES, figures(win_rate=0.4), None)) == ["win_rate"]
    assert failing(check_gates(GATES, figures(net=90.0), None)) == ["net_pnl", "margin_over_baseline"]
    assert failing(check_gates(GATES, figures(max_drawdown=0.2), None)) == ["max_drawdown"]
    assert failing(check_gates(GATES, figures(trade_count=3), None)) == ["trade_count"]
    assert failing(check_gates(GATES, figures(win_rate=None), None)) == ["win_rate"]


def test_a_candidate_worse_than_the_best_baseline_is_refused() -> None:
    results = check_gates(GATES, figures(net=320.0), None)  # beats hold by 320, momentum by only 20
    assert failing(results) == ["margin_over_baseline"]
    margin = next(result for result in results if result.name == "margin_over_baseline")
    assert margin.value == 20.0


def test_a_candidate_worse_than_the_champion_is_refused() -> None:
    champion = ("steady v3", figures(net=800.0))
    results = check_gates(GATES, figures(net=500.0), champion)
    assert failing(results) == ["champion"]
    gate = next(result for result in results if result.name == "champion")
    assert (gate.value, gate.threshold) == (500.0, ">= 800.0 (champion steady v3)")
    assert failing(check_gates(GATES, figures(net=800.0), champion)) == []


def test_a_champion_without_a_comparable_evaluation_blocks_promotion() -> None:
    results = check_gates(GATES, figures(), ("steady v3", None))
    assert failing(results) == ["champion"]
    assert "no completed walk-forward on the same dataset and folds" in results[-1].detail


def test_only_a_completed_walk_forward_counts() -> None:
    assert failing(check_gates(GATES, figures(kind="backtest"), None)) == ["walk_forward"]
    assert failing(check_gates(GATES, figures(status="failed"), None)) == ["walk_forward"]
