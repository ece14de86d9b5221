"""`tradingd evaluate`, `tradingd promote`, `tradingd rollback` and `tradingd report run`."""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import exit_codes
from daemon.cli_agents import dataset_contract
from daemon.cli_db import open_migrated_database
from learning.evaluation.folds import FoldError, FoldSpec

if TYPE_CHECKING:
    from config import Settings
    from learning.evaluation.backtest import BacktestResult
    from learning.evaluation.folds import Fold
    from learning.evaluation.gates import EvaluationFigures, GateResult
    from storage.agents import AgentVersion
    from storage.database import Database
    from storage.evaluations import EvaluationReport

# nautilus_trader, RLlib, matplotlib and the stores are imported where a command runs, after its
# arguments are checked: building the command line's parser must stay cheap (see daemon/cli.py).


def add_evaluation_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="backtest an agent version (or a baseline) over a dataset with nautilus_trader, beside every baseline; "
        "with --folds, walk-forward: train on the rows before each fold, test on the fold",
    )
    subject = evaluate.add_mutually_exclusive_group(required=True)
    subject.add_argument("--agent-version", type=uuid.UUID, metavar="ID", help="an agent version's id")
    subject.add_argument("--policy", metavar="NAME", help="a baseline: hold, momentum or ema_cross")
    evaluate.add_argument("--dataset", required=True, type=uuid.UUID, metavar="ID")
    evaluate.add_argument(
        "--folds", type=int, metavar="N", help="walk-forward: N test folds after a first training block"
    )
    evaluate.add_argument("--purge-bars", type=int, metavar="P", help="rows dropped before each test fold (default 0)")
    evaluate.add_argument("--embargo-bars", type=int, metavar="E", help="a further gap before each fold (default 0)")
    evaluate.add_argument("--min-train-bars", type=int, metavar="M", help="fewer training rows skip a fold (default 1)")
    evaluate.add_argument("--strict", action="store_true", help="fail instead of skipping a fold short of training")

    promote = commands.add_parser(
        "promote", help="promote an agent version when its latest walk-forward evaluation passes the gates"
    )
    promote.add_argument("version", type=uuid.UUID, metavar="VERSION_ID")
    rollback = commands.add_parser("rollback", help="return a pair to its previously promoted agent version")
    rollback.add_argument("--pair", help="needed when several pairs have a promoted version")
    rollback.add_argument("--interval", help="with --pair, when the pair has several")

    report = commands.add_parser("report", help="draw reports")
    report_kinds = report.add_subparsers(dest="report_command", required=True, metavar="KIND")
    run = report_kinds.add_parser("run", help="candles with a paper or live run's entries and exits, as HTML and PNG")
    run.add_argument("run_id", type=uuid.UUID, metavar="RUN_ID")
    run.add_argument("--out", type=Path, metavar="DIR", help="default: <data_dir>/reports/run-<RUN_ID>")


async def run_evaluation_command(settings: Settings, args: argparse.Namespace) -> int:
    layout = None
    if args.command == "evaluate":
        fold_options = (args.purge_bars, args.embargo_bars, args.min_train_bars)
        if args.folds is None and (args.strict or any(option is not None for option in fold_options)):
            print("tradingd: --purge-bars, --embargo-bars, --min-train-bars and --strict need --folds", file=sys.stderr)
            return exit_codes.USAGE
        if args.folds is not None:
            purge, embargo, min_train = (
                default if option is None else option for option, default in zip(fold_options, (0, 0, 1), strict=True)
            )
            try:
                layout = FoldSpec(args.folds, purge, embargo, min_train, args.strict)
            except FoldError as error:
                print(f"tradingd: {error}", file=sys.stderr)
                return exit_codes.USAGE
    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    try:
        if args.command == "evaluate":
            return await _evaluate(settings, database, args, layout)
        if args.command == "promote":
            return await _promote(database, args.version)
        if args.command == "rollback":
            return await _rollback(database, args.pair, args.interval)
        from storage.runs import RunStore

        if await RunStore(database.pool).get(args.run_id) is None:  # before matplotlib is imported
            print(f"tradingd: no run {args.run_id}", file=sys.stderr)
            return exit_codes.DATA_ERROR
        from daemon.run_report import write_run_report

        return await write_run_report(settings, database, args.run_id, args.out)
    finally:
        await database.close()


async def _evaluate(settings: Settings, database: Database, args: argparse.Namespace, layout: FoldSpec | None) -> int:
    from storage.agents import AgentStore
    from storage.datasets import DatasetStore
    from storage.evaluations import EvaluationStore
    from storage.promotions import PromotionStore

    dataset = await DatasetStore(database.pool).get(args.dataset)
    if dataset is None:
        print(f"tradingd: no dataset {args.dataset}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    if args.agent_version is not None and await AgentStore(database.pool).version(args.agent_version) is None:
        print(f"tradingd: no agent version {args.agent_version}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    contract = await dataset_contract(settings, dataset, "evaluate")
    if isinstance(contract, int):
        return contract
    # nautilus_trader (and RLlib, for a walk-forward's training) take seconds to import: only an
    # evaluation that is going to run pays for them.
    from daemon.risk_limits import risk_limits
    from learning.agent_config import AgentConfigError
    from learning.evaluation.service import EvaluationError, EvaluationRequest, Stores, evaluate, layout_json
    from learning.evaluation.world import World
    from observability import adopt_library_loggers
    from observability.progress import progress
    from policies.artifact import ArtifactError

    adopt_library_loggers()  # Ray's logger through ours, if the evaluation brought it

    stores = Stores(AgentStore(database.pool), DatasetStore(database.pool), EvaluationStore(database.pool))
    run = settings.run
    paper_world = World(run.initial_equity, float(run.max_exposure), run.slippage_bps)
    report_root = settings.storage.resolved_data_dir() / "reports"
    request = EvaluationRequest(args.dataset, args.agent_version, args.policy, layout)
    on_terminal = sys.stderr.isatty()

    def show(fold: Fold, policy: str, result: BacktestResult) -> None:
        if on_terminal:
            figures = result.metrics
            print(
                f"fold {fold.index}: {policy}  net PnL {figures.net_pnl:+,.2f}  trades {figures.trade_count}  "
                f"({result.bars_per_second:,.0f} bars/s)",
                file=sys.stderr,
            )

    try:
        limits = risk_limits(settings)
        outcome = await evaluate(stores, request, contract, paper_world, report_root, show, progress, limits)
        if outcome.sample.warning is not None:
            # In-sample figures must not pass for out-of-sample ones: said on stderr, in the summary's
            # `sample`, and in the report's banner.
            print(f"tradingd: warning: {outcome.sample.warning}", file=sys.stderr)
        elif on_terminal:
            print(f"{outcome.sample.headline}: {outcome.sample.detail}", file=sys.stderr)
        summary = _outcome_json(await stores.evaluations.get(outcome.report_id))
        champion = await PromotionStore(database.pool).champion(dataset.pair, dataset.interval)
        if (
            layout is not None
            and args.agent_version is not None
            and champion is not None
            and champion.id != args.agent_version
        ):
            # Promotion compares the candidate with the champion on the same dataset and folds.
            existing = await stores.evaluations.latest_walk_forward(
                champion.id, dataset_version_id=dataset.id, folds=layout_json(layout)
            )
            if existing is None or existing.status != "completed":
                print(
                    f"tradingd: evaluating the champion {champion.agent} v{champion.version} on the same folds",
                    file=sys.stderr,
                )
                theirs = await evaluate(
                    stores,
                    replace(request, agent_version_id=champion.id, policy=None),
                    contract,
                    paper_world,
                    report_root,
                    show,
                    progress,
                    limits,
                )
                existing = await stores.evaluations.get(theirs.report_id)
            summary["champion"] = _outcome_json(existing)
    except (EvaluationError, AgentConfigError, ArtifactError) as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    print(json.dumps(summary, indent=2))
    return exit_codes.OK


async def _promote(database: Database, version_id: uuid.UUID) -> int:
    from learning.agent_config import agent_config_of
    from learning.evaluation.gates import check_gates
    from storage.agents import AgentStore
    from storage.datasets import DatasetStore
    from storage.evaluations import EvaluationStore
    from storage.promotions import PromotionError, PromotionStore

    agents = AgentStore(database.pool)
    evaluations = EvaluationStore(database.pool)
    promotions = PromotionStore(database.pool)
    version = await agents.version(version_id)
    if version is None:
        print(f"tradingd: no agent version {version_id}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    scope = await _scope(database, version)
    if scope is None:
        print(f"tradingd: {version.agent} v{version.version} has no training dataset to name its pair", file=sys.stderr)
        return exit_codes.DATA_ERROR
    pair, interval = scope
    latest = await evaluations.latest_walk_forward(version.id)
    if latest is None:
        print(
            f"tradingd: {version.agent} v{version.version} has no walk-forward evaluation: run "
            f"`tradingd evaluate --agent-version {version.id} --dataset ID --folds N` first",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    dataset = await DatasetStore(database.pool).get(latest.dataset_version_id) if latest.dataset_version_id else None
    if dataset is None or (dataset.pair, dataset.interval) != (pair, interval):
        print(
            f"tradingd: the latest walk-forward of {version.agent} v{version.version} is not on {pair} {interval} data",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    stored = await agents.get(version.agent)
    assert stored is not None
    gates = agent_config_of(stored).promotion_gates
    champion = await promotions.champion(pair, interval)
    champion_figures = None
    if champion is not None and champion.id != version.id:
        theirs = await evaluations.latest_walk_forward(
            champion.id, dataset_version_id=latest.dataset_version_id, folds=latest.parameters.get("layout")
        )
        champion_figures = (f"{champion.agent} v{champion.version}", None if theirs is None else _figures(theirs))
    results = check_gates(gates, _figures(latest), champion_figures, version.training_metrics.get("holdout"))
    for result in results:
        print(_gate_line(result))
    failing = [result.name for result in results if not result.passed]
    if failing:
        print(
            f"tradingd: {version.agent} v{version.version} is not promoted: failing gates {', '.join(failing)} "
            f"(evaluation {latest.id})",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    try:
        replaced = await promotions.promote(
            version, pair, interval, evaluation_report_id=latest.id, gates=[result.to_json() for result in results]
        )
    except PromotionError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.FAILURE
    promoted = await agents.version(version.id)
    assert promoted is not None
    print(
        json.dumps(
            {
                "promoted": promoted.to_json(),
                "pair": pair,
                "interval": interval,
                "replaced": None if replaced is None else str(replaced.id),
                "evaluation_report_id": str(latest.id),
            }
        )
    )
    return exit_codes.OK


async def _rollback(database: Database, pair: str | None, interval: str | None) -> int:
    from storage.promotions import PromotionError, PromotionStore

    promotions = PromotionStore(database.pool)
    scopes = await promotions.scopes()
    chosen = [
        scope for scope in scopes if (pair is None or scope[0] == pair) and (interval is None or scope[1] == interval)
    ]
    if len(chosen) != 1:
        described = ", ".join(f"{p} {i}" for p, i in scopes) or "none"
        print(
            f"tradingd: {'no' if not chosen else 'several'} promoted scopes match; promoted: {described} "
            "(choose with --pair and --interval)",
            file=sys.stderr,
        )
        return exit_codes.FAILURE
    try:
        retired, restored = await promotions.rollback(*chosen[0])
    except PromotionError as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.FAILURE
    # The state after the change, read back from the store: what now trades this pair and interval.
    pair_now, interval_now = chosen[0]
    champion = await promotions.champion(pair_now, interval_now)
    now = "no version" if champion is None else f"{champion.agent} v{champion.version} ({champion.id})"
    print(f"{pair_now} {interval_now}: now promoted {now}; retired {retired.agent} v{retired.version} ({retired.id})")
    print(
        json.dumps(
            {
                "pair": pair_now,
                "interval": interval_now,
                "retired": retired.to_json(),
                "promoted": restored.to_json(),
                "champion": None if champion is None else champion.to_json(),
            }
        )
    )
    return exit_codes.OK


async def _scope(database: Database, version: AgentVersion) -> tuple[str, str] | None:
    from storage.datasets import DatasetStore

    if version.dataset_version_id is None:
        return None
    dataset = await DatasetStore(database.pool).get(version.dataset_version_id)
    return None if dataset is None else (dataset.pair, dataset.interval)


def _figures(report: EvaluationReport) -> EvaluationFigures:
    from learning.evaluation.gates import EvaluationFigures

    metrics = dict(report.metrics)
    return EvaluationFigures(
        report.kind,
        report.status,
        int(metrics.get("folds_evaluated", 0)),
        metrics,
        dict(report.baselines),
        list(report.folds),
    )


GATE_UNITS: dict[str, str] = {
    "win_rate": "ratio",
    "max_drawdown": "ratio",
    "net_pnl": "usdt",
    "margin_over_baseline": "usdt",
    "champion": "usdt",
    "trade_count": "count",
    "folds_over_flat": "ratio",
    "folds_over_buy_and_hold": "ratio",
    "folds_over_best_baseline": "ratio",
    "drawdown_within_buy_and_hold": "ratio",
    "holdout": "usdt",
}
"""How each gate's figures read: ratios as percentages, money in USDT to the cent, counts whole."""
_THRESHOLD = re.compile(r"^(>=|<=|>|<) (-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(.*)$")


def gate_figure(value: float | str | None, unit: str | None) -> str:
    """A gate's figure for a person: `55.0%`, `1,234.57 USDT`, `42`, else 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "usdt":
        return f"{value:,.2f} USDT"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _gate_line(result: GateResult) -> str:
    unit = GATE_UNITS.get(result.name)
    shown = gate_figure(result.value, unit)
    threshold = result.threshold
    bound = _THRESHOLD.match(threshold)
    if bound is not None:
        threshold = f"{bound[1]} {gate_figure(float(bound[2]), unit)}{bound[3]}"
    detail = f"  ({result.detail})" if result.detail else ""
    return f"{'PASS' if result.passed else 'FAIL'}  {result.name:<28} {shown:>24}  {threshold}{detail}"


def _outcome_json(report: EvaluationReport | None) -> dict[str, Any]:
    assert report is not None
    return {
        "report_id": str(report.id),
        "policy": report.policy,
        "kind": report.kind,
        "status": report.status,
        "agent_version_id": None if report.agent_version_id is None else str(report.agent_version_id),
        "dataset_id": None if report.dataset_version_id is None else str(report.dataset_version_id),
        "sample": report.parameters.get("sample"),
        "metrics": dict(report.metrics),
        "baselines": {name: {"net_pnl": value.get("net_pnl")} for name, value in report.baselines.items()},
        "report": report.report_uri,
        "code_version": report.code_version,
    }
