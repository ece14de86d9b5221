"""`tradingd agent ...` and `tradingd train` as real processes: a dataset built against `tradingd sim`,
an agent created from TOML, a short RLlib training, and the version listed with its lineage."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from exchange.sim.candle_file import load_candle_file
from tests.e2e.cli_helpers import TRADINGD, build_eth_dataset, running_embedded_value, tradingd

QUICK_AGENT = """
name = "e2e-quick"
feature_set = "v1"
decision_threshold = 0.4

[hyperparameters]
iterations = 4
checkpoint_every = 1
train_batch_size = 600
minibatch_size = 200
num_epochs = 1
hidden_layers = [16]
envs_per_env_runner = 2

[environment]
episode_bars = 300
position_sizes = [0.5, 1.0]
"""


def test_create_train_and_list_an_agent(clean_env: dict[str, str], candle_file: Path, tmp_path: Path) -> None:
    rows = load_candle_file(candle_file)
    built = build_eth_dataset(clean_env, rows[100].open_time_ms, rows[3_000].open_time_ms)
    dataset_id = str(built["id"])

    agent_file = tmp_path / "agent.toml"
    agent_file.write_text(QUICK_AGENT)
    created = tradingd(clean_env, "agent", "create", str(agent_file))
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["sections"]["environment"]["position_sizes"] == [0.5, 1.0]
    again = tradingd(clean_env, "agent", "create", str(agent_file))
    assert again.returncode == 65
    assert "exists" in again.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[hyperparameters]\nlearning_rate = 0.1\n')
    refused = tradingd(clean_env, "agent", "create", str(bad))
    assert refused.returncode == 65
    assert "hyperparameters.learning_rate: unknown key" in refused.stderr

    # Ctrl-C during training: the run stops, its last checkpoint stays recorded.
    assert TRADINGD is not None
    first = subprocess.Popen(
        [TRADINGD, "train", "--agent", "e2e-quick", "--dataset", dataset_id],
        env=clean_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert first.stderr is not None
    seen: list[str] = []
    for line in first.stderr:
        seen.append(line)
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "training_iteration" and event["iteration"] == 2:
            # The line comes before the iteration's checkpoint is recorded: Ctrl-C once it is.
            data_dir = Path(clean_env["TRADINGD_DATA_DIR"])
            recorded = "SELECT max(iterations_done) FROM agent_versions"
            deadline = time.monotonic() + 120
            while (running_embedded_value(data_dir, recorded) or 0) < 2:
                assert first.poll() is None, "".join(seen)[-3000:]
                assert time.monotonic() < deadline, "".join(seen)[-3000:]
                time.sleep(0.05)
            first.send_signal(signal.SIGINT)
            break
    _, rest = first.communicate(timeout=300)
    assert first.returncode == 1, "".join(seen)[-3000:] + rest[-3000:]
    assert "training interrupted; run the same command to resume" in rest

    # The same command resumes the same version from that checkpoint and finishes it.
    trained = tradingd(clean_env, "train", "--agent", "e2e-quick", "--dataset", dataset_id, timeout=400)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout)
    assert (result["status"], result["version"], result["iterations"]) == ("trained", 1, 4)
    assert result["resumed_from"] in (2, 3)
    assert result["artifact_uri"].startswith("db://model_artifacts/")
    events = [json.loads(line) for line in trained.stderr.splitlines() if line.startswith("{")]
    iterations = [event["iteration"] for event in events if event.get("event") == "training_iteration"]
    assert iterations == list(range(result["resumed_from"] + 1, 5))

    listed = [json.loads(line) for line in tradingd(clean_env, "agent", "versions", "e2e-quick").stdout.splitlines()]
    assert [(v["version"], v["status"], v["dataset_id"], v["feature_set"]) for v in listed] == [
        (1, "trained", dataset_id, "v1")
    ]
    assert listed[0]["artifact_checksum"] == result["artifact_checksum"]

    # Trained again, uninterrupted, in another process: a second version with the same checksum as the
    # interrupted and resumed first one (same configuration, seed and dataset).
    again_trained = tradingd(clean_env, "train", "--agent", "e2e-quick", "--dataset", dataset_id, timeout=400)
    assert again_trained.returncode == 0, again_trained.stderr[-3000:]
    second = json.loads(again_trained.stdout)
    assert (second["version"], second["resumed_from"]) == (2, 0)
    assert second["artifact_checksum"] == result["artifact_checksum"]
    shown = json.loads(tradingd(clean_env, "agent", "show", "e2e-quick").stdout)
    assert shown["decision_threshold"] == 0.4
    names = [json.loads(line)["name"] for line in tradingd(clean_env, "agent", "list").stdout.splitlines()]
    assert names == ["e2e-quick"]
    unknown = tradingd(clean_env, "train", "--agent", "nobody", "--dataset", dataset_id)
    assert unknown.returncode == 65
