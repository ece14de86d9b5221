"""Promotion on a real PostgreSQL: gates read from stored walk-forward evaluations, a candidate worse
than the champion refused with the gate named, a better one replacing it, rollback to the version it
replaced, and live runs refusing any version that is not promoted."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config import Settings
from daemon.cli_evaluation import _promote, _rollback
from daemon.run_setup import RunSetupError, choose_policy
from domain.candle_columns import CandleColumns
from learning.agent_config import AgentConfig
from storage.agents import AgentStore
from storage.database import Database
from storage.evaluations import EvaluationStore
from storage.promotions import PromotionStore
from tests.integration.dataset_helpers import v1_dataset

LAYOUT = {"folds": 4, "purge_bars": 10, "embargo_bars": 0, "min_train_bars": 500}
LENIENT = {"min_win_rate": 0.4, "min_net_pnl": 0.0, "max_drawdown": 0.3, "min_trade_count": 5}


async def version_with_evaluation(
    database: Database, agent: str, dataset_id: uuid.UUID, net: float, layout: dict[str, int] = LAYOUT
) -> uuid.UUID:
    agents = AgentStore(database.pool)
    stored = await agents.get(agent)
    if stored is None:
        config = AgentConfig.model_validate({"name": agent, "feature_set": "v1", "promotion_gates": LENIENT})
        await agents.create(config.name, config.algorithm, config.feature_set, 0.5, config.sections())
        stored = await agents.get(agent)
    assert stored is not None
    fs_id = await database.pool.fetchval(
        "SELECT feature_set_version_id FROM dataset_versions WHERE id = $1", dataset_id
    )
    version = await agents.start_version(stored.id, dataset_id, fs_id, "test")
    content = f"{agent}-{version.version}".encode()
    # Its artifact's own score on the holdout its training kept back.
    holdout = {"rows": 500, "metrics": {"net_pnl": net / 10, "max_drawdown": 0.05}, "buy_and_hold": {"net_pnl": 1.0}}
    await agents.finish_version(
        version.id,
        {"holdout": holdout},
        content=content,
        artifact_format="tradingd-policy/1",
        checksum=hashlib.sha256(content).hexdigest(),
        feature_schema_hash="x",
        normalization={},
        metadata={},
        store="database",
    )
    evaluations = EvaluationStore(database.pool)
    metrics: dict[str, Any] = {
        "net_pnl": net,
        "win_rate": 0.55,
        "max_drawdown": 0.08,
        "trade_count": 30,
        "folds_evaluated": 3,
    }
    report = await evaluations.start(
        agent_version_id=version.id,
        policy=f"agent:{agent}",
        dataset_version_id=dataset_id,
        kind="walk_forward",
        parameters={"layout": layout},
        code_version="test",
    )
    # Three folds that each earn a third, above flat and the market, with a drawdown within the market's.
    folds = [
        {
            "fold": index,
            "skipped": None,
            "metrics": {"net_pnl": net / 3, "max_drawdown": 0.08},
            "baselines": {"hold": {"net_pnl": 0.0}},
            "buy_and_hold": {"net_pnl": -1.0, "max_drawdown": 0.1},
        }
        for index in (1, 2, 3)
    ]
    await evaluations.complete(
        report, metrics=metrics, baselines={"hold": {"net_pnl": 0.0}}, folds=folds, report_uri=None
    )
    return version.id


async def statuses(database: Database) -> dict[str, str]:
    rows = await database.pool.fetch(
        "SELECT a.name || ' v' || v.version AS name, v.status FROM agent_versions v "
        "JOIN agent_configurations a ON a.id = v.agent_configuration_id"
    )
    return {row["name"]: row["status"] for row in rows}


async def test_champion_gate_promotion_and_rollback(
    database: Database, real_candles: Callable[[str], CandleColumns], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset_id = await v1_dataset(database, real_candles("BTCUSDT_1m").take(np.arange(600)))
    steady = await version_with_evaluation(database, "steady", dataset_id, net=800.0)
    assert await _promote(database, steady) == 0
    assert (await statuses(database))["steady v1"] == "promoted"
    capsys.readouterr()

    worse = await version_with_evaluation(database, "eager", dataset_id, net=500.0)
    assert await _promote(database, worse) == 1
    out, err = capsys.readouterr()
    assert "FAIL  champion" in out
    assert ">= 800.00 USDT (champion steady v1)" in out
    gate_lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))}
    assert "55.0%  >= 40.0%" in gate_lines["win_rate"]  # ratios as percentages
    assert "500.00 USDT  >= 0.00 USDT" in gate_lines["net_pnl"]  # money to the cent
    assert "failing gates champion" in err

    # The champion's evaluation must be on the same folds: another layout does not count.
    other_layout = await version_with_evaluation(database, "eager", dataset_id, net=900.0, layout=LAYOUT | {"folds": 5})
    assert await _promote(database, other_layout) == 1
    assert "no completed walk-forward on the same dataset and folds" in capsys.readouterr().out

    better = await version_with_evaluation(database, "eager", dataset_id, net=900.0)
    assert await _promote(database, better) == 0
    assert await statuses(database) == {
        "steady v1": "evaluated",
        "eager v1": "evaluated",
        "eager v2": "evaluated",
        "eager v3": "promoted",
    }
    assert await _promote(database, better) == 1  # already the champion: nothing changes
    capsys.readouterr()

    assert await _rollback(database, "BTC-USDT", "1m") == 0
    out = capsys.readouterr().out
    assert f"BTC-USDT 1m: now promoted steady v1 ({steady}); retired eager v3 ({better})" in out
    assert json.loads(out.splitlines()[-1])["champion"]["id"] == str(steady)
    assert (await statuses(database))["eager v3"] == "retired"
    assert (await statuses(database))["steady v1"] == "promoted"
    history = await PromotionStore(database.pool).history("BTC-USDT", "1m")
    assert [(entry.action, entry.agent_version_id, entry.previous_version_id) for entry in history] == [
        ("rollback", steady, better),
        ("promote", better, steady),
        ("promote", steady, None),
    ]
    assert [gate["gate"] for gate in history[1].gates][-1] == "champion"

    assert await _rollback(database, None, None) == 1
    assert "no earlier one to return to" in capsys.readouterr().err


async def test_live_runs_refuse_a_version_that_is_not_promoted(
    database: Database, real_candles: Callable[[str], CandleColumns], tmp_path: Path
) -> None:
    dataset_id = await v1_dataset(database, real_candles("BTCUSDT_1m").take(np.arange(600)))
    candidate = await version_with_evaluation(database, "steady", dataset_id, net=800.0)
    live = Settings.model_validate({"exchange": {"mode": "live"}, "storage": {"data_dir": str(tmp_path)}}, strict=False)
    paper = Settings.model_validate({"storage": {"data_dir": str(tmp_path)}}, strict=False)
    with pytest.raises(RunSetupError, match="is evaluated, not promoted"):
        await choose_policy(live, database, f"agent:{candidate}")
    assert (await choose_policy(paper, database, f"agent:{candidate}")).agent_version_id == candidate
    assert await _promote(database, candidate) == 0
    assert (await choose_policy(live, database, f"agent:{candidate}")).agent_version_id == candidate
