"""`tradingd evaluate`, `promote` and `rollback` as real processes, against `tradingd sim`: a baseline
backtest with its report files, a version backtested on its own training data (labelled partly
in-sample, its holdout excepted, with a warning) and on later data (out-of-sample), an agent's
walk-forward with per-fold training (lenient and strict; out-of-sample), promotion through the gates, a
refusal naming the failing gate, and a rollback with nothing to return to."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from exchange.sim.candle_file import load_candle_file
from tests.e2e.cli_helpers import TINY_AGENT, build_eth_dataset, tradingd


def trained_version(env: dict[str, str], tmp_path: Path, name: str, margin: float, dataset_id: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY_AGENT.format(name=name, margin=margin))
    assert tradingd(env, "agent", "create", str(path)).returncode == 0
    trained = tradingd(env, "train", "--agent", name, "--dataset", dataset_id)
    assert trained.returncode == 0, trained.stderr[-3000:]
    # 20% of the 2,800 rows kept back, and the recorded artifact scored on them.
    assert "tradingd: holdout (out of sample: the last 560 rows, from " in trained.stderr
    return str(json.loads(trained.stdout)["id"])


@pytest.mark.timeout(1200)  # about twenty CLI processes, six trainings and four Ray start-ups, on a loaded machine
def test_evaluate_promote_and_roll_back(clean_env: dict[str, str], candle_file: Path, tmp_path: Path) -> None:
    rows = load_candle_file(candle_file)
    built = build_eth_dataset(clean_env, rows[100].open_time_ms, rows[2_900].open_time_ms)
    dataset_id = str(built["id"])
    assert built["rows"] == 2_800

    # A baseline alone: one backtest over the dataset, beside the other baselines, with its report.
    lacking = tradingd(clean_env, "evaluate", "--policy", "ema_cross", "--dataset", dataset_id)
    assert lacking.returncode == 65
    assert "ema_cross needs the feature ema_ratio_9_21, which v1 lacks" in lacking.stderr
    backtest = tradingd(clean_env, "evaluate", "--policy", "momentum", "--dataset", dataset_id)
    assert backtest.returncode == 0, backtest.stderr[-3000:]
    summary = json.loads(backtest.stdout)
    assert (summary["kind"], summary["status"], summary["policy"]) == ("backtest", "completed", "momentum")
    assert summary["metrics"]["trade_count"] > 0
    assert set(summary["baselines"]) == {"hold"}
    assert summary["baselines"]["hold"]["net_pnl"] == 0
    assert summary["sample"]["label"] == "out_of_sample", "a baseline is fitted to nothing"
    assert "warning" not in backtest.stderr
    report = Path(urlsplit(summary["report"]).path)
    page = report.read_text()
    assert report.name == "index.html"
    assert {path.name for path in report.parent.iterdir()} == {"index.html", "equity.png", "tape.png", "trades.csv"}
    assert page.count("data:image/png;base64,") == 2, "the page embeds its charts"
    assert 'data-tape="tape-evaluation"' in page, "the interactive tape"
    assert "momentum" in page
    assert "hold" in page
    assert "<td>buy &amp; hold</td>" in page
    assert "Risk limits: the <code>default</code> limit set (stop_loss_pct 0.05," in page, "[risk] applies"
    assert summary["metrics"]["buy_and_hold"]["net_pnl"] != 0
    with (report.parent / "trades.csv").open(newline="") as handle:
        listed = list(csv.DictReader(handle))
    open_at_end = 1 if summary["metrics"]["open_quantity"] else 0
    assert len(listed) == summary["metrics"]["trade_count"] + open_at_end

    lenient = trained_version(clean_env, tmp_path, "lenient", -1_000_000.0, dataset_id)
    # The version's own artifact over the dataset, at its configuration's decision threshold.
    plain = tradingd(clean_env, "evaluate", "--agent-version", lenient, "--dataset", dataset_id)
    assert plain.returncode == 0, plain.stderr[-3000:]
    plain_summary = json.loads(plain.stdout)
    assert (plain_summary["kind"], plain_summary["policy"]) == ("backtest", "agent:lenient@1")
    assert plain_summary["metrics"]["bars"] == 2_800
    # ... which is the dataset it was trained on, but for its last 20% (the holdout training kept back):
    # partly in-sample, said on stderr, in the summary and the page.
    assert plain_summary["sample"]["label"] == "partly_in_sample"
    assert plain_summary["sample"]["in_sample_rows"] == 2_240
    assert plain_summary["metrics"]["sample"] == "partly_in_sample"
    warning = f"tradingd: warning: PARTLY IN-SAMPLE: agent:lenient@1 was trained on dataset {dataset_id}"
    assert warning in plain.stderr
    assert "which covers 2,240 of the 2,800 evaluated rows (80%)" in plain.stderr
    in_sample_page = Path(urlsplit(plain_summary["report"]).path).read_text()
    assert 'data-sample="partly_in_sample"' in in_sample_page
    assert "Out-of-sample" not in in_sample_page
    # Later candles, a dataset of their own: out-of-sample, no warning.
    later = build_eth_dataset(clean_env, rows[2_900].open_time_ms, rows[3_500].open_time_ms)
    unseen = tradingd(clean_env, "evaluate", "--agent-version", lenient, "--dataset", str(later["id"]))
    assert unseen.returncode == 0, unseen.stderr[-3000:]
    unseen_summary = json.loads(unseen.stdout)
    assert (unseen_summary["sample"]["label"], unseen_summary["sample"]["in_sample_rows"]) == ("out_of_sample", 0)
    assert "warning" not in unseen.stderr
    hopeless = ["--folds", "3", "--min-train-bars", "5000"]
    skipped = tradingd(clean_env, "evaluate", "--agent-version", lenient, "--dataset", dataset_id, *hopeless)
    assert skipped.returncode == 65
    assert "every fold is skipped" in skipped.stderr
    # 2,800 rows in 4 blocks of 700: fold 1 trains on 690 rows (after a gap of 10), too few for 1,000.
    folds = ["--folds", "3", "--purge-bars", "6", "--embargo-bars", "4", "--min-train-bars", "1000"]
    strict = tradingd(clean_env, "evaluate", "--agent-version", lenient, "--dataset", dataset_id, *folds, "--strict")
    assert strict.returncode == 65
    assert "fold 1: 690 training bars" in strict.stderr
    walk = tradingd(clean_env, "evaluate", "--agent-version", lenient, "--dataset", dataset_id, *folds)
    assert walk.returncode == 0, walk.stderr[-3000:]
    result = json.loads(walk.stdout)
    assert (result["kind"], result["policy"]) == ("walk_forward", "agent:lenient@1")
    assert (result["metrics"]["folds_evaluated"], result["metrics"]["folds_skipped"]) == (2, 1)
    assert (result["sample"]["label"], result["sample"]["basis"]) == ("out_of_sample", "walk_forward")
    assert "warning" not in walk.stderr, "the version was trained on this dataset, but each fold retrains"
    assert set(result["baselines"]) == {"hold", "momentum"}
    trainings = [json.loads(line) for line in walk.stderr.splitlines() if '"fold_trained"' in line]
    assert [event["fold"] for event in trainings] == [2, 3]
    assert [event["train_rows"] for event in trainings] == [1_390, 2_090]

    promoted = tradingd(clean_env, "promote", lenient)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    gate_lines = [line.split()[:2] for line in promoted.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert gate_lines == [
        ["PASS", name]
        for name in (
            "walk_forward",
            "win_rate",
            "net_pnl",
            "max_drawdown",
            "trade_count",
            "margin_over_baseline",
            "folds_over_flat",
            "folds_over_buy_and_hold",
            "folds_over_best_baseline",
            "drawdown_within_buy_and_hold",
            "holdout",
            "champion",
        )
    ]
    assert "untouched by training" in promoted.stdout, "the holdout gate read the version's own score"
    record = json.loads(promoted.stdout.splitlines()[-1])
    assert (record["promoted"]["status"], record["pair"], record["replaced"]) == ("promoted", "ETH-USDT", None)

    # A version that must beat the best baseline by a million USDT is refused, the gate named.
    demanding = trained_version(clean_env, tmp_path, "demanding", 1_000_000.0, dataset_id)
    unevaluated = tradingd(clean_env, "promote", demanding)
    assert unevaluated.returncode == 1
    assert "has no walk-forward evaluation" in unevaluated.stderr
    # On another fold layout, the champion has no comparable evaluation: evaluate runs one for it too.
    other_folds = ["--folds", "2", "--purge-bars", "6", "--embargo-bars", "4", "--min-train-bars", "500"]
    challenged = tradingd(clean_env, "evaluate", "--agent-version", demanding, "--dataset", dataset_id, *other_folds)
    assert challenged.returncode == 0, challenged.stderr[-3000:]
    both = json.loads(challenged.stdout)
    assert both["policy"] == "agent:demanding@1"
    assert (both["champion"]["policy"], both["champion"]["kind"]) == ("agent:lenient@1", "walk_forward")
    assert both["champion"]["metrics"]["folds_evaluated"] == 2
    assert both["champion"]["agent_version_id"] == lenient
    refused = tradingd(clean_env, "promote", demanding)
    assert refused.returncode == 1
    assert "FAIL  margin_over_baseline" in refused.stdout
    assert "failing gates margin_over_baseline" in refused.stderr
    assert "(champion lenient v1)" in refused.stdout, "the champion gate read the champion's evaluation"
    versions = {
        v["id"]: v["status"] for v in map(json.loads, tradingd(clean_env, "agent", "versions").stdout.splitlines())
    }
    assert versions == {lenient: "promoted", demanding: "evaluated"}

    nothing = tradingd(clean_env, "rollback")
    assert nothing.returncode == 1
    assert "no earlier one to return to" in nothing.stderr
