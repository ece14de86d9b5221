"""Agent configurations: strict validation with named fields, the example file, action targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from learning.agent_config import AgentConfig, AgentConfigError, load_agent_config, parse_agent_config

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "agents" / "example.toml"


def test_the_example_file_is_valid_and_spells_out_the_defaults() -> None:
    config = load_agent_config(EXAMPLE)
    assert config.name == "ppo-example"
    defaults = AgentConfig(name="ppo-example")
    assert config == defaults
    assert config.sections()["hyperparameters"]["lambda"] == 0.95


def test_targets_follow_position_sizes() -> None:
    config = parse_agent_config({"name": "x", "environment": {"position_sizes": [1.0, 0.5]}}, "test")
    assert config.environment.targets == (-1.0, -0.5, 0.0, 0.5, 1.0)
    assert AgentConfig(name="y").environment.targets == (-1.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "Bad Name"}, 'name = "Bad Name": must be a name of lower-case letters'),
        ({"name": "a", "algorithm": "DQN"}, 'algorithm = "DQN": must be "PPO"'),
        ({"name": "a", "feature_set": "v3"}, "unknown feature set 'v3'"),
        ({"name": "a", "feature_set": "v2+7m"}, "unknown interval '7m'"),
        ({"name": "a", "hyperparameters": {"lr": "0.1"}}, 'hyperparameters.lr = "0.1": must be a number'),
        ({"name": "a", "hyperparameters": {"minibatch_size": 9000}}, "minibatch_size must not exceed"),
        ({"name": "a", "environment": {"position_sizes": [1.5]}}, "position_sizes must be distinct fractions"),
        ({"name": "a", "reward": {"sharpe_bonus": 1.0}}, "reward.sharpe_bonus: unknown key; [reward] takes"),
        ({"name": "a", "hyperparameters": {"lamda": 0.9}}, "did you mean hyperparameters.lambda?"),
        ({"name": "a", "decision_threshold": 1.5}, "decision_threshold = 1.5: must be at most 1"),
    ],
)
def test_bad_configurations_name_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(AgentConfigError, match=re.escape(message)) as raised:
        parse_agent_config(document, "agent.toml")
    assert str(raised.value).startswith("invalid agent configuration (agent.toml):\n  ")
    assert "Input should" not in str(raised.value)


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="does not exist"):
        load_agent_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    with pytest.raises(AgentConfigError, match="not valid TOML"):
        load_agent_config(broken)
