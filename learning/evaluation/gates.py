"""Promotion gates: what an agent version's latest walk-forward evaluation must show before it may trade
live. Each gate is reported with its value and its threshold, passed or not, so a refusal names what
failed and by how much.

- `walk_forward`: the evaluation is a completed walk-forward with at least one evaluated fold.
- `win_rate`, `net_pnl`, `max_drawdown`, `trade_count`: the aggregate over the folds against the agent
  configuration's `[promotion_gates]`.
- `margin_over_baseline`: net PnL above the best baseline's on the same folds, buy-and-hold included, by
  at least `min_margin_over_baseline` (USDT).
- `folds_over_flat`, `folds_over_buy_and_hold`, `folds_over_best_baseline`: the share of evaluated folds in
  which the agent's net PnL is above flat's (zero), buy-and-hold's and the fold's best baseline's, at least
  `min_fold_share` each. An aggregate can hide an agent that loses in most folds; the folds cannot.
- `drawdown_within_buy_and_hold`: the worst fold's drawdown no worse than buy-and-hold's worst on the
  same folds (`drawdown_within_buy_and_hold = false` turns it off, and the gate says so).
- `holdout`: the exact artifact to be promoted, backtested on the final span of its training dataset that
  its training never touched (`learning.evaluation.holdout`): net PnL at least `min_net_pnl` and drawdown
  within `max_drawdown`. A version trained without a holdout cannot pass.
- `champion`: net PnL at least the current champion's (the pair's promoted version) on the same dataset
  and folds. Passes when there is no champion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from learning.agent_config import PromotionGates
from learning.evaluation.holdout import HOLDOUT
from learning.evaluation.metrics import BUY_AND_HOLD


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float | str | None
    threshold: str
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "gate": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class EvaluationFigures:
    """What the gates read from a stored evaluation."""

    kind: str
    status: str
    evaluated_folds: int
    metrics: Mapping[str, Any]
    baselines: Mapping[str, Mapping[str, Any]]
    folds: Sequence[Mapping[str, Any]] = ()
    """Every fold as stored: the agent's `metrics`, the `baselines`' and `buy_and_hold`'s, or `skipped`."""


def check_gates(
    gates: PromotionGates,
    candidate: EvaluationFigures,
    champion: tuple[str, EvaluationFigures | None] | None,
    holdout: Mapping[str, Any] | None = None,
) -> list[GateResult]:
    """`champion`: None when the pair has no champion (or the candidate is it); otherwise its name and
    its evaluation on the same dataset and folds (None when it has none). `holdout`: the version's own
    artifact scored on its training's untouched final span (`training_metrics.holdout`), if it was."""
    usable = candidate.kind == "walk_forward" and candidate.status == "completed" and candidate.evaluated_folds > 0
    results = [
        GateResult(
            "walk_forward",
            f"{candidate.kind} {candidate.status}, {candidate.evaluated_folds} folds evaluated",
            "a completed walk-forward with >= 1 evaluated fold",
            usable,
        )
    ]
    figures = candidate.metrics
    win_rate = _number(figures.get("win_rate"))
    net = _number(figures.get("net_pnl"))
    drawdown = _number(figures.get("max_drawdown"))
    trades = _number(figures.get("trade_count"))
    results += [
        _at_least("win_rate", win_rate, gates.min_win_rate),
        _at_least("net_pnl", net, gates.min_net_pnl),
        GateResult(
            "max_drawdown",
            drawdown,
            f"<= {gates.max_drawdown}",
            drawdown is not None and drawdown <= gates.max_drawdown,
        ),
        _at_least("trade_count", trades, gates.min_trade_count),
    ]
    baseline_nets = {name: _number(value.get("net_pnl")) for name, value in candidate.baselines.items()}
    held = figures.get(BUY_AND_HOLD)
    if isinstance(held, Mapping):
        baseline_nets[BUY_AND_HOLD] = _number(held.get("net_pnl"))
    known = {name: value for name, value in baseline_nets.items() if value is not None}
    if not known or net is None:
        results.append(
            GateResult(
                "margin_over_baseline",
                None,
                f">= {gates.min_margin_over_baseline}",
                False,
                "no baseline was evaluated on the same folds",
            )
        )
    else:
        best = max(known, key=lambda name: known[name])
        margin = net - known[best]
        results.append(
            GateResult(
                "margin_over_baseline",
                margin,
                f">= {gates.min_margin_over_baseline}",
                margin >= gates.min_margin_over_baseline,
                f"best baseline {best}: net PnL {known[best]:.2f}",
            )
        )
    results += _fold_gates(gates, candidate)
    results.append(holdout_gate(gates, holdout))
    results.append(_champion_gate(net, champion))
    return results


def holdout_gate(gates: PromotionGates, holdout: Mapping[str, Any] | None) -> GateResult:
    """The artifact itself, out of sample: no worse than `min_net_pnl` and within `max_drawdown`."""
    threshold = f">= {gates.min_net_pnl}, drawdown <= {gates.max_drawdown:.1%}"
    if not isinstance(holdout, Mapping) or not isinstance(holdout.get("metrics"), Mapping):
        detail = "the version's artifact was not scored on a holdout span (trained with holdout_share = 0, or before)"
        return GateResult(HOLDOUT, None, threshold, False, detail)
    net = _number(holdout["metrics"].get("net_pnl"))
    drawdown = _number(holdout["metrics"].get("max_drawdown"))
    held = holdout.get(BUY_AND_HOLD)
    market = _number(held.get("net_pnl")) if isinstance(held, Mapping) else None
    passed = net is not None and drawdown is not None and net >= gates.min_net_pnl and drawdown <= gates.max_drawdown
    shown_drawdown = "-" if drawdown is None else f"{drawdown:.1%}"
    shown_market = "-" if market is None else f"{market:,.2f} USDT"
    detail = (
        f"the last {holdout.get('rows')} rows, untouched by training; drawdown {shown_drawdown}; "
        f"buy-and-hold {shown_market}"
    )
    return GateResult(HOLDOUT, net, threshold, passed, detail)


def _fold_gates(gates: PromotionGates, candidate: EvaluationFigures) -> list[GateResult]:
    """The per-fold gates: shares of folds won, and the drawdown beside buy-and-hold's."""
    folds = [fold for fold in candidate.folds if fold.get("skipped") is None and "metrics" in fold]
    threshold = f">= {gates.min_fold_share}"
    missing = [int(fold.get("fold", 0)) for fold in folds if not isinstance(fold.get(BUY_AND_HOLD), Mapping)]
    if not folds or missing:
        detail = (
            "no evaluated fold was recorded"
            if not folds
            else f"folds {missing} have no buy-and-hold figures (an evaluation from before the per-fold gates: "
            "evaluate again)"
        )
        names = ("folds_over_flat", "folds_over_buy_and_hold", "folds_over_best_baseline")
        results = [GateResult(name, None, threshold, False, detail) for name in names]
        results.append(GateResult("drawdown_within_buy_and_hold", None, "<= buy-and-hold's", False, detail))
        return results

    def fold_net(fold: Mapping[str, Any]) -> float:
        return _number(fold["metrics"].get("net_pnl")) or 0.0

    def held(fold: Mapping[str, Any], key: str) -> float:
        return _number(fold[BUY_AND_HOLD].get(key)) or 0.0

    def best_baseline(fold: Mapping[str, Any]) -> float:
        nets = [_number(value.get("net_pnl")) for value in fold.get("baselines", {}).values()]
        return max((net for net in nets if net is not None), default=0.0)

    results = [
        _fold_share("folds_over_flat", folds, threshold, gates.min_fold_share, lambda fold: 0.0, fold_net),
        _fold_share(
            "folds_over_buy_and_hold",
            folds,
            threshold,
            gates.min_fold_share,
            lambda fold: held(fold, "net_pnl"),
            fold_net,
        ),
        _fold_share("folds_over_best_baseline", folds, threshold, gates.min_fold_share, best_baseline, fold_net),
    ]
    worst = max(_number(fold["metrics"].get("max_drawdown")) or 0.0 for fold in folds)
    market_worst = max(held(fold, "max_drawdown") for fold in folds)
    enforced = gates.drawdown_within_buy_and_hold
    results.append(
        GateResult(
            "drawdown_within_buy_and_hold",
            worst,
            f"<= {market_worst} (buy-and-hold's worst fold)",
            worst <= market_worst or not enforced,
            "" if enforced else "off: promotion_gates.drawdown_within_buy_and_hold = false",
        )
    )
    return results


def _fold_share(
    name: str,
    folds: Sequence[Mapping[str, Any]],
    threshold: str,
    required: float,
    other: Callable[[Mapping[str, Any]], float],
    own: Callable[[Mapping[str, Any]], float],
) -> GateResult:
    """The share of `folds` in which the agent's net PnL is above `other`'s, naming the folds it lost."""
    lost = [int(fold.get("fold", 0)) for fold in folds if not own(fold) > other(fold)]
    share = (len(folds) - len(lost)) / len(folds)
    detail = f"won {len(folds) - len(lost)} of {len(folds)} folds" + (f"; lost folds {lost}" if lost else "")
    return GateResult(name, share, threshold, share >= required, detail)


def _champion_gate(net: float | None, champion: tuple[str, EvaluationFigures | None] | None) -> GateResult:
    if champion is None:
        return GateResult("champion", net, ">= the champion's net PnL", True, "no champion for this pair")
    name, figures = champion
    if figures is None or figures.status != "completed":
        return GateResult(
            "champion",
            net,
            f">= the net PnL of champion {name}",
            False,
            f"champion {name} has no completed walk-forward on the same dataset and folds",
        )
    theirs = _number(figures.metrics.get("net_pnl"))
    passed = net is not None and theirs is not None and net >= theirs
    return GateResult("champion", net, f">= {theirs} (champion {name})", passed)


def _at_least(name: str, value: float | None, threshold: float) -> GateResult:
    return GateResult(name, value, f">= {threshold}", value is not None and value >= threshold)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
