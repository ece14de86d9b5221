"""Promotion gates: what an agent version's latest walk-forward evaluation must show before it may trade
live. Each gate is reported with its value and its threshold, passed or not, so a refusal names what
failed and by how much.

- `walk_forward`: the evaluation is a completed walk-forward with at least one evaluated fold.
- `win_rate`, `net_pnl`, `max_drawdown`, `trade_count`: the aggregate over the folds against the agent
  configuration's `[promotion_gates]`.
- `margin_over_baseline`: net PnL above the best baseline's on the same folds, by at least
  `min_margin_over_baseline` (USDT).
- `champion`: net PnL at least the current champion's (the pair's promoted version) on the same dataset
  and folds. Passes when there is no champion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from learning.agent_config import PromotionGates


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


def check_gates(
    gates: PromotionGates,
    candidate: EvaluationFigures,
    champion: tuple[str, EvaluationFigures | None] | None,
) -> list[GateResult]:
    """`champion`: None when the pair has no champion (or the candidate is it); otherwise its name and
    its evaluation on the same dataset and folds (None when it has none)."""
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
    results.append(_champion_gate(net, champion))
    return results


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
