"""Training and evaluation: the gymnasium environment, RLlib training, nautilus backtests,
walk-forward folds, promotion and online learning. The live path never imports this package."""
