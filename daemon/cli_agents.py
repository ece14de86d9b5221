"""`tradingd agent create | list | show | versions` and `tradingd train`."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import exit_codes
from daemon.cli_db import open_migrated_database
from daemon.cli_market import venue_failure
from domain.errors import VenueError

if TYPE_CHECKING:
    from config import Settings
    from domain.instruments import Contract
    from storage.agents import AgentStore, StoredAgent
    from storage.datasets import DatasetStore, DatasetVersion

# The agent configuration's model, the stores and (for `train`) RLlib are imported where a command runs,
# after its arguments are checked: building the command line's parser must stay cheap (see daemon/cli.py).


def add_agent_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = commands.add_parser("agent", help="agent configurations and their trained versions")
    sub = agent.add_subparsers(dest="agent_command", required=True, metavar="SUBCOMMAND")
    create = sub.add_parser("create", help="create an agent configuration from a TOML file")
    create.add_argument("file", type=Path, metavar="FILE", help="e.g. config/agents/example.toml")
    sub.add_parser("list", help="list agent configurations")
    show = sub.add_parser("show", help="one agent configuration, in full")
    show.add_argument("name")
    versions = sub.add_parser("versions", help="trained versions with their lineage (dataset, feature set, artifact)")
    versions.add_argument("name", nargs="?", help="only this agent's versions")

    train = commands.add_parser("train", help="train an agent on a dataset with RLlib (resumes an interrupted run)")
    train.add_argument("--agent", required=True, metavar="NAME")
    train.add_argument("--dataset", required=True, type=uuid.UUID, metavar="ID")
    train.add_argument(
        "--tune",
        action="store_true",
        help="first search the agent's [search] space on inner walk-forward folds of the training rows "
        "(Ray Tune), then train the best configuration",
    )


async def run_agent_command(settings: Settings, args: argparse.Namespace) -> int:
    from learning.agent_config import AgentConfigError, load_agent_config
    from storage.agents import AgentExistsError, AgentStore
    from storage.datasets import DatasetStore

    config = None
    if args.command == "agent" and args.agent_command == "create":
        try:
            config = load_agent_config(args.file)
        except AgentConfigError as error:
            print(f"tradingd: {error}", file=sys.stderr)
            return exit_codes.DATA_ERROR
    database = await open_migrated_database(settings)
    if database is None:
        return exit_codes.UNAVAILABLE
    data_dir = settings.storage.resolved_data_dir()
    agents = AgentStore(database.pool, data_dir / "artifacts")
    try:
        if args.command == "train":
            return await _train(settings, agents, DatasetStore(database.pool), args, data_dir)
        if config is not None:
            try:
                await agents.create(
                    config.name, config.algorithm, config.feature_set, config.decision_threshold, config.sections()
                )
            except AgentExistsError as error:
                print(f"tradingd: {error}", file=sys.stderr)
                return exit_codes.DATA_ERROR
            created = await agents.get(config.name)
            assert created is not None
            print(json.dumps(_agent_json(created)))
            return exit_codes.OK
        if args.agent_command == "list":
            for stored in await agents.agents():
                print(json.dumps({key: value for key, value in _agent_json(stored).items() if key != "sections"}))
            return exit_codes.OK
        if args.agent_command == "show":
            found = await agents.get(args.name)
            if found is None:
                print(f"tradingd: no agent configuration named {args.name!r}", file=sys.stderr)
                return exit_codes.DATA_ERROR
            print(json.dumps(_agent_json(found), indent=2))
            return exit_codes.OK
        for version in await agents.versions(args.name):
            print(json.dumps(version.to_json()))
        return exit_codes.OK
    finally:
        await database.close()


async def _train(
    settings: Settings, agents: AgentStore, datasets: DatasetStore, args: argparse.Namespace, data_dir: Path
) -> int:
    import asyncio

    from learning.agent_config import AgentConfigError, agent_config_of

    stored = await agents.get(args.agent)
    dataset = await datasets.get(args.dataset)
    if stored is None or dataset is None:
        missing = f"agent configuration {args.agent!r}" if stored is None else f"dataset {args.dataset}"
        print(f"tradingd: no {missing}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    environment = agent_config_of(stored).environment
    contract = await dataset_contract(settings, dataset, "train")
    if isinstance(contract, int):
        return contract
    # RLlib and torch take seconds to import: only a training that is going to run pays for them.
    from daemon.risk_limits import full_position_warning, risk_limits
    from learning.training import IterationReport, TrainingError, train_agent
    from observability import adopt_library_loggers

    adopt_library_loggers()  # Ray's logger through ours, now that it is imported
    from daemon.ray_runtime import start_ray

    start_ray(settings)  # `ray.address` when configured; a local node's slow registration is retried

    limits = risk_limits(settings)
    equity, exposure = Decimal(repr(environment.initial_equity)), Decimal(repr(environment.max_exposure))
    warning = full_position_warning(equity, exposure, limits)
    if warning is not None:
        print(f"tradingd: warning: {warning}", file=sys.stderr)
    on_terminal = sys.stderr.isatty()

    def show(report: IterationReport) -> None:
        if on_terminal:
            episode = "-" if report.episode_return_mean is None else f"{report.episode_return_mean:+.4f}"
            print(
                f"iteration {report.iteration}/{report.total}  env steps {report.env_steps:,}  "
                f"episode return {episode}  ({report.seconds:.1f} s)",
                file=sys.stderr,
            )

    trials = 0
    planned = 0 if stored is None else _planned_trials(stored)

    def trial_done(outcome: dict[str, Any]) -> None:
        nonlocal trials
        trials += 1
        choices = ", ".join(f"{key} {value}" for key, value in sorted(outcome["config"].items()))
        score = outcome["score"]
        shown = "-" if score is None else f"{score:+,.2f} USDT"
        print(f"search trial {trials}/{planned}: {choices}: inner-fold net PnL {shown}", file=sys.stderr)

    try:
        result = await train_agent(
            agents,
            datasets,
            agent_name=args.agent,
            dataset_id=args.dataset,
            contract=contract,
            checkpoint_root=data_dir / "training",
            artifact_store=settings.training.artifact_store,
            progress=show,
            limits=limits,
            tune=args.tune,
            on_trial=trial_done,
        )
    except (TrainingError, AgentConfigError) as error:
        print(f"tradingd: {error}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C reaches a coroutine as a cancellation at its next await (asyncio.run's handler).
        print(
            "tradingd: training interrupted; run the same command to resume from its last checkpoint", file=sys.stderr
        )
        raise
    from learning.evaluation.holdout import HOLDOUT, IN_SAMPLE, describe_score

    searched = result.version.training_metrics.get("search")
    if isinstance(searched, dict):
        best = searched["best"]
        chosen = ", ".join(f"{key} {value}" for key, value in sorted(best["choices"].items()))
        print(
            f"tradingd: search: {len(searched['trials'])} trials on {searched['inner_folds']} inner folds of "
            f"{searched['rows']:,} rows in {searched['seconds']:.0f} s; trained the best ({chosen}: inner-fold "
            f"net PnL {best['score']:+,.2f} USDT)",
            file=sys.stderr,
        )

    for key in (IN_SAMPLE, HOLDOUT):
        score = result.version.training_metrics.get(key)
        if isinstance(score, dict):
            print(f"tradingd: {describe_score(score)}", file=sys.stderr)
    print(
        json.dumps(
            result.version.to_json()
            | {"resumed_from": result.resumed_from, "iterations": result.iterations, "env_steps": result.env_steps}
        )
    )
    return exit_codes.OK


async def dataset_contract(settings: Settings, dataset: DatasetVersion, command: str) -> Contract | int:
    """The contract rules stored with the dataset (no venue call); for a dataset built before they
    were stored, the venue's of the moment (see `venue_contract`)."""
    if dataset.contract is not None:
        return dataset.contract
    print(
        f"tradingd: dataset {dataset.id} carries no contract rules (built before they were stored): using the "
        f"venue's {dataset.pair} contract of the moment; `tradingd dataset build` of the same span stores them",
        file=sys.stderr,
    )
    return await venue_contract(settings, dataset.pair, command)


async def venue_contract(settings: Settings, pair: str, command: str) -> Contract | int:
    """The pair's contract as the venue lists it now (grid, minimums, fees, leverage), or the exit code
    of the failure, already reported."""
    from exchange.bingx.rest import BingXRest

    try:
        async with BingXRest(settings.exchange.rest_url, recv_window_ms=settings.exchange.recv_window_ms) as rest:
            contracts = await rest.contracts(pair)
    except VenueError as error:
        return venue_failure(error, command, "run it again when the venue answers")
    contract = next((c for c in contracts if c.symbol == pair), None)
    if contract is None:
        print(f"tradingd: the venue lists no contract {pair}", file=sys.stderr)
        return exit_codes.DATA_ERROR
    return contract


def _agent_json(stored: StoredAgent) -> dict[str, Any]:
    return {
        "name": stored.name,
        "id": str(stored.id),
        "algorithm": stored.algorithm,
        "feature_set": stored.feature_set,
        "decision_threshold": stored.decision_threshold,
        "created_at": stored.created_at.isoformat(),
        "sections": dict(stored.sections),
    }


def _planned_trials(stored: StoredAgent) -> int:
    """How many trials the agent's search runs: its sampled configurations times its seeds."""
    plan = stored.sections.get("search") or {}
    return int(plan.get("trials", 4)) * len(plan.get("seeds", [0]))
