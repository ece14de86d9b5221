"""`tradingd dataset build | show | list` as real processes against a real `tradingd sim`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from domain.candles import ms_to_datetime
from exchange.sim.candle_file import load_candle_file

TRADINGD = shutil.which("tradingd")


def tradingd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert TRADINGD is not None
    return subprocess.run([TRADINGD, *args], env=env, capture_output=True, text=True, timeout=180, check=False)


def test_a_dataset_is_built_once_shown_and_listed(clean_env: dict[str, str], candle_file: Path) -> None:
    rows = load_candle_file(candle_file)
    start = ms_to_datetime(rows[1_200].open_time_ms).isoformat()
    build = ["dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--from", start]
    build += ["--to", str(rows[2_400].open_time_ms), "--feature-set", "v2"]
    first = tradingd(clean_env, *build)
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert (made["rows"], made["reused"], made["fetched_candles"]) == (1_200, False, 2_200)
    # stderr is not a terminal here: progress comes as `progress` events, counts rising to the total.
    progress = [json.loads(line) for line in first.stderr.splitlines() if '"event": "progress"' in line]
    for task, total in (("dataset: fetch 1m candles", 2_200), ("dataset: features", 1_200)):
        counts = [(event["done"], event["total"], event["unit"]) for event in progress if event["task"] == task]
        assert len(counts) >= 2, first.stderr[-2000:]
        assert [done for done, _, _ in counts] == sorted({done for done, _, _ in counts})
        assert counts[0][0] == 0
        assert counts[-1][:2] == (total, total)
    assert progress[-1]["state"] == "finished"
    second = json.loads(tradingd(clean_env, *build).stdout)
    assert (second["id"], second["content_hash"], second["reused"]) == (made["id"], made["content_hash"], True)

    shown = tradingd(clean_env, "dataset", "show", made["id"])
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert (detail["rows"], detail["feature_set"], detail["content_hash"]) == (1_200, "v2", made["content_hash"])
    assert [entry["kind"] for entry in detail["lineage"]] == ["source", "fetch"]
    listed = [json.loads(line) for line in tradingd(clean_env, "dataset", "list").stdout.splitlines()]
    assert [entry["id"] for entry in listed] == [made["id"]]


def test_bad_spans_and_arguments_are_refused_clearly(clean_env: dict[str, str], candle_file: Path) -> None:
    rows = load_candle_file(candle_file)
    too_early = tradingd(
        clean_env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m",
        "--from", str(rows[10].open_time_ms), "--to", str(rows[50].open_time_ms),
    )  # fmt: skip
    assert too_early.returncode == 65
    assert "needs 1000 1m candles before --from" in too_early.stderr
    not_a_time = tradingd(
        clean_env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--from", "yesterday", "--to", "1"
    )
    assert not_a_time.returncode == 2
    assert "neither epoch milliseconds nor an ISO date/time" in not_a_time.stderr
    unknown = tradingd(clean_env, "dataset", "show", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 65
    for context, message in (("7m", "unknown interval '7m'"), ("1m", "must be longer than the base interval 1m")):
        refused = tradingd(
            clean_env, "dataset", "build", "--pair", "ETH-USDT", "--interval", "1m",
            "--from", str(rows[1_200].open_time_ms), "--to", str(rows[1_300].open_time_ms), "--context", context,
        )  # fmt: skip
        assert refused.returncode == 2
        assert message in refused.stderr


def test_context_from_the_config_or_the_flag_names_the_feature_set(
    clean_env: dict[str, str], candle_file: Path
) -> None:
    """The simulator serves 5m candles aggregated from the file's 1m ones (`tradingd sim --derive 5m`)."""
    rows = load_candle_file(candle_file)
    build = ["dataset", "build", "--pair", "ETH-USDT", "--interval", "1m", "--feature-set", "v1"]
    build += ["--from", str(rows[1_200].open_time_ms), "--to", str(rows[1_500].open_time_ms)]
    made = tradingd(clean_env | {"TRADINGD_FEATURE_CONTEXT": "5m"}, *build)
    assert made.returncode == 0, made.stderr
    built = json.loads(made.stdout)
    detail = json.loads(tradingd(clean_env, "dataset", "show", built["id"]).stdout)
    assert detail["feature_set"] == "v1+5m"
    sources = [entry["details"]["interval"] for entry in detail["lineage"] if entry["kind"] == "source"]
    assert sources == ["1m", "5m"]
    flagged = json.loads(tradingd(clean_env, *build, "--context", "5m").stdout)
    assert (flagged["id"], flagged["reused"]) == (built["id"], True)
    plain = json.loads(tradingd(clean_env | {"TRADINGD_FEATURE_CONTEXT": "5m"}, *build, "--context", "none").stdout)
    assert plain["content_hash"] != built["content_hash"]
