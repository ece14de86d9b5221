"""The `[risk]` settings as the kernel's limit set, the same for the daemon, training and evaluation, and
the warning `tradingd train` gives when that set denies an agent's full position."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from config import load_settings
from daemon.risk_limits import full_position_warning, risk_limits
from daemon.run_setup import risk_limits as run_limits
from trading.limits import RiskLimits


def test_the_daemon_training_and_evaluation_share_one_limit_set(tmp_path: Path) -> None:
    config = tmp_path / "risk.toml"
    config.write_text("[risk]\nstop_loss_pct = 0.01\n")
    settings = load_settings(config, {})
    limits = risk_limits(settings)
    assert limits == run_limits(settings)
    assert (limits.name, limits.stop_loss_pct, limits.max_order_notional) == ("default", Decimal("0.01"), Decimal(6000))


def test_a_limit_set_that_denies_a_full_position_is_named_with_its_figures() -> None:
    limits = RiskLimits("default", Decimal(6_000), Decimal(6_000), 2, Decimal(1))
    warning = full_position_warning(Decimal(10_000), Decimal(1), limits)
    assert warning is not None
    assert "'default' denies a full position from flat (1 x 10000 = 10000 USDT notional;" in warning
    assert "max_order_notional 6000, max_position_notional 6000 USDT" in warning
    assert full_position_warning(Decimal(10_000), Decimal("0.5"), limits) is None
    assert "max_leverage 5000" in (full_position_warning(Decimal(5_000), Decimal("1.5"), limits) or "")
