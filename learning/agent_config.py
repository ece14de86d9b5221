"""Agent configurations: the algorithm and its hyperparameters, the environment the agent learns in,
its reward shaping, its decision threshold and the gates it must pass before it trades.

Validated once, strictly (unknown keys refused by name), when created from a TOML file; stored in
`agent_configurations` and read back into the same model.
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from config.messages import describe_errors
from domain.limit_orders import EntryKind, LimitRules, Trigger
from features.definitions import feature_set
from storage.agents import StoredAgent

Algorithm = Literal["PPO"]
"""The algorithms whose policy network we can export for the live path. Others are refused by name
until their export exists, rather than trained into something the daemon cannot run."""
Activation = Literal["tanh", "relu"]
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class Hyperparameters(_Model):
    """PPO on RLlib's new API stack."""

    iterations: int = Field(default=250, ge=1, le=100_000)
    """250 x 4,000 = 1M env steps: on a 2-core machine the training return was still rising at 600k
    steps and had levelled by 1M (docs/agents.md), about 4 minutes."""
    lr: float = Field(default=3e-4, gt=0, lt=1)
    gamma: float = Field(default=0.99, gt=0, le=1)
    lambda_: float = Field(default=0.95, ge=0, le=1, alias="lambda")
    clip_param: float = Field(default=0.2, gt=0, lt=1)
    entropy_coeff: float = Field(default=0.01, ge=0)
    vf_loss_coeff: float = Field(default=0.5, ge=0)
    train_batch_size: int = Field(default=4000, ge=64)
    minibatch_size: int = Field(default=500, ge=16)
    num_epochs: int = Field(default=4, ge=1, le=100)
    hidden_layers: Annotated[tuple[int, ...], Field(strict=False, min_length=1, max_length=8)] = (64, 64)
    activation: Activation = "tanh"
    env_runners: int = Field(default=0, ge=0, le=64)
    """0 samples in the training process itself (fastest on a small machine: no actor hops)."""
    envs_per_env_runner: int = Field(default=8, ge=1, le=256)
    checkpoint_every: int = Field(default=5, ge=1)
    seed: int = Field(default=0, ge=0)

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True, populate_by_name=True)

    @model_validator(mode="after")
    def _batches(self) -> Hyperparameters:
        if self.minibatch_size > self.train_batch_size:
            raise ValueError("minibatch_size must not exceed train_batch_size")
        if any(width < 1 or width > 4096 for width in self.hidden_layers):
            raise ValueError("hidden_layers widths must be between 1 and 4096")
        return self


class LimitEntries(_Model):
    """How a post-only LIMIT entry at the touch fills (`domain.limit_orders`), when `entries` offers it."""

    trigger: Trigger = "touch"
    """`touch`: a BUY fills once the low reaches its price; `cross`: once the low trades below it."""
    expiry_bars: int = Field(default=1, ge=1, le=10_000)
    """Candles an entry rests before what is left is cancelled (the one it was placed in counts)."""
    volume_share: float | None = Field(default=0.25, gt=0, le=1)
    """At most this share of a candle's volume fills per candle (the simulator's default); none: all."""

    @property
    def rules(self) -> LimitRules:
        share = None if self.volume_share is None else Decimal(repr(self.volume_share))
        return LimitRules(self.trigger, self.expiry_bars, share)


class Environment(_Model):
    """The training world. Fills, fees and slippage follow `domain.fills`, as paper execution does."""

    episode_bars: int = Field(default=1440, ge=16)
    position_sizes: Annotated[tuple[float, ...], Field(strict=False, min_length=1, max_length=8)] = (1.0,)
    """Fractions of the maximum position: (1.0,) gives the actions short, flat, long; (0.5, 1.0) adds
    half positions each way."""
    initial_equity: float = Field(default=10_000.0, gt=0)
    max_exposure: float = Field(default=0.5, gt=0, le=20)
    """The notional of a full position, as a multiple of equity (above 1 is leverage). The default is the
    daemon's `run.max_exposure`, so an agent trains at the size the run trades it at and a full position
    fits the default `[risk]` limits, which training applies."""
    slippage_bps: float = Field(default=2.0, ge=0, le=1000)
    bust_equity_fraction: float = Field(default=0.5, ge=0, lt=1)
    """An episode ends when equity falls to this fraction of the initial equity."""
    min_hold_bars: int = Field(default=0, ge=0, le=100_000)
    """The decision rule's hysteresis: an open position is held at least this many candles before the
    policy may move it (stop-loss and take-profit exits excepted), in training, backtests and runs alike."""
    entries: Annotated[tuple[EntryKind, ...], Field(strict=False, min_length=1, max_length=2)] = ("market",)
    """How the agent may enter: `market` (a taker order at the next open), `limit` (a post-only maker
    order at the touch, `limit`'s fill model). Both: the agent chooses, each target once per entry kind."""
    limit: LimitEntries = LimitEntries()

    @model_validator(mode="after")
    def _sizes(self) -> Environment:
        if any(not 0 < size <= 1 for size in self.position_sizes) or len(set(self.position_sizes)) != len(
            self.position_sizes
        ):
            raise ValueError("position_sizes must be distinct fractions in (0, 1]")
        if len(set(self.entries)) != len(self.entries):
            raise ValueError("entries must be distinct")
        return self

    @property
    def actions(self) -> tuple[tuple[float, EntryKind], ...]:
        """(target, entry kind) per action: every target with the first entry kind, then with the next."""
        return tuple((target, entry) for entry in self.entries for target in self.targets)

    @property
    def limit_rules(self) -> LimitRules | None:
        """The limit fill model, when the agent may enter with limits."""
        return self.limit.rules if "limit" in self.entries else None

    @property
    def targets(self) -> tuple[float, ...]:
        """Target positions, one per action, as signed fractions of the maximum: short ... flat ... long."""
        sizes = sorted(self.position_sizes)
        return (*(-size for size in reversed(sizes)), 0.0, *sizes)


RewardKind = Literal["log_equity", "equity_change"]


class Reward(_Model):
    """The step's reward: the equity's change net of fees (they are in the equity), less the penalties."""

    kind: RewardKind = "log_equity"
    """`log_equity`: log(equity after / equity before), so a loss and the gain that repairs it weigh alike
    and compounding is what is maximised; `equity_change`: the change as a fraction of the initial equity."""
    drawdown_penalty: float = Field(default=0.0, ge=0)
    """Subtracted per unit of new drawdown (as a fraction of the peak equity): a reason to stay out of
    losing streaks beyond what they cost."""
    turnover_penalty: float = Field(default=0.0, ge=0)
    """Subtracted per unit of traded notional (as a fraction of the initial equity), beyond fees: a reason
    not to churn on moves smaller than the costs."""


class PromotionGates(_Model):
    """What a walk-forward evaluation must show before the version may trade (evaluation issue)."""

    min_win_rate: float = Field(default=0.5, ge=0, le=1)
    min_net_pnl: float = 0.0
    max_drawdown: float = Field(default=0.2, gt=0, le=1)
    min_trade_count: int = Field(default=10, ge=0)
    min_margin_over_baseline: float = 0.0
    """USDT of aggregate net PnL above the best baseline's, buy-and-hold included."""
    min_fold_share: float = Field(default=0.6, ge=0, le=1)
    """The share of evaluated folds in which the agent must beat flat, buy-and-hold and the best baseline
    (each a gate of its own): an aggregate can hide an agent that loses in most folds."""
    drawdown_within_buy_and_hold: bool = True
    """The worst fold's drawdown must be no worse than buy-and-hold's worst on the same folds."""
    holdout_share: float = Field(default=0.2, ge=0, le=0.5)
    """The last share of the training dataset's rows `tradingd train` keeps from the agent and scores the
    artifact on (`learning.evaluation.holdout`); the `holdout` gate reads that score. 0 trains on every
    row, and such a version cannot be promoted."""
    walk_forward_holdout: bool = False
    """A walk-forward fold trains as `tradingd train` does: it keeps the last `holdout_share` of the fold's
    training rows from the agent and scores the artifact on them; when that score fails the holdout gate,
    the fold stands aside (trades nothing) over its test span, as a version failing the gate is never
    promoted. Off: each fold trains on all its training rows and always trades."""

    @model_validator(mode="after")
    def _a_holdout_to_stand_aside_by(self) -> PromotionGates:
        if self.walk_forward_holdout and self.holdout_share == 0:
            raise ValueError("walk_forward_holdout needs a holdout: holdout_share must be above 0")
        return self


SEARCHABLE = ("hyperparameters", "environment", "reward")
"""The sections whose fields a search may choose (`section.field`)."""
SearchValue = bool | int | float


class Search(_Model):
    """`tradingd train --tune`: configurations sampled from `space`, each trained with every seed on the
    inner walk-forward folds of the training rows (never the holdout; in an evaluation, never the outer
    fold's test span), scored by their mean net PnL on the inner test spans; the best is trained."""

    trials: int = Field(default=4, ge=1, le=1000)
    """Configurations sampled from the space (each with every seed)."""
    seeds: Annotated[tuple[int, ...], Field(strict=False, min_length=1, max_length=16)] = (0,)
    inner_folds: int = Field(default=3, ge=1, le=20)
    space: dict[str, Annotated[tuple[SearchValue, ...], Field(strict=False, min_length=1, max_length=32)]] = Field(
        default_factory=dict
    )
    """`section.field` (of hyperparameters, environment, reward) -> the values to choose among."""

    @model_validator(mode="after")
    def _known_fields(self) -> Search:
        models: dict[str, type[BaseModel]] = {
            "hyperparameters": Hyperparameters,
            "environment": Environment,
            "reward": Reward,
        }
        for key in self.space:
            section, _, name = key.partition(".")
            model = models.get(section)
            keys = set() if model is None else {info.alias or field for field, info in model.model_fields.items()}
            if name not in keys or name == "seed":
                raise ValueError(
                    f"search.space: {key!r} is not a field of {', '.join(SEARCHABLE)} "
                    "(as section.field; seeds are `search.seeds`)"
                )
        return self


class AgentConfig(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    algorithm: Algorithm = "PPO"
    feature_set: str = "v2"
    """A feature-set name, with context if any (`v2+5m`): a dataset of another schema is refused."""
    decision_threshold: float = Field(default=0.0, ge=0, le=1)
    """Below this confidence the decision is HOLD. 0: the most probable action, always (the rule the
    environment's deterministic evaluation of the policy applies)."""
    hyperparameters: Hyperparameters = Hyperparameters()
    environment: Environment = Environment()
    reward: Reward = Reward()
    promotion_gates: PromotionGates = PromotionGates()
    search: Search | None = None
    """None: `tradingd train --tune` is refused for this configuration."""

    @model_validator(mode="after")
    def _known_feature_set(self) -> AgentConfig:
        feature_set(self.feature_set)  # ValueError names the unknown set or interval
        if self.search is not None:
            for choice in self.search.space:  # every value must make a valid configuration
                for value in self.search.space[choice]:
                    self.with_choices({choice: value})
        return self

    def with_choices(self, choices: dict[str, Any]) -> AgentConfig:
        """This configuration with `section.field` values replaced (a search's choice), validated."""
        document = self.model_dump(by_alias=True, mode="json")
        for key, value in choices.items():
            section, _, name = key.partition(".")
            document[section][name] = value
        document.pop("search", None)
        try:
            return AgentConfig.model_validate(document)
        except ValidationError as error:
            raise ValueError(f"search choice {choices} makes an invalid configuration: {error}") from None

    def sections(self) -> dict[str, Any]:
        """JSON documents for the `agent_configurations` columns."""
        return {
            "hyperparameters": self.hyperparameters.model_dump(by_alias=True, mode="json"),
            "environment": self.environment.model_dump(mode="json"),
            "reward": self.reward.model_dump(mode="json"),
            "promotion_gates": self.promotion_gates.model_dump(mode="json"),
            "search": {} if self.search is None else self.search.model_dump(mode="json"),
        }


class AgentConfigError(ValueError):
    """The agent configuration is invalid; the message names the fields."""


def parse_agent_config(document: dict[str, Any], origin: str) -> AgentConfig:
    try:
        return AgentConfig.model_validate(document)
    except ValidationError as error:
        # The same sentences as the daemon's configuration errors (config.messages).
        lines = describe_errors(error, model=AgentConfig, document=document)
        raise AgentConfigError(
            "\n".join([f"invalid agent configuration ({origin}):", *(f"  {line}" for line in lines)])
        ) from None


def load_agent_config(path: Path) -> AgentConfig:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise AgentConfigError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise AgentConfigError(f"{path}: not valid TOML: {error}") from None
    return parse_agent_config(document, str(path))


def agent_config_of(stored: StoredAgent) -> AgentConfig:
    document = {
        "name": stored.name,
        "algorithm": stored.algorithm,
        "feature_set": stored.feature_set,
        "decision_threshold": stored.decision_threshold,
        **{key: value for key, value in stored.sections.items() if key != "search" or value},
    }
    return parse_agent_config(document, f"agent {stored.name}")
