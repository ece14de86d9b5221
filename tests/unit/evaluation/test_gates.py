"""Promotion gates on scripted figures: each gate's value and threshold, and a candidate worse than the
champion or than the best baseline refused with the failing gate named."""

from __future__ import annotations

from typing import Any

from learning.agent_config import PromotionGates
from learning.evaluation.gates import EvaluationFigures, GateResult, check_gates

GATES = PromotionGates(
    min_win_rate=0.5, min_net_pnl=100.0, max_drawdown=0.1, min_trade_count=20, min_margin_over_baseline=50.0
)


def fold(
    index: int,
    net: float,
    held: float = 50.0,
    momentum: float = 75.0,
    drawdown: float = 0.05,
    held_drawdown: float = 0.08,
) -> dict[str, Any]:
    """One stored fold: the agent's figures, the baselines' and buy-and-hold's."""
    return {
        "fold": index,
        "skipped": None,
        "metrics": {"net_pnl": net, "max_drawdown": drawdown},
        "baselines": {"hold": {"net_pnl": 0.0}, "momentum": {"net_pnl": momentum}},
        "buy_and_hold": {"net_pnl": held, "max_drawdown": held_drawdown},
    }


FOLDS = [fold(k, 125.0) for k in range(1, 5)]


def figures(
    net: float = 500.0,
    status: str = "completed",
    kind: str = "walk_forward",
    folds: list[dict[str, Any]] | None = None,
    held: float = 200.0,
    **more: Any,
) -> EvaluationFigures:
    metrics = {"net_pnl": net, "win_rate": 0.55, "max_drawdown": 0.05, "trade_count": 40} | more
    metrics["buy_and_hold"] = {"net_pnl": held, "max_drawdown": 0.08}
    baselines = {"hold": {"net_pnl": 0.0}, "momentum": {"net_pnl": 300.0}}
    return EvaluationFigures(kind, status, 4, metrics, baselines, FOLDS if folds is None else folds)


HOLDOUT = {
    "rows": 1200,
    "sample": "out_of_sample",
    "metrics": {"net_pnl": 150.0, "max_drawdown": 0.04},
    "buy_and_hold": {"net_pnl": 90.0, "max_drawdown": 0.07},
}


def check(
    gates: PromotionGates,
    candidate: EvaluationFigures,
    champion: tuple[str, EvaluationFigures | None] | None,
    holdout: dict[str, Any] | None = HOLDOUT,
) -> list[GateResult]:
    return check_gates(gates, candidate, champion, holdout)


def failing(results: list[Any]) -> list[str]:
    return [result.name for result in results if not result.passed]


def test_a_good_candidate_passes_every_gate_with_its_figures() -> None:
    results = check(GATES, figures(), None)
    assert failing(results) == []
    by_name = {result.name: result for result in results}
    assert (by_name["win_rate"].value, by_name["win_rate"].threshold) == (0.55, ">= 0.5")
    assert (by_name["max_drawdown"].value, by_name["max_drawdown"].threshold) == (0.05, "<= 0.1")
    margin = by_name["margin_over_baseline"]
    assert (margin.value, margin.threshold) == (200.0, ">= 50.0")
    assert "best baseline momentum" in margin.detail
    assert by_name["champion"].detail == "no champion for this pair"


def test_each_threshold_refuses_by_name() -> None:
    assert failing(check(GATES, figures(win_rate=0.4), None)) == ["win_rate"]
    assert failing(check(GATES, figures(net=90.0), None)) == ["net_pnl", "margin_over_baseline"]
    assert failing(check(GATES, figures(max_drawdown=0.2), None)) == ["max_drawdown"]
    assert failing(check(GATES, figures(trade_count=3), None)) == ["trade_count"]
    assert failing(check(GATES, figures(win_rate=None), None)) == ["win_rate"]


def test_a_candidate_worse_than_the_best_baseline_is_refused() -> None:
    results = check(GATES, figures(net=320.0), None)  # beats hold by 320, momentum by only 20
    assert failing(results) == ["margin_over_baseline"]
    margin = next(result for result in results if result.name == "margin_over_baseline")
    assert margin.value == 20.0


def test_a_candidate_worse_than_the_champion_is_refused() -> None:
    champion = ("steady v3", figures(net=800.0))
    results = check(GATES, figures(net=500.0), champion)
    assert failing(results) == ["champion"]
    gate = next(result for result in results if result.name == "champion")
    assert (gate.value, gate.threshold) == (500.0, ">= 800.0 (champion steady v3)")
    assert failing(check(GATES, figures(net=800.0), champion)) == []


def test_a_champion_without_a_comparable_evaluation_blocks_promotion() -> None:
    results = check(GATES, figures(), ("steady v3", None))
    assert failing(results) == ["champion"]
    assert "no completed walk-forward on the same dataset and folds" in results[-1].detail


def test_only_a_completed_walk_forward_counts() -> None:
    assert failing(check(GATES, figures(kind="backtest"), None)) == ["walk_forward"]
    assert failing(check(GATES, figures(status="failed"), None)) == ["walk_forward"]


def test_an_agent_that_wins_on_aggregate_but_loses_in_most_folds_is_refused() -> None:
    # One fold of +2,000 hides three losing ones: the aggregate (+1,700) passes every aggregate gate.
    folds = [fold(1, 2000.0), fold(2, -100.0), fold(3, -100.0), fold(4, -100.0)]
    results = check(GATES, figures(net=1700.0, folds=folds), None)
    assert failing(results) == ["folds_over_flat", "folds_over_buy_and_hold", "folds_over_best_baseline"]
    by_name = {result.name: result for result in results}
    share = by_name["folds_over_flat"]
    assert (share.value, share.threshold) == (0.25, ">= 0.6")
    assert share.detail == "won 1 of 4 folds; lost folds [2, 3, 4]"


def test_an_agent_that_earns_less_than_buy_and_hold_is_refused() -> None:
    # It beats flat and momentum in every fold, but the market made more in three of them.
    folds = [fold(1, 125.0, held=400.0), fold(2, 125.0, held=400.0), fold(3, 125.0, held=400.0), fold(4, 125.0)]
    results = check(GATES, figures(folds=folds, held=1250.0), None)
    assert failing(results) == ["margin_over_baseline", "folds_over_buy_and_hold"]
    by_name = {result.name: result for result in results}
    assert by_name["margin_over_baseline"].value == -750.0
    assert "best baseline buy_and_hold" in by_name["margin_over_baseline"].detail
    assert by_name["folds_over_buy_and_hold"].value == 0.25


def test_a_fold_drawdown_worse_than_buy_and_hold_s_is_refused_unless_turned_off() -> None:
    folds = [*FOLDS[:3], fold(4, 125.0, drawdown=0.09, held_drawdown=0.08)]
    results = check(GATES, figures(folds=folds), None)
    assert failing(results) == ["drawdown_within_buy_and_hold"]
    gate = next(result for result in results if result.name == "drawdown_within_buy_and_hold")
    assert (gate.value, gate.threshold) == (0.09, "<= 0.08 (buy-and-hold's worst fold)")
    lenient = GATES.model_copy(update={"drawdown_within_buy_and_hold": False})
    relaxed = check(lenient, figures(folds=folds), None)
    assert failing(relaxed) == []
    assert next(r for r in relaxed if r.name == "drawdown_within_buy_and_hold").detail.startswith("off:")


def test_the_fold_share_is_a_setting() -> None:
    folds = [fold(1, 125.0), fold(2, 125.0), fold(3, -10.0), fold(4, -10.0)]
    assert "folds_over_flat" in failing(check(GATES, figures(folds=folds), None))
    half = GATES.model_copy(update={"min_fold_share": 0.5})
    assert "folds_over_flat" not in failing(check(half, figures(folds=folds), None))


def test_an_evaluation_without_per_fold_buy_and_hold_cannot_pass() -> None:
    old = [{key: value for key, value in entry.items() if key != "buy_and_hold"} for entry in FOLDS]
    results = check(GATES, figures(folds=old), None)
    assert failing(results) == [
        "folds_over_flat",
        "folds_over_buy_and_hold",
        "folds_over_best_baseline",
        "drawdown_within_buy_and_hold",
    ]
    assert "evaluate again" in next(r for r in results if r.name == "drawdown_within_buy_and_hold").detail


def test_the_artifact_s_own_holdout_score_is_a_gate() -> None:
    results = check(GATES, figures(), None)
    gate = next(result for result in results if result.name == "holdout")
    assert (gate.value, gate.threshold, gate.passed) == (150.0, ">= 100.0, drawdown <= 10.0%", True)
    assert gate.detail.endswith("drawdown 4.0%; buy-and-hold 90.00 USDT")
    assert "the last 1200 rows, untouched by training" in gate.detail
    losing = HOLDOUT | {"metrics": {"net_pnl": 40.0, "max_drawdown": 0.04}}
    assert failing(check(GATES, figures(), None, losing)) == ["holdout"]
    deep = HOLDOUT | {"metrics": {"net_pnl": 150.0, "max_drawdown": 0.15}}
    assert failing(check(GATES, figures(), None, deep)) == ["holdout"]
    unscored = check(GATES, figures(), None, None)
    assert failing(unscored) == ["holdout"]
    assert "not scored on a holdout span" in next(r for r in unscored if r.name == "holdout").detail
