"""The position-state features (`spec.STATE_FEATURES`), computed one way for the training environment
and the live policy actor."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BARS_PER_DAY = 1440.0


def state_features(
    position_quantity: float, unrealised: float, equity: float, max_notional: float, mark: float, bars_held: int
) -> npt.NDArray[np.float64]:
    """side -1/0/1; size as a fraction of the maximum position's notional; unrealised PnL as a fraction
    of equity; bars since entry / 1440."""
    side = 1.0 if position_quantity > 0 else -1.0 if position_quantity < 0 else 0.0
    size = abs(position_quantity) * mark / max_notional if max_notional > 0 else 0.0
    pnl = unrealised / equity if equity > 0 else 0.0
    return np.array([side, size, pnl, bars_held / BARS_PER_DAY if side else 0.0])
