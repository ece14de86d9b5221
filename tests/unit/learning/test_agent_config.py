"""Agent configurations: strict validation with named fields, the example file, action targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from learning.agent_config import AgentConfig, AgentConfigError, load_agent_config, parse_agent_config

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "agents" / "example.toml"


def test_the_example_file_is_valid_and_differs_from_the_defaults_only_where_it_says() -> None:
    config = load_agent_config(EXAMPLE)
    assert config.name == "ppo-example"
    defaults = AgentConfig(name="ppo-example")
    # Its choices for a first real run: half positions, a minimum holding, risk and turnover terms, a search.
    assert config.environment == defaults.environment.model_copy(
        update={"position_sizes": (0.5, 1.0), "min_hold_bars": 12}
    )
    assert config.reward == defaults.reward.model_copy(update={"drawdown_penalty": 0.5, "turnover_penalty": 0.0005})
    assert config.search is not None
    assert (
        config.model_copy(update={"environment": defaults.environment, "reward": defaults.reward, "search": None})
        == defaults
    )
    assert config.sections()["hyperparameters"]["lambda"] == 0.95
    assert config.hyperparameters.iterations * config.hyperparameters.train_batch_size == 1_000_000


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
        (
            {"name": "a", "promotion_gates": {"walk_forward_holdout": True, "holdout_share": 0.0}},
            "walk_forward_holdout needs a holdout: holdout_share must be above 0",
        ),
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
